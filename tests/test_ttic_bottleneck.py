"""TTIC Problem 3: multiplication counts, variance with gamma, gradient decay gamma^(L-2), and
the ``ttic_bottleneck`` recipe's ``[measure]`` step (probe replays of its runs)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_ttic_video import run_quick

from cnnlab.data import datasets as data
from cnnlab.models import zoo as models
from cnnlab.ttic.bottleneck import (
    grad_vs_depth,
    init_statistics,
    macs_report,
    probe_run,
    slope,
    train_probe,
)


@pytest.mark.parametrize("depth,width,nb", [(2, 32, 8), (5, 64, 16), (7, 40, 19), (4, 40, 20),
                                            (4, 40, 21)])
def test_macs_formulas_analyzer_and_hooks(depth: int, width: int, nb: int) -> None:
    r = macs_report(depth, width, nb)
    assert r.analyzer_bottleneck == r.formula_bottleneck == r.hook_bottleneck
    assert r.formula_bottleneck == 2 * width * nb * (depth - 1)
    assert r.analyzer_plain == r.formula_plain == r.hook_plain == width ** 2 * (depth - 1)
    # the sheet: fewer multiplications exactly when N_bottle < N/2 (equal at N/2)
    assert r.bottleneck_cheaper == (nb < width / 2)
    # gamma != 1 costs one multiply per unit per block, outside the sheet's count
    assert r.gamma_multiplies == width * (depth - 1)


def test_registered_model_is_the_sheets_spec() -> None:
    m = models.get("bottleneck-mlp", depth=4, width=32, bottleneck=8, gamma=2 ** -0.5)
    assert m.spec.startswith("fc32 res(gamma=0.7071067811865476){fc8 relu fc32 relu}*3")
    out = m.build(seed=0)(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_gamma_inv_sqrt2_keeps_unit_variance_with_independent_branches() -> None:
    depth = 12
    keep = init_statistics(depth, 2 ** -0.5, width=128, branch="synthetic", samples=4000)
    grow = init_statistics(depth, 1.0, width=128, branch="synthetic", samples=4000)
    # 512k samples per layer: the variance estimate's standard error is about 0.002
    for layer, (m, v) in enumerate(zip(keep.mean, keep.var, strict=True)):
        assert abs(m) < 0.02 and abs(v - 1.0) < 0.03, (layer, m, v)
    # gamma = 1 adds one unit of variance per block: Var L_l = l
    for layer, v in enumerate(grow.var, start=1):
        assert abs(v / layer - 1.0) < 0.04, (layer, v)


def test_real_relu_branch_breaks_the_assumption() -> None:
    s = init_statistics(6, 2 ** -0.5, width=64, bottleneck=16, branch="relu", samples=2000)
    assert len(s.var) == 6 and len(s.branch_var) == 5
    # a ReLU output is non-negative: the branch is not zero-mean as (b) assumes
    assert all(m > 0 for m in s.branch_mean)


@pytest.mark.parametrize("gamma", [2 ** -0.5, 0.9, 1.0])
def test_bottom_gradient_scales_as_gamma_power_in_linear_setting(gamma: float) -> None:
    r = grad_vs_depth(range(2, 9), gamma, width=32, bottleneck=8, mode="linear", batch=16)
    for depth, ratio in zip(r.depths, r.ratios, strict=True):
        assert ratio == pytest.approx(gamma ** (depth - 2), rel=1e-10)
    assert r.slope == pytest.approx(math.log(gamma), abs=1e-10)


def test_gradient_at_init_measured_not_assumed() -> None:
    r = grad_vs_depth([2, 4, 6], 2 ** -0.5, width=32, bottleneck=8, mode="init", batch=16)
    assert all(v > 0 and math.isfinite(v) for v in r.grad_norms)
    assert r.slope == pytest.approx(slope(r.depths, [math.log(v) for v in r.grad_norms]))


def test_train_probe_runs_through_the_trainer_engine() -> None:
    dataset = "mnist" if data.available("mnist") else "synthetic-digits"
    p = train_probe(2 ** -0.5, 4, width=32, bottleneck=8, iterations=6, probe_every=2,
                    dataset=dataset, train_size=500, batch_size=16)
    assert p.steps == [0, 2, 4, 5]
    assert all(v > 0 for v in p.first_grad + p.last_grad + p.first_update + p.last_update)
    assert 0.0 <= p.test_acc <= 1.0 and math.isfinite(p.grad_ratio)


def test_bottleneck_trains_with_train(tmp_path) -> None:
    from cnnlab.training.trainer import TrainConfig, train

    dataset = "mnist" if data.available("mnist") else "synthetic-digits"
    cfg = TrainConfig(model="bottleneck-mlp", model_opts="depth=3,width=32,bottleneck=8,"
                      "gamma=1/sqrt2", dataset=dataset, train_size=200, iterations=4,
                      eval_every=4, batch_size=16, runs_dir=str(tmp_path), out_name="b",
                      tensorboard=False, plots=False, progress="off", threads=1, device="cpu")
    res = train(cfg)
    assert res.iterations == 4 and math.isfinite(res.test_loss)


def test_probe_run_follows_the_trainers_trajectory(tmp_path: Path) -> None:
    from cnnlab.training.trainer import TrainConfig, train

    dataset = "mnist" if data.available("mnist") else "synthetic-digits"
    cfg = TrainConfig(model="bottleneck-mlp", model_opts="depth=3,width=32,bottleneck=8,"
                      "gamma=1/sqrt2", dataset=dataset, train_size=300, iterations=5,
                      eval_every=5, batch_size=16, optimizer="sgd", lr=0.05,
                      runs_dir=str(tmp_path), out_name="b", tensorboard=False, plots=False,
                      progress="off", threads=1, device="cpu")
    threads = torch.get_num_threads()
    res = train(cfg)
    p = probe_run(cfg, probe_every=2)
    torch.set_num_threads(threads)
    assert p.steps == [0, 2, 4] and p.depth == 3 and p.gamma == pytest.approx(2 ** -0.5)
    # the probe replays the run: same data, init and steps, hence the same final numbers
    assert p.test_acc == res.test_acc and p.test_loss == pytest.approx(res.test_loss, rel=1e-6)
    with pytest.raises(Exception, match="bottleneck-mlp"):
        probe_run(TrainConfig(model="baseline"))


def test_bottleneck_recipe_quick_measures_and_replays(tmp_path: Path) -> None:
    from cnnlab.experiments.recipe import load_recipe

    recipe = load_recipe("ttic_bottleneck")
    # one point per sweep (SGD and Adam) keeps the test short; the whole --quick grid runs in
    # test_experiment_quick.py
    for sw in recipe.sweeps:
        sw["grid"] = {"model_opts.gamma": ["1/sqrt2"], "model_opts.depth": [4]}
    recipe.quick.update(iterations=6, eval_every=6)
    if not data.available("mnist"):
        recipe.base["dataset"] = "synthetic-digits"
    recipe.measure["quick"] = {**recipe.measure["quick"], "bottlenecks": [64, 128, 129]}
    doc = run_quick(recipe, tmp_path)
    m = doc["measure"]
    assert m["kind"] == "bottleneck" and m["options"]["init_samples"] == 1024
    res = m["result"]
    assert [r["cheaper"] for r in res["macs"]] == [True, False, False]
    assert all(r["analyzer_bottleneck"] == r["formula_bottleneck"] == r["hook_bottleneck"]
               for r in res["macs"])
    assert len(res["init"]) == 4 and len(res["init"][0]["var"]) == 6  # the quick init_depth
    lin = [r for r in res["grad_depth"] if r["mode"] == "linear"]
    assert [r["slope"] for r in lin] == pytest.approx([r["log_gamma"] for r in lin], abs=1e-9)
    assert [(p["label"], p["optimizer"]) for p in res["train"]] == [
        ("SGD, gamma 1/sqrt2, L=4", "sgd"), ("Adam, gamma 1/sqrt2, L=4", "adam")]
    assert all(p["test_acc"] == p["run_test_acc"] for p in res["train"])
    assert all(p["steps"] == [0, 1, 2, 3, 4, 5] for p in res["train"])  # 6 // 30 -> every step
    assert len(res["figures"]) == 6
    assert all((tmp_path / "ttic_bottleneck" / f).is_file() for f in res["figures"])
    f = doc["_findings"]
    assert any(s.startswith("(a) ") and "exactly when N_bottle < N/2 = 128" in s
               for s in f.sentences)
    assert any("exactly in 2 of 2 runs" in s for s in f.sentences)
    assert any(title.startswith("Problem 3(c) in training") for title, _ in f.tables)

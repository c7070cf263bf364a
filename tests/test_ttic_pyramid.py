"""TTIC Problem 4: the image pyramid, the scale-shared layers, the multi-scale dataset, and
the ``ttic_pyramid`` recipe's ``[measure]`` step (its runs tested at single scales)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_ttic_video import run_quick

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.data import datasets as data
from cnnlab.ir.spec import parse
from cnnlab.models import zoo as models
from cnnlab.ref import filters
from cnnlab.ttic.multiscale import draw_scales, place
from cnnlab.ttic.pyramid import (
    PyramidCNN,
    PyramidLevel,
    accuracy,
    level_literal,
    load_trained,
    pyramid,
    pyramid_params,
)


def _sheet(t: torch.Tensor) -> np.ndarray:
    """torch (b, c, y, x) -> the sheet's [b, x, y, c]."""
    return t.permute(0, 3, 2, 1).numpy()


def test_torch_pyramid_equals_numpy_oracle() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    ours, oracle = pyramid(img), filters.pyramid(_sheet(img), axes=(1, 2))
    assert [t.shape[-1] for t in ours] == [32, 16, 8, 4, 2, 1] == [o.shape[1] for o in oracle]
    for t, o in zip(ours, oracle, strict=True):
        np.testing.assert_allclose(_sheet(t), o, rtol=0, atol=1e-12)
    # the sheet's equation for one step, written out with its indices
    i0 = _sheet(img)
    i1 = (i0[:, 0::2, 0::2] + i0[:, 1::2, 0::2] + i0[:, 0::2, 1::2] + i0[:, 1::2, 1::2]) / 4
    np.testing.assert_allclose(_sheet(ours[1]), i1, atol=1e-12)
    # averaging keeps the mean: the 1x1 top is the image's mean
    np.testing.assert_allclose(oracle[-1][:, 0, 0], _sheet(img).mean(axis=(1, 2)), atol=1e-12)


def test_level_equals_the_sheets_equation() -> None:
    g = torch.Generator().manual_seed(1)
    level = PyramidLevel(3, 5, kernel=3).double()
    with torch.no_grad():
        level.threshold.normal_(generator=g)
    fine = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    coarse = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    # nn.Conv2d.weight[j, i, y, x] -> the sheet's W[dx, dy, i, j]
    w_up = level.up.weight.detach().permute(3, 2, 1, 0).numpy()
    w_left = level.left.weight.detach().permute(3, 2, 1, 0).numpy()
    sheet = level_literal(_sheet(fine), _sheet(coarse), w_up, w_left,
                          level.threshold.detach().numpy())
    np.testing.assert_allclose(_sheet(level(fine, coarse).detach()), sheet, atol=1e-12)


def test_maps_have_size_two_to_the_k_minus_l_minus_s() -> None:
    k = 6
    net = PyramidCNN(1, (4, 6, 8))
    maps = net.forward_maps(torch.zeros(2, 1, 2 ** k, 2 ** k))
    assert len(maps) == 4
    for level, row in enumerate(maps):
        assert len(row) == k - level + 1  # s = 0 .. k - l
        for s, m in enumerate(row):
            assert m.shape[-2:] == (2 ** (k - level - s),) * 2
            assert m.shape[1] == (1, 4, 6, 8)[level]


def test_weights_shared_across_scales() -> None:
    net = PyramidCNN(1, (4, 6, 8))
    n = sum(p.numel() for p in net.parameters())
    assert n == pyramid_params(1, (4, 6, 8))
    # one module serves 4 to 7 scales: the parameter count cannot depend on them
    for side in (16, 32, 64, 128):
        assert net(torch.rand(1, 1, side, side)).shape == (1, 10)
    assert models.get("pyramid", widths="4x6x8").build((1, 128, 128), seed=0) is not None
    assert sum(p.numel() for p in models.get("pyramid", widths="4x6x8").build(
        (1, 128, 128), seed=0).parameters()) == n


def test_doubling_the_image_shifts_every_map_one_scale() -> None:
    # a 2x nearest-upsampled image J has J_{s+1} = I_s, so with shared weights
    # L_{l,s+1}(J) = L_{l,s}(I): the architecture treats scales as a CNN treats positions
    torch.manual_seed(0)
    net = PyramidCNN(1, (3, 4)).double()
    img = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    big = img.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    small_maps, big_maps = net.forward_maps(img), net.forward_maps(big)
    for level in range(3):
        for s, m in enumerate(small_maps[level]):
            torch.testing.assert_close(big_maps[level][s + 1], m, rtol=0, atol=1e-12)


def test_plain_cnn_budget_matches_pyramid() -> None:
    pyr = sum(p.numel() for p in models.get("pyramid").build(seed=0).parameters())
    plain = models.get("plain-cnn")
    by_numel = sum(p.numel() for p in plain.build(seed=0).parameters())
    by_analyzer = analyze_graph(parse(plain.spec), (1, 64, 64)).total.params
    assert by_numel == by_analyzer
    assert abs(by_numel / pyr - 1) < 0.05


def test_scale_factors_are_the_pasted_size() -> None:
    square = torch.ones(9, 1, 28, 28)
    f = torch.tensor([0.25, 0.5, 0.6, 0.75, 1.0, 1.3, 1.5, 2.0, 2.25], dtype=torch.float64)
    out = place(square, torch.arange(9), f, canvas=64, seed=0)
    for i in range(9):
        ink = torch.nonzero(out.x[i, 0] > 0.5)
        side = int(round(28 * float(f[i])))
        assert (ink.max(0).values - ink.min(0).values + 1).tolist() == [side, side]
        assert ink.min(0).values.tolist() == out.pos[i].tolist()
        assert float(out.scale[i]) == side / 28
    with pytest.raises(Exception, match="larger than"):
        place(square[:1], torch.zeros(1), torch.tensor([2.5]), canvas=64)


def test_draw_scales_range_and_log_uniformity() -> None:
    f = draw_scales(20000, (0.5, 2.0), seed=0)
    assert float(f.min()) >= 0.5 and float(f.max()) <= 2.0
    # log-uniform: as many digits below 1 (half size) as above (double size)
    assert abs(float((f < 1.0).double().mean()) - 0.5) < 0.02
    assert torch.equal(draw_scales(5, 1.5, seed=0), torch.full((5,), 1.5))
    assert torch.equal(draw_scales(100, (0.5, 1.0), 3), draw_scales(100, (0.5, 1.0), 3))


def test_registered_multiscale_dataset_scales() -> None:
    ds = data.load("multiscale-synthetic-small", n_train=50, n_test=40)
    assert ds.x_train.shape == (50, 1, 64, 64)
    assert ds.info["train_scales"] == (0.5, 1.0)
    assert 0.5 <= ds.info["test_scale_min"] <= ds.info["test_scale_max"] <= 2.0


def test_pyramid_and_plain_train_through_the_trainer(tmp_path) -> None:
    from cnnlab.training.trainer import TrainConfig, train

    for model in ("pyramid", "plain-cnn"):
        cfg = TrainConfig(model=model, model_opts="widths=4x8x8", dataset=
                          "multiscale-synthetic-small", iterations=3, eval_every=3,
                          batch_size=16, lr=1e-3, runs_dir=str(tmp_path), out_name=model,
                          train_eval_size=32, tensorboard=False, plots=False, progress="off",
                          threads=1, device="cpu")
        res = train(cfg)
        assert res.iterations == 3 and math.isfinite(res.test_loss)


def test_pyramid_recipe_quick_tests_the_trained_runs_per_scale(tmp_path: Path) -> None:
    from cnnlab.experiments.recipe import load_recipe

    recipe = load_recipe("ttic_pyramid")
    # small widths and the offline dataset keep it short; the recipe's own --quick form runs
    # in test_experiment_quick.py
    recipe.base.update(dataset="multiscale-synthetic-small", model_opts={"widths": "4x8x8"})
    recipe.variants = [v for v in recipe.variants if v["label"] in (
        "pyramid", "plain CNN (same budget)", "pyramid, raw pixels")]
    recipe.quick.update(iterations=4, eval_every=4, train_eval_size=64)
    recipe.measure["quick"] = {"test_size": 100, "scales": [0.5, 1.0, 2.0]}
    doc = run_quick(recipe, tmp_path)
    m = doc["measure"]
    assert m["kind"] == "pyramid_scales" and m["options"]["test_size"] == 100
    res = m["result"]
    assert res["train_scales"] == [0.5, 1.0] and res["scales"] == [0.5, 1.0, 2.0]
    assert list(res["models"]) == ["pyramid", "plain CNN (same budget)", "pyramid, raw pixels"]
    jobs = {j["group"]: j for j in doc["jobs"]}
    for label, mod in res["models"].items():
        assert len(mod["acc_per_scale"]) == 3
        assert all(0.0 <= a <= 1.0 for a in mod["acc_per_scale"])
        assert mod["params"] == jobs[label]["result"]["param_count"]
        assert mod["normalize"] == (label != "pyramid, raw pixels")
    assert res["models"]["plain CNN (same budget)"]["params_analyzer"] == res["models"][
        "plain CNN (same budget)"]["params"]
    # the weights the measurement loads are the run's: they give the run's test accuracy
    run = jobs["pyramid"]
    t = load_trained(run["run_dir"])
    ds = data.load("multiscale-synthetic-small")
    assert accuracy(t.net, (ds.x_test - t.mean) / t.std, ds.y_test) == run["result"]["test_acc"]
    assert (tmp_path / "ttic_pyramid" / "plots" / "pyramid_accuracy_per_scale.png").is_file()
    f = doc["_findings"]
    assert any(title.startswith("Problem 4") and len(tb["rows"]) == 3 for title, tb in f.tables)
    assert any(s.startswith("pyramid was more accurate than plain CNN (same budget) at ")
               and "of 3 test scales" in s for s in f.sentences)
    assert any("unseen scales above 1" in s for s in f.sentences)

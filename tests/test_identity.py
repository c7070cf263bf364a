"""Content-addressed runs (cnnlab/experiments/identity.py).

The oracle for "measurement-only" is the trainer itself: two real trainings that differ in one
such key must end with bit-identical weights (dropout and augmentation on, so the random
streams are exercised); keys that change results must change the id.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainutil import tiny_config

from cnnlab.experiments import identity
from cnnlab.experiments.recipe import expand, load_recipe, train_config
from cnnlab.training.trainer import TrainConfig, train

# an alternative value for every key the identity ignores as measurement-only
OTHER = {"eval_every": 7, "log_every": 3, "train_eval_size": 50, "eval_batch_size": 13,
         "checkpoint_every": 4, "plots": True, "tensorboard": False, "progress": "on"}


def _base(tmp_path: Path, **kw) -> TrainConfig:
    return tiny_config(tmp_path, spec=None, model="shallow", model_opts="filters=4",
                       keep_prob=0.5, augment="shift=2", iterations=24, plots=False,
                       tensorboard=True, **kw)


def _weights(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    return load_file(Path(cfg.runs_dir) / cfg.out_name / "model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("ref")
    cfg = _base(tmp, out_name="ref")
    train(cfg)
    return tmp, _weights(cfg)


def test_every_ignored_measurement_key_is_verified() -> None:
    assert identity.MEASUREMENT_KEYS <= set(OTHER)


@pytest.mark.parametrize("key", sorted(OTHER))
def test_measurement_only_keys_leave_weights_bit_identical(reference, key: str) -> None:
    tmp, ref = reference
    base = _base(tmp, out_name="ref")
    other = replace(base, out_name=f"other-{key}", **{key: OTHER[key]})
    assert identity.run_id(other) == identity.run_id(base)
    train(other)
    got = _weights(other)
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[k], ref[k]) for k in ref), key


def test_thread_count_moves_only_the_last_bits(reference) -> None:
    """``threads`` is a RESULT_FREE_KEY (a run may move to another machine): it changes the
    order of float reductions, so the weights agree to float tolerance, not bit for bit."""
    tmp, ref = reference
    other = replace(_base(tmp, out_name="ref"), out_name="threads", threads=2)
    train(other)
    got = _weights(other)
    assert all(torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-5) for k in ref)


@pytest.mark.parametrize("change", [{"lr": 3e-3 * 1.5}, {"target_acc": 0.01},
                                    {"validation": 50}, {"seed": 1}, {"keep_prob": 0.75}])
def test_result_keys_change_the_weights_and_the_id(reference, change: dict) -> None:
    tmp, ref = reference
    base = _base(tmp, out_name="ref")
    other = replace(base, out_name="changed-" + "-".join(change), **change)
    assert identity.run_id(other) != identity.run_id(base)
    train(other)
    got = _weights(other)
    assert any(not torch.equal(got[k], ref[k]) for k in ref)


def test_target_makes_eval_every_count() -> None:
    a = TrainConfig(target_acc=0.95, eval_every=100)
    assert identity.run_id(a) != identity.run_id(replace(a, eval_every=200))
    assert identity.run_id(a) == identity.run_id(replace(a, target_acc=95))


@pytest.mark.parametrize("a, b", [
    (dict(model="baseline", keep_prob=1.0), dict(model="baseline")),
    (dict(model="baseline", model_opts="widths=32x64x1024"), dict(model="baseline")),
    (dict(model="eth", model_opts="k1=5,fc=256"), dict(model="eth", model_opts="fc=256")),
    (dict(model="eth", batch_norm=False, model_opts="batch_norm=false"), dict(model="eth")),
    (dict(model="eth", model_opts="batch_norm=true"), dict(model="eth", batch_norm=True)),
    (dict(model="tf-tutorial", keep_prob=0.6), dict(model="tf-tutorial")),
    (dict(lr=1e-3), dict(lr=0.001)),
    (dict(iterations=20000), dict()),
    (dict(optimizer="adam", momentum=0.5), dict(optimizer="adam")),
    (dict(schedule="constant", warmup=0.1, step_gamma=0.5), dict()),
    (dict(augment_copies=3), dict()),
])
def test_equal_meaning_is_equal_identity(a: dict, b: dict) -> None:
    assert identity.run_id(TrainConfig(**a)) == identity.run_id(TrainConfig(**b))


@pytest.mark.parametrize("a, b", [
    (dict(model="baseline", keep_prob=0.9), dict(model="baseline")),
    (dict(model="tf-tutorial", keep_prob=1.0), dict(model="tf-tutorial")),
    (dict(model="eth", model_opts="k1=3"), dict(model="eth")),
    (dict(optimizer="momentum", momentum=0.5), dict(optimizer="momentum")),
    (dict(augment="shift=2", augment_mode="upfront", augment_copies=3),
     dict(augment="shift=2", augment_mode="upfront")),
    (dict(iterations=1000), dict(epochs=1.0)),
    (dict(precision="bf16"), dict()),
])
def test_different_meaning_is_a_new_run(a: dict, b: dict) -> None:
    assert identity.run_id(TrainConfig(**a)) != identity.run_id(TrainConfig(**b))


def test_an_edited_architecture_file_is_a_new_run(tmp_path: Path) -> None:
    f = tmp_path / "net.toml"
    f.write_text('layers = ["conv3x3x4", "relu", "fc10"]\n')
    a = identity.run_id(TrainConfig(model=str(f)))
    f.write_text('layers = ["conv3x3x8", "relu", "fc10"]\n')
    assert identity.run_id(TrainConfig(model=str(f))) != a


def test_merge_needs_takes_the_finest_measurement() -> None:
    cfgs = [TrainConfig(eval_every=250, train_eval_size=2000, log_every=50, plots=False),
            TrainConfig(eval_every=150, train_eval_size=500, log_every=20, plots=True)]
    m = identity.merge_needs(cfgs)
    assert (m.eval_every, m.train_eval_size, m.log_every, m.plots) == (50, 2000, 10, True)
    assert identity.covers({"eval_every": 50, "log_every": 10, "train_eval_size": 2000,
                            "plots": True, "tensorboard": True}, cfgs[0])
    assert not identity.covers({"eval_every": 100, "log_every": 10, "train_eval_size": 2000},
                               cfgs[0])


def _recipe_ids(name: str, quick: bool) -> dict[str, str]:
    r = load_recipe(name)
    return {j.group: identity.run_id(train_config(j, "runs")) for j in expand(r, quick, seeds=1)}


@pytest.mark.parametrize("quick", [True, False])
def test_shipped_recipes_share_the_issue_s_duplicates(quick: bool) -> None:
    subset = _recipe_ids("huji_q4_subset", quick)
    size = _recipe_ids("huji_q4_size", quick)
    drop = _recipe_ids("huji_q4_dropout", quick)
    assert subset["250 examples"] == size["widths 32x64x1024"] == drop["keep 1.0"]
    assert _recipe_ids("huji_q2", quick)["non-linear (baseline)"] == subset["full set"]
    assert len(set(subset.values()) | set(size.values()) | set(drop.values())) == (
        len(subset) + len(size) + len(drop) - 2)

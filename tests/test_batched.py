"""Many models at once: ``train_many`` against ``train()`` one by one (the oracle), the grouping
rule, the run folders, resume from a batched checkpoint, a diverging member."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainutil import tiny_config

from cnnlab.common.errors import CnnlabError
from cnnlab.models import zoo as models
from cnnlab.training import checkpoint
from cnnlab.training.batched import batch_key, group_configs, train_many
from cnnlab.training.batched_model import StackedNets, stacked_loss
from cnnlab.training.engine import TrainingDiverged, loss_and_correct
from cnnlab.training.runlog import read_metrics
from cnnlab.training.trainer import TrainConfig, train

torch.set_num_threads(1)

DROP = "conv3x3x4 relu maxpool2 dropout(keep=0.5) fc16 relu dropout(keep=0.5) fc10"
# per model: seed, lr, l2, label smoothing, momentum, keep_prob (None: the spec's own 0.5)
MEMBERS = [(0, 3e-3, 0.0, 0.0, 0.9, None), (1, 1e-2, 1e-3, 0.1, 0.5, 0.7),
           (2, 3e-3, 0.0, 0.0, 0.9, 0.9)]


def _group(tmp_path: Path, optimizer: str, spec: str = DROP, **kw) -> list[TrainConfig]:
    base = tiny_config(tmp_path, spec=spec, optimizer=optimizer, iterations=25, eval_every=10,
                       log_every=5, plots=False, tensorboard=False, **kw)
    out = []
    for i, (seed, lr, l2, ls, mom, keep) in enumerate(MEMBERS):
        # keep_prob on a spec model sets no dropout: use the named option for the spec's rate
        s = spec if keep is None else spec.replace("keep=0.5", f"keep={keep}")
        out.append(replace(base, out_name=f"m{i}", spec=s, seed=seed, lr=lr, l2=l2,
                           label_smoothing=ls, momentum=mom))
    return out


def _weights(run_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "model.safetensors"))


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd", "adadelta"])
def test_final_weights_equal_training_one_by_one(tmp_path: Path, optimizer: str) -> None:
    cfgs = _group(tmp_path, optimizer)
    assert len({batch_key(c) for c in cfgs}) == 1
    many = train_many(cfgs)
    for cfg, got in zip(cfgs, many, strict=True):
        alone = train(replace(cfg, out_name="alone-" + (cfg.out_name or "")))
        a, b = _weights(got.run_dir), _weights(alone.run_dir)
        assert a.keys() == b.keys()
        for name in a:
            # measured: at most 3e-7 apart after 25 steps (the grouped sums round differently)
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
        assert got.iterations == alone.iterations == 25
        assert got.test_acc == pytest.approx(alone.test_acc, abs=0.011)  # 100 test examples
        assert got.test_loss == pytest.approx(alone.test_loss, rel=1e-4)
        mine, theirs = read_metrics(got.run_dir), read_metrics(alone.run_dir)
        assert [(r["kind"], r["iteration"]) for r in mine] == [
            (r["kind"], r["iteration"]) for r in theirs]
        for r, s in zip(mine, theirs, strict=True):
            for key in ("batch_loss", "train_loss", "test_loss", "lr", "regularizer"):
                if s.get(key) is not None:
                    assert r[key] == pytest.approx(s[key], rel=1e-4), key


def test_models_with_different_rates_differ(tmp_path: Path) -> None:
    # the oracle above would pass trivially if all members trained the same model
    a, b, c = (_weights(r.run_dir) for r in train_many(_group(tmp_path, "adam")))
    assert all(not torch.equal(a[n], b[n]) and not torch.equal(a[n], c[n]) for n in a)


@pytest.mark.parametrize("spec", [
    DROP,
    "conv3x3x4(padding=1) tanh avgpool2 conv3x3x6(stride=2) relu fc10",
    "fc32 relu dropout(keep=0.8) fc10",
])
def test_grouped_and_vmap_paths_equal_the_nets(spec: str) -> None:
    """Forward and gradients of both stacked paths against each net's own forward."""
    mdef = models.resolve(spec)
    nets = [mdef.build((1, 12, 12), seed=s) for s in range(3)]
    x = torch.randn(3, 5, 1, 12, 12)
    y = torch.randint(0, 10, (3, 5))
    ds = type("DS", (), {"num_classes": 10, "heads": 1, "score": "class"})()
    want = [torch.autograd.grad(loss_and_correct(n.eval()(x[k]), y[k], ds)[0],
                                list(n.parameters())) for k, n in enumerate(nets)]
    for force_vmap in (False, True):
        stack = StackedNets(nets, x[0])
        stack.force_vmap = force_vmap
        stack.train(False)
        out = stack.forward(x)
        for k, n in enumerate(nets):
            torch.testing.assert_close(out[k], n(x[k]).flatten(1), rtol=1e-5, atol=1e-6)
        shared = stack.forward(x[0], shared_x=True)
        torch.testing.assert_close(shared[1], nets[1](x[0]).flatten(1), rtol=1e-5, atol=1e-6)
        loss, _ = stacked_loss(out, y, ds)
        loss.sum().backward()
        for k in range(3):
            for name, g in zip(stack.names, want[k], strict=True):
                torch.testing.assert_close(stack.params[name].grad[k], g, rtol=1e-4, atol=1e-6)


def test_a_residual_net_takes_the_vmap_path_and_equals_the_nets() -> None:
    spec = "conv3x3x2(padding=1) res{conv3x3x2(padding=1) relu} fc10"
    nets = [models.resolve(spec).build((1, 8, 8), seed=s) for s in range(2)]
    seq = [models.resolve("conv3x3x2(padding=1) relu fc10").build((1, 8, 8), seed=0)]
    assert StackedNets(seq, torch.zeros(2, 1, 8, 8)).steps is not None
    stack = StackedNets(nets, torch.zeros(2, 1, 8, 8))
    assert stack.steps is None
    x = torch.randn(2, 4, 1, 8, 8)
    out = stack.forward(x)
    for k, n in enumerate(nets):
        torch.testing.assert_close(out[k], n(x[k]).flatten(1), rtol=1e-5, atol=1e-6)


def test_grouping_rule(tmp_path: Path) -> None:
    base = tiny_config(tmp_path, spec="conv3x3x4 relu maxpool2 fc16 relu fc10")
    same = [replace(base, seed=1), replace(base, lr=0.5), replace(base, l2=1e-3),
            replace(base, label_smoothing=0.1), replace(base, momentum=0.5),
            replace(base, schedule="cosine"), replace(base, out_name="x"),
            replace(base, threads=None, tensorboard=False, progress="on")]
    assert {batch_key(c) for c in same[:7]} == {batch_key(base)}
    assert batch_key(same[7]) != batch_key(base)  # a group shares its threads
    other = [replace(base, iterations=31), replace(base, batch_size=10),
             replace(base, optimizer="sgd"), replace(base, spec="conv3x3x8 relu fc10"),
             replace(base, train_size=50), replace(base, eval_every=5)]
    keys = {batch_key(c) for c in other} | {batch_key(base)}
    assert None not in keys and len(keys) == len(other) + 1
    for alone in (dict(augment="shift=1"), dict(target_acc=0.9), dict(batch_norm=True),
                  dict(precision="bf16"), dict(compile=True), dict(model="baseline",
                                                                      spec=None, batch_norm=True)):
        assert batch_key(replace(base, **alone)) is None, alone
    # dropout rates may differ; keep_prob 1.0 is the model without dropout
    named = replace(base, spec=None, model="baseline")
    assert batch_key(replace(named, keep_prob=0.5)) == batch_key(replace(named, keep_prob=0.8))
    assert batch_key(replace(named, keep_prob=1.0)) == batch_key(named)
    assert batch_key(replace(named, keep_prob=0.5)) != batch_key(named)
    cfgs = [replace(base, seed=i) for i in range(5)] + [replace(base, augment="noise=0.1")]
    assert group_configs(cfgs, max_size=2) == [[0, 1], [2, 3], [4], [5]]
    with pytest.raises(CnnlabError, match="cannot train as one group"):
        train_many([base, replace(base, iterations=5, out_name="y")])


def test_run_folders_are_trains_and_resume_from_a_batched_checkpoint(tmp_path: Path) -> None:
    cfgs = [replace(c, checkpoint_every=5) for c in _group(tmp_path, "adam")]
    with pytest.raises(KeyboardInterrupt):
        train_many(cfgs, stop_at=15)
    # the interrupted member continues with train() from its batched checkpoint
    resumed = train(replace(cfgs[1], resume=True))
    alone = train(replace(cfgs[1], out_name="alone"))
    for name, w in _weights(alone.run_dir).items():
        torch.testing.assert_close(_weights(resumed.run_dir)[name], w, rtol=1e-4, atol=1e-5)
    assert {p.name for p in Path(resumed.run_dir).iterdir()} == {
        p.name for p in Path(alone.run_dir).iterdir()}
    done = train_many([replace(c, overwrite=True, plots=True, tensorboard=True) for c in cfgs])
    want = {p.name for p in Path(alone.run_dir).iterdir()} | {"plots"}
    for cfg, res in zip(cfgs, done, strict=True):
        run = Path(res.run_dir)
        assert {p.name for p in run.iterdir() if not p.name.startswith("events.")} == want
        assert list(run.glob("events.out.tfevents.*"))
        assert (run / "plots" / "accuracy.png").is_file()
        assert json.loads((run / "config.json").read_text())["out_name"] == cfg.out_name
        assert json.loads((run / "result.json").read_text())["test_acc"] == res.test_acc
        assert json.loads((run / "env.json").read_text())["batched"]["group"] == ["m0", "m1",
                                                                                  "m2"]
        assert checkpoint.latest(run / "checkpoints").name == "step-00000025"
        assert [r["iteration"] for r in read_metrics(run) if r["kind"] == "eval"] == [10, 20, 25]


def test_a_diverging_member_stops_and_the_others_finish(tmp_path: Path) -> None:
    cfgs = _group(tmp_path, "sgd")
    # lr * 1e12 from the second epoch on (10 steps per epoch), as in test_train
    cfgs[1] = replace(cfgs[1], schedule="step", step_gamma=1e12, lr=1e-2)
    with pytest.raises(TrainingDiverged) as err:
        train(replace(cfgs[1], out_name="alone"))
    many = train_many(cfgs)
    assert many[1].stopped.startswith("diverged") and many[1].iterations == err.value.iteration
    saved = json.loads((Path(many[1].run_dir) / "result.json").read_text())
    assert saved["stopped"] == many[1].stopped
    alone = train(replace(cfgs[2], out_name="alone2"))
    torch.testing.assert_close(_weights(many[2].run_dir)["layers.fc2.weight"],
                               _weights(alone.run_dir)["layers.fc2.weight"], rtol=1e-4,
                               atol=1e-5)
    assert many[0].stopped == "completed"

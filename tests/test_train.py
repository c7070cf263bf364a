"""The trainer on tiny synthetic data: learning, L2, dropout at eval, resume, NaN, run folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainutil import tiny_config

from cnnlab.common.errors import CnnlabError
from cnnlab.models import zoo as models
from cnnlab.training import checkpoint
from cnnlab.training.engine import TrainingDiverged, evaluate, loss_and_correct
from cnnlab.training.optim import fc_layers, l2_raw, lr_at
from cnnlab.training.trainer import TrainConfig, train

torch.set_num_threads(1)


def test_trains_and_writes_run_folder(tmp_path):
    r = train(tiny_config(tmp_path, iterations=40))
    run = Path(r.run_dir)
    assert r.iterations == 40 and r.stopped == "completed"
    assert r.test_acc > 0.5  # chance is 0.1
    assert r.param_count == sum(p.numel() for p in models.resolve(
        "conv3x3x4 relu maxpool2 fc16 relu fc10").build((1, 28, 28)).parameters())
    for name in ("config.json", "env.json", "metrics.jsonl", "result.json",
                 "model.safetensors", "checkpoints/latest.json"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["out_name"] == "r" and cfg["lr"] == 3e-3
    env = json.loads((run / "env.json").read_text())
    assert {"torch", "python", "device", "git_sha"} <= set(env)
    for fig in ("accuracy", "loss", "ratio"):
        for fmt in ("png", "svg"):
            assert (run / "plots" / f"{fig}.{fmt}").stat().st_size > 1000
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in line]
    assert [e["iteration"] for e in evals] == [10, 20, 30, 40]
    assert r.history[-1]["test_acc"] == r.test_acc


def test_tensorboard_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = train(tiny_config(tmp_path, iterations=20, l2=1e-3, plots=False))
    events = list(Path(r.run_dir).glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(r.run_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"accuracy/train", "accuracy/test", "loss/train", "loss/test", "step_time",
            "regularizer", "lr", "batch/loss", "batch/accuracy"} <= tags
    assert [e.step for e in acc.Scalars("accuracy/test")] == [10, 20]
    assert all(e.value > 0 for e in acc.Scalars("step_time"))


def test_l2_is_the_eth_formula_over_fc_layers():
    net = models.get("eth", conv2=True, batch_norm=True).build(seed=0)
    fcs = fc_layers(net)
    assert len(fcs) == 2  # fc1024 and fc10; convs and BN are not regularized
    by_hand = sum(float((m.weight.detach() ** 2).sum() + (m.bias.detach() ** 2).sum()) for m in fcs)
    assert float(l2_raw(fcs).detach()) == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(CnnlabError):
        l2_raw([])


def test_l2_changes_the_gradient_by_2_lambda_w(tmp_path):
    # one SGD step with and without l2 from the same start: the weight difference is -lr*2λW
    lam, lr = 0.5, 0.1
    a = train(tiny_config(tmp_path, optimizer="sgd", lr=lr, iterations=1, l2=0.0,
                          out_name="a", plots=False, tensorboard=False, normalize=False))
    b = train(tiny_config(tmp_path, optimizer="sgd", lr=lr, iterations=1, l2=lam,
                          out_name="b", plots=False, tensorboard=False, normalize=False))
    start = models.resolve("conv3x3x4 relu maxpool2 fc16 relu fc10").build((1, 28, 28), seed=0)
    wa = load_file(str(Path(a.run_dir) / "model.safetensors"))
    wb = load_file(str(Path(b.run_dir) / "model.safetensors"))
    w0 = start.state_dict()
    for key in ("layers.fc1.linear.weight", "layers.fc2.bias"):
        torch.testing.assert_close(wb[key] - wa[key], -lr * 2 * lam * w0[key], rtol=1e-4,
                                   atol=1e-6)
    torch.testing.assert_close(wb["layers.conv1.weight"], wa["layers.conv1.weight"])


def test_dropout_is_off_at_evaluation(tmp_path):
    from cnnlab.data.datasets import load

    ds = load("tiny", data_dir=tiny_config(tmp_path).data_dir)
    net = models.get("shallow", keep_prob=0.5).build(seed=0)
    x, y = ds.x_test, ds.y_test
    first = evaluate(net, x, y, ds, 32, torch.device("cpu"))
    assert evaluate(net, x, y, ds, 7, torch.device("cpu")) == pytest.approx(first)
    assert net.training  # evaluate restores the mode
    assert not torch.equal(net(x[:8]), net(x[:8]))  # dropout active in training mode


def test_two_head_scoring():
    from cnnlab.data.datasets import Dataset

    ds = Dataset("p", torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), 10,
                 heads=2, score="sum")
    out = torch.full((3, 20), -5.0)
    for i, (a, b) in enumerate([(3, 4), (2, 5), (1, 1)]):
        out[i, a] = out[i, 10 + b] = 5.0
    y = torch.tensor([[3, 4], [4, 3], [1, 2]])
    loss, ok = loss_and_correct(out, y, ds)
    assert int(ok) == 2  # (2,5) sums to 7 like (4,3); (1,1) does not sum to 3
    assert float(loss) > 0


def test_resume_is_exact(tmp_path):
    kw = dict(iterations=24, eval_every=8, checkpoint_every=6, plots=False,
              model="baseline", spec=None, model_opts="widths=4x8x16", keep_prob=0.7,
              augment="shift=2,noise=0.05", optimizer="momentum", lr=0.05,
              schedule="onecycle")
    full = train(tiny_config(tmp_path, out_name="full", **kw))
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, out_name="killed", **kw), stop_at=15)
    ckpt = checkpoint.latest(tmp_path / "runs" / "killed" / "checkpoints")
    assert ckpt is not None and ckpt.name == "step-00000012"
    with pytest.raises(CnnlabError, match="differs"):
        train(tiny_config(tmp_path, out_name="killed", resume=True, **{**kw, "lr": 0.1}))
    resumed = train(tiny_config(tmp_path, out_name="killed", resume=True, **kw))
    a = load_file(str(Path(full.run_dir) / "model.safetensors"))
    b = load_file(str(Path(resumed.run_dir) / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.test_acc == full.test_acc and resumed.iterations == 24
    evals = [r["iteration"] for r in resumed.history]
    assert evals == [8, 16, 24]


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    # lr * 1e12 from the second epoch on (10 steps per epoch): the loss explodes after step 10
    cfg = tiny_config(tmp_path, optimizer="sgd", lr=1e-2, schedule="step", step_gamma=1e12,
                      iterations=40, checkpoint_every=5, eval_every=5, plots=False)
    with pytest.raises(TrainingDiverged, match="NaN/inf at iteration") as e:
        train(cfg)
    assert e.value.iteration > 10
    ckpt = checkpoint.latest(tmp_path / "runs" / "r" / "checkpoints")
    assert ckpt is not None and ckpt == e.value.checkpoint
    weights = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("name", ["..", "../x", "a/../../b", "/tmp/abs", ""])
def test_out_name_cannot_escape(tmp_path, name):
    with pytest.raises(CnnlabError, match="out-name"):
        train(tiny_config(tmp_path, out_name=name))


def test_existing_run_not_overwritten(tmp_path):
    train(tiny_config(tmp_path, iterations=5, plots=False, tensorboard=False))
    with pytest.raises(CnnlabError, match="--resume.*--overwrite"):
        train(tiny_config(tmp_path, iterations=5))
    r = train(tiny_config(tmp_path, iterations=5, overwrite=True, plots=False))
    assert r.iterations == 5
    with pytest.raises(CnnlabError, match="no such run"):
        train(tiny_config(tmp_path, out_name="other", resume=True))


def test_target_accuracy_stops_early(tmp_path):
    r = train(tiny_config(tmp_path, iterations=200, eval_every=5, target_acc=60, plots=False))
    assert r.stopped == "target" and r.iterations < 200
    assert r.iteration_to_target == r.iterations and r.test_acc >= 0.6
    assert 0 < r.time_to_target <= r.train_time


def test_subset_upfront_augment_and_model_output_check(tmp_path):
    r = train(tiny_config(tmp_path, train_size=50, augment="shift=1", augment_mode="upfront",
                          augment_copies=2, iterations=5, plots=False))
    env = json.loads((Path(r.run_dir) / "env.json").read_text())
    assert env["train_examples"] == 150
    with pytest.raises(CnnlabError, match="outputs 19 values"):
        train(tiny_config(tmp_path, spec="conv3x3x4 relu fc19", out_name="bad"))


def test_schedules():
    assert lr_at("constant", 0.1, 5, 10, 2) == 0.1
    assert lr_at("onecycle", 1.0, 0, 100, 10, warmup=0.2) == pytest.approx(0.1)
    assert lr_at("onecycle", 1.0, 20, 100, 10, warmup=0.2) == pytest.approx(1.0)
    assert lr_at("onecycle", 1.0, 100, 100, 10, warmup=0.2) == pytest.approx(0.0)
    assert lr_at("cosine", 1.0, 50, 100, 10) == pytest.approx(0.5)
    assert lr_at("step", 1.0, 25, 100, 10, gamma=0.7) == pytest.approx(0.49)


def test_config_rejects_unknown_keys_and_both_lengths(tmp_path):
    with pytest.raises(CnnlabError, match="unknown key"):
        TrainConfig.from_dict({"lr": 0.1, "learning_rate": 0.1})
    with pytest.raises(CnnlabError, match="not both"):
        train(tiny_config(tmp_path, iterations=5, epochs=1.0))


def test_real_mnist_smoke(tmp_path):
    root = os.environ.get("CNNLAB_DATA")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("CNNLAB_DATA does not hold mnist/")
    r = train(TrainConfig(model="fast", dataset="mnist", runs_dir=str(tmp_path), out_name="m",
                          optimizer="adam", lr=3e-3, batch_size=128, iterations=100,
                          eval_every=100, schedule="onecycle", progress="off", plots=False,
                          train_eval_size=1000, threads=1))
    assert r.test_acc > 0.9


def test_precision_auto_resolves_per_device(tmp_path):
    from cnnlab.training.engine import native_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    r = train(tiny_config(tmp_path, iterations=10, precision="auto", channels_last="on",
                          plots=False, tensorboard=False))
    env = json.loads((Path(r.run_dir) / "env.json").read_text())
    assert env["precision"] == resolve_precision("auto", cpu)
    assert r.test_acc > 0.2


@pytest.mark.parametrize("name,convs_k,biases,norms", [
    ("fast2", [5, 5], [False, False], 2), ("fast3", [5, 3], [False, False], 2),
    ("fast4", [5, 3], [True, False], 1)])
def test_fast_models_and_the_presets(name, convs_k, biases, norms):
    from cnnlab.training.presets import FAST2_RECIPE, FAST3_RECIPE, FAST_RECIPE, PRESETS

    net = models.get(name).build(seed=0)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == convs_k
    assert convs[0].stride == (2, 2) and [c.bias is not None for c in convs] == biases
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == norms
    assert models.get(name, widths="8x16x32").build(seed=0)(torch.zeros(1, 1, 28, 28)).shape \
        == (1, 10)
    for recipe in PRESETS.values():  # valid configs: demo, `train --preset` and the benchmark
        assert TrainConfig(**recipe).precision == "auto"
    assert (FAST_RECIPE["model"], FAST3_RECIPE["model"], FAST2_RECIPE["model"]) == (
        "fast4", "fast3", "fast2")
    assert {k: v for k, v in FAST_RECIPE.items() if k != "model"} == {
        k: v for k, v in FAST3_RECIPE.items() if k != "model"}
    # the earlier recipe's model keeps its definition
    assert models.get("fast").spec.startswith("conv5x5x16 bn relu maxpool2")

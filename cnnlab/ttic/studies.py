"""The three TTIC studies as functions returning plain dicts of measured numbers.

Each trains through :func:`cnnlab.training.trainer.train` (run folders under ``runs_dir``) or the
trainer's engine, and measures what docs/ttic.md reports. ``quick=True`` shrinks every run to a
smoke test of the same code path. ``bench/ttic_experiments.py`` calls these and plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.analysis.hook_count import hook_macs
from cnnlab.ir.spec import parse
from cnnlab.models import zoo as models
from cnnlab.training.trainer import RunResult, TrainConfig, train

INV_SQRT2 = 2 ** -0.5


def _train(runs_dir: Path, name: str, threads: int, **cfg: Any) -> RunResult:
    base = {"runs_dir": str(runs_dir), "out_name": name, "overwrite": True, "device": "cpu",
            "threads": threads, "progress": "off", "tensorboard": False}
    return train(TrainConfig(**{**base, **cfg}))


def _summary(res: RunResult) -> dict[str, Any]:
    return {"run_dir": res.run_dir, "iterations": res.iterations, "test_acc": res.test_acc,
            "train_acc": res.train_acc, "test_loss": res.test_loss,
            "train_time_s": res.train_time, "params": res.param_count}


# ----------------------------------------------------------------------------- video


def video_macs(frames: int = 8, size: int = 64, batch: int = 1) -> list[dict[str, Any]]:
    """Per conv of ``video3d``: analyzer MACs, the sheet's formula, the hook count."""
    from cnnlab.ir.shapes import window_params
    from cnnlab.ttic.video3d import sheet_macs

    mdef = models.get("video3d", frames=frames, size=size)
    graph, shape = parse(mdef.spec), mdef.input_shape
    a = analyze_graph(graph, shape, batch=batch)
    hooks = hook_macs(mdef.build(seed=0).eval(), torch.zeros(batch, *shape))
    shapes = {r.name: r.output_shape for r in a.layers}
    rows = []
    for r in a.layers:
        if r.kind != "conv":
            continue
        node = graph.node(r.name)
        kt, ky, kx = window_params(node, shapes[node.inputs[0]]).kernel
        n_out, t, y, x = r.output_shape
        rows.append({"layer": r.name, "output_XYT": [x, y, t], "analyzer": r.macs,
                     "formula": sheet_macs(batch, (x, y, t), (kx, ky, kt), n_out,
                                           shapes[node.inputs[0]][0]),
                     # an asymmetric 'same' pad wraps the Conv3d one level deeper
                     "hooks": sum(v for k, v in hooks.items() if k.split(".")[1] == r.name)})
    return rows


def video_study(runs_dir: Path, quick: bool = False, threads: int = 1,
                data_dir: str | None = None) -> dict[str, Any]:
    """Train ``video3d`` on moving-MNIST: class = digit, and class = direction of motion."""
    its = 40 if quick else 1000
    common = {"model": "video3d", "data_dir": data_dir, "iterations": its, "batch_size": 32,
              "optimizer": "adam", "lr": 1e-3, "eval_every": max(its // 4, 1),
              "train_eval_size": 500, "eval_batch_size": 250, "plots": True}
    runs = {
        "digit": _train(runs_dir, "video3d-digit", threads, dataset="moving-mnist", **common),
        "direction": _train(runs_dir, "video3d-direction", threads,
                            dataset="moving-mnist-direction", model_opts="classes=8", **common),
    }
    return {"macs": video_macs(), "runs": {k: _summary(v) for k, v in runs.items()},
            "chance": {"digit": 0.1, "direction": 0.125}}


# ----------------------------------------------------------------------------- bottleneck


def bottleneck_study(runs_dir: Path, quick: bool = False, threads: int = 1,
                     data_dir: str | None = None) -> dict[str, Any]:
    """Problem 3 (a)-(c): MACs, init statistics, gradient vs depth, training probes."""
    from cnnlab.ttic.bottleneck import grad_vs_depth, init_statistics, macs_report, train_probe

    gammas = (1.0, INV_SQRT2)
    reports = [macs_report(8, 256, nb) for nb in (32, 64, 127, 128, 129, 192)]
    out: dict[str, Any] = {
        "macs": [asdict(r) | {"cheaper": r.bottleneck_cheaper} for r in reports],
        "init": [asdict(init_statistics(12, g, branch=b, samples=1024 if quick else 4096))
                 for g in gammas for b in ("synthetic", "relu")],
        "grad_depth": [],
        "train": [],
    }
    depths = list(range(2, 13))
    for g in gammas + (0.5,):
        for mode in ("linear", "init"):
            r = grad_vs_depth(depths, g, mode=mode, batch=64 if quick else 256)
            out["grad_depth"].append(asdict(r) | {"log_gamma": r.log_gamma,
                                                  "ratios": r.ratios})
    its = 30 if quick else 600
    for depth in ((4, 12) if quick else (4, 12, 24)):
        for g in gammas:
            for opt, lr in (("sgd", 0.05), ("adam", 1e-3)):
                p = train_probe(g, depth, iterations=its, optimizer=opt, lr=lr,
                                probe_every=max(its // 30, 1), data_dir=data_dir,
                                train_size=2000 if quick else None, threads=threads)
                out["train"].append(asdict(p) | {"grad_ratio": p.grad_ratio,
                                                 "update_ratio": p.update_ratio})
    return out


# ----------------------------------------------------------------------------- pyramid


def _load_trained(res: RunResult, model: str, opts: dict[str, Any]) -> tuple[
        torch.nn.Module, float, float]:
    from safetensors.torch import load_model

    run = Path(res.run_dir)
    env = json.loads((run / "env.json").read_text())
    net = models.get(model, **opts).build((1, 64, 64))
    load_model(net, str(run / "model.safetensors"))
    return net.eval(), float(env["normalize_mean"]), float(env["normalize_std"])


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    with torch.inference_mode():
        hits = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, x.shape[0], batch))
    return hits / max(x.shape[0], 1)


def pyramid_study(runs_dir: Path, quick: bool = False, threads: int = 1,
                  data_dir: str | None = None,
                  scales: tuple[float, ...] = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75,
                                               2.0), normalize: bool = True) -> dict[str, Any]:
    """Train the pyramid and the same-budget plain CNN on digits at scales 0.5-1 only
    (``multiscale-mnist-small``), then test each at every scale in ``scales``.

    ``normalize=False`` keeps raw pixels, so the background is 0 like the convolutions' zero
    padding (standardizing makes it ``-mean/std``, and the border then looks different at
    every scale of the pyramid)."""
    from cnnlab.ttic.multiscale import scale_test_set

    its = 60 if quick else 1500
    common = {"dataset": "multiscale-mnist-small", "data_dir": data_dir, "iterations": its,
              "batch_size": 64, "optimizer": "adam", "lr": 2e-3, "schedule": "onecycle",
              "eval_every": max(its // 5, 1), "train_eval_size": 1000, "plots": True,
              "normalize": normalize}
    out: dict[str, Any] = {"train_scales": [0.5, 1.0], "scales": list(scales), "models": {},
                           "normalize": normalize}
    tests = {s: scale_test_set(s, 300 if quick else 2000, data_dir=data_dir) for s in scales}
    for model in ("pyramid", "plain-cnn"):
        mdef = models.get(model)
        res = _train(runs_dir, model, threads, model=model, **common)
        net, mean, std = _load_trained(res, model, {})
        params = sum(p.numel() for p in net.parameters())
        analyzer = (analyze_graph(parse(mdef.spec), (1, 64, 64)).total.params if mdef.spec
                    else None)
        per_scale = [accuracy(net, (t.x - mean) / std, t.y) for t in tests.values()]
        out["models"][model] = {"params": params, "params_analyzer": analyzer,
                                "spec": mdef.spec, "run": _summary(res),
                                "acc_per_scale": per_scale}
    p, q = (out["models"][m]["params"] for m in ("pyramid", "plain-cnn"))
    out["budget_ratio"] = q / p
    out["mean_acc_unseen"] = {
        m: sum(a for s, a in zip(scales, v["acc_per_scale"], strict=True) if s > 1.0)
        / max(sum(1 for s in scales if s > 1.0), 1) for m, v in out["models"].items()}
    return out


def finite(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj

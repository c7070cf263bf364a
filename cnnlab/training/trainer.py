"""The training engine: ``train(TrainConfig) -> RunResult``.

Built for speed on small data: the whole dataset lives as tensors on the training device,
mini-batches are an index permutation (no DataLoader, no per-sample Python), evaluation is
batched under ``torch.inference_mode``, and on a GPU bf16 autocast, channels_last and
``torch.compile`` are available. Every run owns ``runs/<out-name>/`` (see docs/training.md):
config, environment, metrics, TensorBoard events, plots and exact-resume checkpoints.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json, write_bytes, write_json
from cnnlab.data.datasets import Dataset
from cnnlab.models import zoo as models
from cnnlab.training import checkpoint, rundir
from cnnlab.training.engine import Loop, evaluate, loss_and_correct, resolve_precision  # noqa: F401
from cnnlab.training.runlog import Progress, RunLog
from cnnlab.training.settings import (  # noqa: F401 - re-exported: the trainer's public names
    RESULT_FREE_KEYS,
    TrainConfig,
    check_config,
    check_ranges,
)
from cnnlab.training.threads import auto_threads


@dataclass
class RunResult:
    run_dir: str
    iterations: int
    train_acc: float
    test_acc: float
    train_loss: float
    test_loss: float
    wall_time: float  # seconds, this session (setup, evaluation, logging included)
    train_time: float  # seconds in training steps only, all sessions
    time_to_target: float | None  # train_time when test accuracy first reached target_acc
    iteration_to_target: int | None
    param_count: int
    images_per_s: float
    stopped: str  # "completed" or "target"
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(name)


def model_options(cfg: TrainConfig) -> dict[str, Any]:
    from cnnlab.ir.spec import parse_value

    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in cfg.model_opts.split(","))):
        if "=" not in part:
            raise CnnlabError(f"--model-opts: expected key=value, got {part!r}")
        k, v = part.split("=", 1)
        opts[k.strip()] = parse_value(v)
    if cfg.keep_prob is not None:
        opts["keep_prob"] = cfg.keep_prob
    if cfg.batch_norm:
        opts["batch_norm"] = True
    return opts


def build_model(cfg: TrainConfig, ds: Dataset) -> tuple[models.ModelDef, nn.Module]:
    mdef = models.resolve(cfg.spec or cfg.model, **model_options(cfg))
    net = mdef.build(ds.input_shape, seed=cfg.seed)
    layers = getattr(net, "layers", None)
    if isinstance(layers, nn.ModuleDict) and isinstance(list(layers.values())[-1], nn.Softmax):
        # the sheets' final 'softmax'/'loss' layer is part of the cross-entropy here
        layers[list(layers.keys())[-1]] = nn.Identity()
    want = ds.num_classes * ds.heads
    net.eval()
    with torch.no_grad():
        got = net(ds.x_train[:2].cpu()).flatten(1).shape[1]
    net.train()
    if got != want:
        raise CnnlabError(f"model {mdef.name!r} outputs {got} values per example but "
                          f"{ds.name} needs {want} ({ds.heads} head(s) of {ds.num_classes})")
    return mdef, net


def prepare_data(cfg: TrainConfig, device: torch.device) -> tuple[Dataset, float, float]:
    from cnnlab.data.augment import Augment, augment_upfront
    from cnnlab.data.datasets import load
    from cnnlab.data.derived import subset, validation_split

    ds = load(cfg.dataset, cfg.data_dir, device)
    if cfg.augment:
        Augment.parse(cfg.augment).check_image(ds.input_shape)
    if cfg.validation:
        ds = validation_split(ds, cfg.validation, cfg.seed)
    if cfg.train_size is not None:
        ds = subset(ds, cfg.train_size, cfg.seed)
    if cfg.augment and cfg.augment_mode == "upfront":
        ds = augment_upfront(ds, Augment.parse(cfg.augment), cfg.augment_copies, cfg.seed + 7)
    mean, std = 0.0, 1.0
    if cfg.normalize:
        mean, std = float(ds.x_train.mean()), float(ds.x_train.std())
        ds = ds.with_train((ds.x_train - mean) / std, ds.y_train)
        ds.x_test = (ds.x_test - mean) / std
    return ds, mean, std


def _resume_config(cfg: TrainConfig, run_dir: Path) -> None:
    saved = read_json(run_dir / "config.json")
    now = asdict(cfg)
    diff = sorted(k for k in now if k not in RESULT_FREE_KEYS and saved.get(k) != now[k])
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in diff)
        raise CnnlabError(f"--resume: the config differs from the run's ({shown}); resume "
                          "with the same settings or start a new --out-name")


def _drop_torn_line(path: Path) -> None:
    """A run killed in the middle of writing a metrics line leaves it unfinished: drop it."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            write_bytes(path, data[:data.rfind(b"\n") + 1])


def open_run(cfg: TrainConfig) -> tuple[str, Path, Path | None]:
    """The run's name, folder and (with ``resume``) checkpoint to continue from.

    Fails before touching the folder: nothing is created or replaced here.
    """
    name = cfg.out_name
    if name is None:
        name = rundir.default_name(cfg.spec or cfg.model, cfg.dataset)
    run_dir = rundir.run_path(cfg.runs_dir, name)
    if cfg.resume and (run_dir / "config.json").exists():
        _resume_config(cfg, run_dir)
    rundir.check(run_dir, cfg.resume, cfg.overwrite)
    ckpt = checkpoint.latest(run_dir / "checkpoints") if cfg.resume else None
    if cfg.resume and ckpt is None:
        raise CnnlabError(f"cannot resume {run_dir}: it has no checkpoint yet; start it again "
                          "with --overwrite")
    return name, run_dir, ckpt


def schedule_length(cfg: TrainConfig, ds: Dataset) -> tuple[int, int]:
    """(total training steps, steps per epoch) of ``cfg`` on ``ds``."""
    steps_per_epoch = max(ds.x_train.shape[0] // cfg.batch_size, 1)
    if cfg.epochs is not None:
        total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    else:
        total = cfg.iterations if cfg.iterations is not None else 20000
    return total, steps_per_epoch


def write_run_header(run_dir: Path, cfg: TrainConfig, name: str, device: torch.device,
                     mdef: models.ModelDef, ds: Dataset, total: int, steps_per_epoch: int,
                     mean: float, std: float, **extra_env: Any) -> None:
    """``config.json`` (unless resuming) and ``env.json`` of a run about to train."""
    if not cfg.resume:
        write_json(run_dir / "config.json", {**asdict(cfg), "out_name": name})
    write_json(run_dir / "env.json", {
        **rundir.environment(device), "model": mdef.name, "spec": mdef.spec,
        "precision": resolve_precision(cfg.precision, device),
        "input_shape": list(ds.input_shape), "iterations": total,
        "steps_per_epoch": steps_per_epoch, "train_examples": int(ds.x_train.shape[0]),
        "eval_examples": int(ds.x_test.shape[0]), "normalize_mean": mean,
        "normalize_std": std, "dataset_info": ds.info, **extra_env})


def finish_run(run_dir: Path, cfg: TrainConfig, net: nn.Module, mdef: models.ModelDef,
               ds: Dataset, mean: float, std: float, result: RunResult) -> RunResult:
    """Final weights (``model.safetensors``), ``result.json`` and the plots of a finished run."""
    checkpoint.save_weights(run_dir / "model.safetensors", net, {
        "model": mdef.name, "spec": mdef.spec, "input_shape": "x".join(map(str, ds.input_shape)),
        "normalize_mean": repr(mean), "normalize_std": repr(std)})
    write_json(run_dir / "result.json", asdict(result))
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        from cnnlab.training.hparams import log_hparams
        from cnnlab.training.tbviews import log_final_views

        writer = SummaryWriter(log_dir=str(run_dir))
        try:
            # the confusion matrix and the misclassified examples; the HParams tab
            log_final_views(writer, net, ds, result.iterations, cfg.eval_batch_size)
            log_hparams(writer, cfg, result, RESULT_FREE_KEYS)
        finally:
            writer.close()
    if cfg.plots:
        from cnnlab.training.plots import plot_run

        plot_run(run_dir)
    return result


def train(cfg: TrainConfig, stop_at: int | None = None) -> RunResult:
    """Train ``cfg`` to completion (or to ``target_acc``) and return its :class:`RunResult`.

    ``stop_at`` aborts with KeyboardInterrupt after that many iterations, as a kill would
    (no final checkpoint): tests use it to check that ``--resume`` is exact.
    """
    cfg = check_config(cfg)
    models.resolve(cfg.spec or cfg.model, **model_options(cfg))  # a typo fails before data loads
    t_wall = time.perf_counter()
    torch.set_num_threads(cfg.threads or auto_threads())  # default: the free cores
    device = resolve_device(cfg.device)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise CnnlabError("--precision fp16 needs CUDA; use bf16 on CPU")
    # fail before touching the folder: nothing is created or replaced until data and model load
    name, run_dir, ckpt = open_run(cfg)
    ckpt_dir = run_dir / "checkpoints"

    ds, mean, std = prepare_data(cfg, device)
    mdef, net = build_model(cfg, ds)
    rundir.prepare(run_dir, cfg.resume, cfg.overwrite)
    total, steps_per_epoch = schedule_length(cfg, ds)
    write_run_header(run_dir, cfg, name, device, mdef, ds, total, steps_per_epoch, mean, std)

    loop = Loop(cfg, ds, net, device, total, steps_per_epoch, fill=-mean / std)
    start = 0
    if ckpt is not None:
        start = loop.restore(ckpt)
    if ckpt is not None:
        _drop_torn_line(run_dir / "metrics.jsonl")
    log = RunLog(run_dir, start, tensorboard=cfg.tensorboard)
    if log.writer is not None and not start:
        from cnnlab.training.tbviews import log_graph

        log_graph(log.writer, net, ds.x_train[:1])
    bar = Progress(total, None if cfg.progress == "auto" else cfg.progress == "on", start=start)
    try:
        outcome = loop.run(start, log, bar, ckpt_dir, stop_at)
    finally:
        bar.close()
        log.close()
    last = loop.history[-1] if loop.history else {}
    result = RunResult(
        run_dir=str(run_dir), iterations=outcome.iteration,
        train_acc=last.get("train_acc", math.nan), test_acc=last.get("test_acc", math.nan),
        train_loss=last.get("train_loss", math.nan), test_loss=last.get("test_loss", math.nan),
        wall_time=time.perf_counter() - t_wall, train_time=loop.train_time,
        time_to_target=loop.time_to_target, iteration_to_target=loop.iteration_to_target,
        param_count=sum(p.numel() for p in net.parameters()),
        images_per_s=loop.images_per_s, stopped=outcome.stopped, history=loop.history)
    return finish_run(run_dir, cfg, net, mdef, ds, mean, std, result)

"""The settings of one training run, :class:`TrainConfig`, and their checks -- without torch,
so ``cnnlab train --help`` and a wrong flag answer at once (the trainer imports torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from cnnlab.common.config import from_dict
from cnnlab.common.errors import CnnlabError


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that determines a run; saved as ``config.json`` in the run folder."""

    model: str = _f("baseline", "named model (`cnnlab analyze` alone lists them), spec string "
                    "or .toml/.json architecture file")
    spec: str | None = _f(None, "spec string to train instead of a named model")
    model_opts: str = _f("", "model options key=value,... e.g. conv2=true,widths=16x32x128")
    dataset: str = _f("mnist", "mnist, fashion-mnist, mnist-pairs-sum, mnist-pairs-digits...")
    data_dir: str | None = _f(None, "folder with the IDX files (else $CNNLAB_DATA, cache...)")
    out_name: str | None = _f(None, "run name: the run lives in RUNS_DIR/OUT_NAME")
    runs_dir: str = _f("runs", "folder holding all runs")
    optimizer: Literal["sgd", "momentum", "adam", "adadelta"] = _f("adam", "optimizer")
    lr: float = _f(1e-4, "(peak) learning rate")
    momentum: float = _f(0.9, "momentum of --optimizer momentum")
    schedule: Literal["constant", "onecycle", "cosine", "step"] = _f(
        "constant", "learning-rate schedule")
    warmup: float = _f(0.25, "onecycle: fraction of the run spent warming up")
    step_gamma: float = _f(0.7, "step schedule: lr factor per epoch")
    batch_size: int = _f(50, "mini-batch size")
    iterations: int | None = _f(None, "training steps (default 20000, the HUJI sheet's)")
    epochs: float | None = _f(None, "training length in epochs (instead of --iterations)")
    keep_prob: float | None = _f(None, "dropout keep probability in training (1.0 at test)")
    l2: float = _f(0.0, "lambda of lambda*(sum W^2 + sum b^2) over the FC layers")
    batch_norm: bool = _f(False, "batch norm after the convolutions (models that offer it)")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing")
    train_size: int | None = _f(None, "stratified subset of N training examples")
    validation: int = _f(0, "hold out N training examples and evaluate on them, not test")
    augment: str = _f("", "augmentation, e.g. shift=2,rotate=10,noise=0.1")
    augment_mode: Literal["batch", "upfront"] = _f("batch", "per mini-batch or enlarge first")
    augment_copies: int = _f(1, "upfront: augmented copies added to the training set")
    normalize: bool = _f(True, "standardize inputs with the training set's mean and std")
    eval_every: int = _f(500, "evaluate every N iterations (and at the end)")
    log_every: int = _f(50, "log batch metrics and step_time (averaged) every N steps")
    checkpoint_every: int | None = _f(None, "checkpoint every N iterations (default eval_every)")
    train_eval_size: int = _f(10000, "training examples evaluated for train accuracy")
    eval_batch_size: int = _f(2000, "batch size of evaluation")
    target_acc: float | None = _f(None, "stop once test accuracy reaches this (0-1 or %)")
    seed: int = _f(0, "seed of initialization, data order, dropout and augmentation")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "training device")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = _f(
        "fp32", "autocast precision (auto: bf16 where the device computes it natively)")
    channels_last: Literal["auto", "on", "off"] = _f("auto", "channels_last (auto: on GPU)")
    compile: bool = _f(False, "torch.compile the model (GPU)")
    threads: int | None = _f(None, "CPU threads (default: the free cores, the usable CPUs "
                             "less the load average, at least 1)")
    tensorboard: bool = _f(True, "write TensorBoard event files")
    plots: bool = _f(True, "write PNG/SVG plots at the end")
    progress: Literal["auto", "on", "off"] = _f("auto", "progress bar (auto: on a terminal)")
    resume: bool = _f(False, "continue the run OUT_NAME from its last checkpoint")
    overwrite: bool = _f(False, "replace an existing run OUT_NAME")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        return from_dict(cls, data, where)


#: The :class:`TrainConfig` fields that change where or how a run is executed or logged, but
#: not its weights: a run may be resumed (``--resume``), and a finished one reused by the
#: experiment executor, when its saved ``config.json`` differs from the new config in these
#: only (a run may move to another machine, device or thread count). ``out_name`` and
#: ``seed`` are not among them: they name the run and fix its randomness. The report hides
#: these keys and those two from its configuration tables.
RESULT_FREE_KEYS: frozenset[str] = frozenset({
    "resume", "overwrite", "progress", "runs_dir", "data_dir", "threads", "plots", "tensorboard",
    "device"})


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Validate ``cfg`` (one-line errors); ``target_acc`` given in % becomes a fraction."""
    if cfg.iterations is not None and cfg.epochs is not None:
        raise CnnlabError("give --iterations or --epochs, not both")
    if cfg.target_acc is not None and cfg.target_acc > 1:
        cfg.target_acc = cfg.target_acc / 100
    for name in ("batch_size", "eval_every", "log_every", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            raise CnnlabError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.iterations is not None and cfg.iterations < 1:
        raise CnnlabError("--iterations must be >= 1")
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise CnnlabError("--epochs must be > 0")
    if not cfg.lr > 0:
        raise CnnlabError(f"--lr must be > 0, got {cfg.lr}")
    if cfg.keep_prob is not None and not 0 < cfg.keep_prob <= 1:
        raise CnnlabError(f"--keep-prob must be in (0, 1], got {cfg.keep_prob}")
    if cfg.l2 < 0:
        raise CnnlabError(f"--l2 must be >= 0, got {cfg.l2}")
    check_ranges(cfg)
    if cfg.precision == "fp16" and cfg.device == "cpu":
        raise CnnlabError("--precision fp16 needs CUDA; use bf16 on CPU")
    return cfg


#: field -> (low, high, low open?, high open?); None fields are not checked
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0, 1e3, True, False), "momentum": (0, 1, False, True), "warmup": (0, 1, False, False),
    "step_gamma": (0, 1e300, True, False), "label_smoothing": (0, 1, False, True),
    "l2": (0, 1e6, False, False), "threads": (1, 4096, False, False),
    "batch_size": (1, 10**7, False, False), "iterations": (1, 10**9, False, False),
    "epochs": (0, 10**6, True, False), "validation": (0, 10**9, False, False),
    "train_size": (1, 10**9, False, False), "augment_copies": (1, 1000, False, False),
    "checkpoint_every": (1, 10**9, False, False), "train_eval_size": (1, 10**9, False, False),
    "target_acc": (0, 1, True, False), "seed": (0, 2**62, False, False),
}


def check_ranges(cfg: TrainConfig) -> None:
    """Each numeric setting inside its domain (:data:`RANGES`), before any work: torch would
    reject some later with a traceback (``--threads -1``, ``--label-smoothing 2``) or train to
    NaN (``--lr 1e40``)."""
    for name, (lo, hi, lo_open, hi_open) in RANGES.items():
        v = getattr(cfg, name)
        if v is None:
            continue
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo) or (
                hi_open and v == hi):
            lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
            raise CnnlabError(f"--{name.replace('_', '-')} {v!r} is outside {lb}{lo:g}, "
                              f"{hi:g}{hb}")
    if cfg.augment:
        from cnnlab.data.augment import Augment

        Augment.parse(cfg.augment)  # a bad --augment fails before the run folder is made

"""The settings of one training run, :class:`TrainConfig`, and their checks -- without torch,
so ``cnnlab train --help`` and a wrong flag answer at once (the trainer imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from cnnlab.common.config import RANGE, check_ranges, from_dict
from cnnlab.common.errors import CnnlabError


def _f(default: Any, help: str, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, hi_open: bool = False) -> Any:
    """A field with its help text and, for a number, its domain (checked by ``from_dict``:
    every flag, config file and recipe value, in one place)."""
    meta: dict[str, Any] = {"help": help}
    if lo is not None and hi is not None:
        meta[RANGE] = (lo, hi, lo_open, hi_open)
    return field(default=default, metadata=meta)


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
    lr: float = _f(1e-4, "(peak) learning rate", 0, 1e3, True)
    momentum: float = _f(0.9, "momentum of --optimizer momentum", 0, 1, False, True)
    schedule: Literal["constant", "onecycle", "cosine", "step"] = _f(
        "constant", "learning-rate schedule")
    warmup: float = _f(0.25, "onecycle: fraction of the run spent warming up", 0, 1)
    step_gamma: float = _f(0.7, "step schedule: lr factor per epoch", 0, 1e300, True)
    batch_size: int = _f(50, "mini-batch size", 1, 10**7)
    iterations: int | None = _f(None, "training steps (default 20000, the HUJI sheet's)", 1, 10**9)
    epochs: float | None = _f(None, "training length in epochs (instead of --iterations)",
                              0, 10**6, True)
    keep_prob: float | None = _f(None, "dropout keep probability in training (1.0 at test)",
                                 0, 1, True)
    l2: float = _f(0.0, "lambda of lambda*(sum W^2 + sum b^2) over the FC layers", 0, 10**6)
    batch_norm: bool = _f(False, "batch norm after the convolutions (models that offer it)")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", 0, 1, False, True)
    train_size: int | None = _f(None, "stratified subset of N training examples", 1, 10**9)
    validation: int = _f(0, "hold out N training examples and evaluate on them, not test", 0, 10**9)
    augment: str = _f("", "augmentation, e.g. shift=2,rotate=10,noise=0.1")
    augment_mode: Literal["batch", "upfront"] = _f("batch", "per mini-batch or enlarge first")
    augment_copies: int = _f(1, "upfront: augmented copies added to the training set", 1, 1000)
    normalize: bool = _f(True, "standardize inputs with the training set's mean and std")
    eval_every: int = _f(500, "evaluate every N iterations (and at the end)", 1, 10**9)
    log_every: int = _f(50, "log batch metrics and step_time (averaged) every N steps", 1, 10**9)
    checkpoint_every: int | None = _f(None, "checkpoint every N iterations (default eval_every)",
                                      1, 10**9)
    train_eval_size: int = _f(10000, "training examples evaluated for train accuracy", 1, 10**9)
    eval_batch_size: int = _f(2000, "batch size of evaluation", 1, 10**7)
    target_acc: float | None = _f(None, "stop once test accuracy reaches this (0-1 or %)",
                                  0, 100, True)
    seed: int = _f(0, "seed of initialization, data order, dropout and augmentation", 0, 2**62)
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "training device")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = _f(
        "fp32", "autocast precision (auto: bf16 where the device computes it natively)")
    channels_last: Literal["auto", "on", "off"] = _f("auto", "channels_last (auto: on GPU)")
    compile: bool = _f(False, "torch.compile the model (GPU)")
    threads: int | None = _f(None, "CPU threads (default: the free cores, the usable CPUs "
                             "less the load average, at least 1)", 1, 4096)
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
    """Validate ``cfg`` (one-line errors); ``target_acc`` given in % becomes a fraction.

    Every number's domain is declared on its field and checked by
    :func:`cnnlab.common.config.check_ranges` (the same check ``from_dict`` makes on every
    flag, config file and recipe value): torch would reject some later with a traceback
    (``--threads -1``, ``--label-smoothing 2``) or train to NaN (``--lr 1e40``).
    """
    if cfg.iterations is not None and cfg.epochs is not None:
        raise CnnlabError("give --iterations or --epochs, not both")
    check_ranges(cfg)
    if cfg.target_acc is not None and cfg.target_acc > 1:
        cfg.target_acc = cfg.target_acc / 100
    if cfg.augment:
        from cnnlab.data.augment import Augment

        Augment.parse(cfg.augment)  # a bad --augment fails before the run folder is made
    if cfg.precision == "fp16" and cfg.device == "cpu":
        raise CnnlabError("--precision fp16 needs CUDA; use bf16 on CPU")
    return cfg

"""Content-addressed runs: a run is named by a hash of what determines its result.

:func:`canonical` reduces a :class:`~cnnlab.training.trainer.TrainConfig` to the fields that
change the trained weights, written in one form per meaning:

* keys that only say where/how a run executes or what it measures are dropped:
  :data:`~cnnlab.training.trainer.RESULT_FREE_KEYS` plus :data:`MEASUREMENT_KEYS`
  (``eval_every`` only while ``target_acc`` is unset: with a target, the evaluations decide
  where training stops). ``tests/test_identity.py`` trains pairs that differ in one of these
  keys and checks that the final weights are bit-identical;
* model options (``model_opts``, ``keep_prob``, ``batch_norm``) are merged as the trainer
  merges them, and an option equal to the model function's default (read from its signature
  in :data:`cnnlab.models.zoo.REGISTRY`) is dropped, so ``keep_prob = 1.0`` and no dropout,
  ``k1 = 5`` and nothing, are one run;
* settings that the chosen optimizer, schedule or augmentation never reads are dropped
  (``momentum`` unless ``optimizer = "momentum"``, ``warmup`` unless ``onecycle``,
  ``step_gamma`` unless ``step``, ``augment_mode``/``augment_copies`` without ``augment``);
* numbers are floats (``1`` = ``1.0``, ``1e-3`` = ``0.001``), tuples are lists, ``target_acc``
  is a fraction, unset ``iterations`` (and no ``epochs``) is the trainer's 20000; the model
  is ``spec`` when given (the trainer ignores ``model`` then), an architecture file adds the
  SHA-256 of its bytes (an edited file is a new run).

:func:`run_id` hashes that (16 hex digits of SHA-256, with :data:`VERSION`); the runs live in
``<runs_dir>/by-id/<id>/``. :func:`merge_needs` gives several configurations of one identity
the finest measurement settings any of them asked for.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import asdict, replace
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.training.trainer import TrainConfig

#: Bumped when the trainer changes what a configuration trains to (old runs then retrain).
VERSION = 2  # 2: Adam runs as torch's fused kernel (the same update to float rounding)
#: Where content-addressed runs live inside a runs folder.
BY_ID = "by-id"
#: Keys that change what is measured or logged during a run, never its weights.
MEASUREMENT_KEYS: frozenset[str] = frozenset({
    "eval_every", "log_every", "train_eval_size", "eval_batch_size", "checkpoint_every"})
#: Dropped always (naming/placement), besides ``RESULT_FREE_KEYS``.
NAME_KEYS: frozenset[str] = frozenset({"out_name"})


def _norm(value: Any) -> Any:
    """One JSON form per meaning: numbers as floats, tuples as lists, dict keys sorted."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in sorted(value.items())}
    return str(value)


def model_defaults(model: str) -> dict[str, Any]:
    """``{option: default}`` of a registered model's function (empty for spec strings/files)."""
    from cnnlab.models import zoo

    zoo.names()  # loads the plugins
    fn = zoo.REGISTRY.get(model)
    if fn is None:
        return {}
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _options(cfg: TrainConfig) -> dict[str, Any]:
    from cnnlab.training.trainer import model_options

    opts = model_options(cfg)
    defaults = model_defaults(cfg.spec or cfg.model)
    return {k: v for k, v in opts.items()
            if k not in defaults or _norm(v) != _norm(defaults[k])}


def _model(cfg: TrainConfig) -> dict[str, Any]:
    source = cfg.spec or cfg.model
    out: dict[str, Any] = {"model": source}
    path = Path(source)
    if source.endswith((".toml", ".json")) and path.is_file():
        out["model_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def canonical(cfg: TrainConfig) -> dict[str, Any]:
    """The result-determining content of ``cfg``, normalised (see the module docstring)."""
    from cnnlab.training.trainer import RESULT_FREE_KEYS

    data = asdict(cfg)
    dropped = set(RESULT_FREE_KEYS) | NAME_KEYS | MEASUREMENT_KEYS
    dropped |= {"model", "spec", "model_opts", "keep_prob", "batch_norm"}
    if cfg.target_acc is not None:
        dropped.discard("eval_every")  # with a target, evaluations decide where it stops
        t = cfg.target_acc
        data["target_acc"] = t / 100 if t > 1 else t
    if cfg.optimizer != "momentum":
        dropped.add("momentum")
    if cfg.schedule != "onecycle":
        dropped.add("warmup")
    if cfg.schedule != "step":
        dropped.add("step_gamma")
    if not cfg.augment:
        dropped |= {"augment_mode", "augment_copies"}
    elif cfg.augment_mode != "upfront":
        dropped.add("augment_copies")
    if cfg.iterations is None and cfg.epochs is None:
        data["iterations"] = 20000
    out = {k: v for k, v in data.items() if k not in dropped}
    out.update(_model(cfg), model_opts=_options(cfg))
    return _norm(out)


def run_id(cfg: TrainConfig) -> str:
    """16 hex digits naming the run that ``cfg`` trains to."""
    text = json.dumps({"version": VERSION, **canonical(cfg)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_name(cfg: TrainConfig) -> str:
    """The run's folder inside its runs folder: ``by-id/<id>``."""
    return f"{BY_ID}/{run_id(cfg)}"


def merge_needs(configs: list[TrainConfig]) -> TrainConfig:
    """One config for several of the same :func:`run_id`: the first, measuring at every
    iteration any of them evaluates or logs at (``eval_every``, ``log_every``: their greatest
    common divisor), training accuracy on the largest ``train_eval_size``, plots and
    TensorBoard if any asks for them."""
    first = configs[0]
    if len(configs) == 1:
        return first
    return replace(
        first,
        eval_every=reduce(math.gcd, (c.eval_every for c in configs)),
        log_every=reduce(math.gcd, (c.log_every for c in configs)),
        train_eval_size=max(c.train_eval_size for c in configs),
        eval_batch_size=max(c.eval_batch_size for c in configs),
        plots=any(c.plots for c in configs), tensorboard=any(c.tensorboard for c in configs))


def covers(saved: dict[str, Any], needed: TrainConfig) -> bool:
    """Whether a finished run's saved config measured everything ``needed`` asks for: its
    evaluations and logs fall on every iteration ``needed`` wants, its training accuracy on
    at least as many examples, and it has the plots/TensorBoard files ``needed`` wants."""
    try:
        return (needed.eval_every % int(saved["eval_every"]) == 0
                and needed.log_every % int(saved["log_every"]) == 0
                and int(saved["train_eval_size"]) >= needed.train_eval_size
                and (saved.get("plots", True) or not needed.plots)
                and (saved.get("tensorboard", True) or not needed.tensorboard))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False

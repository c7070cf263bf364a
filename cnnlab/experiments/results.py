"""A run's ``result.json`` read back and checked like user input.

``result.json`` is what ``experiment run`` reads instead of training a finished run again, and
what reports, searches and figures are built from; a hand-edited or damaged one
(``"test_acc": "high"``, ``{}``, ``[1, 2]``) must be one line naming the file, never a
``TypeError`` three modules later. :func:`check_result` accepts exactly what
:class:`cnnlab.training.trainer.RunResult` holds: every key present, each of its type and
range (accuracies in [0, 1] or NaN for a diverged run, times and counts not negative).
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json

if TYPE_CHECKING:
    from cnnlab.training.trainer import RunResult

ACCURACIES = ("train_acc", "test_acc")
LOSSES = ("train_loss", "test_loss")  # NaN or inf when the run diverged
TIMES = ("wall_time", "train_time", "images_per_s")
COUNTS = ("iterations", "param_count")
TEXTS = ("run_dir", "stopped")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a result record, or None."""
    from cnnlab.training.trainer import RunResult

    names = [f.name for f in fields(RunResult)]
    missing = [k for k in names if k not in data and k != "history"]
    if missing:
        return f"missing {', '.join(missing)}"
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}"
    for k in TEXTS:
        if not isinstance(data[k], str):
            return f"{k} {data[k]!r} is not a string"
    for k in COUNTS:
        if not isinstance(data[k], int) or isinstance(data[k], bool) or data[k] < 0:
            return f"{k} {data[k]!r} is not a count"
    for k in ACCURACIES:
        v = data[k]
        if not _number(v) or (not math.isnan(v) and not 0 <= v <= 1):
            return f"{k} {v!r} is not an accuracy in [0, 1]"
    for k in LOSSES:
        if not _number(data[k]) or data[k] < 0:
            return f"{k} {data[k]!r} is not a loss"
    for k in TIMES:
        if not _number(data[k]) or not math.isfinite(data[k]) or data[k] < 0:
            return f"{k} {data[k]!r} is not a non-negative number"
    t, it = data["time_to_target"], data["iteration_to_target"]
    if t is not None and (not _number(t) or not math.isfinite(t) or t < 0):
        return f"time_to_target {t!r} is not null or a non-negative number"
    if it is not None and (not isinstance(it, int) or isinstance(it, bool) or it < 0):
        return f"iteration_to_target {it!r} is not null or a count"
    history = data.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(r, dict) and (_number(r.get("iteration", 0))) for r in history):
        return "history is not a list of evaluation records"
    return None


def check_result(data: Any, where: str | Path) -> RunResult:
    """``data`` (a parsed result.json) as a :class:`RunResult`, or one error naming ``where``."""
    from cnnlab.training.trainer import RunResult

    if not isinstance(data, dict):
        raise CnnlabError(f"{where}: not a run's result (a JSON table), got "
                          f"{type(data).__name__}")
    problem = _problem(data)
    if problem is not None:
        shown = problem if len(problem) <= 160 else problem[:157] + "..."
        raise CnnlabError(f"{where}: not a run's result ({shown})")
    return RunResult(**data)


def read_result(path: Path) -> RunResult:
    """A run's ``result.json``, checked (:func:`check_result`)."""
    return check_result(read_json(path), path)

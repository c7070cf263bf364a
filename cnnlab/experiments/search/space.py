"""HUJI 3's architecture families as Optuna search spaces, and the analyzer's parameter count.

A recipe's ``[[searches]]`` entry with a ``space`` table (see huji_q3.toml) declares what is
free. Each key is a :class:`~cnnlab.training.trainer.TrainConfig` field (``lr``) or else a
model option (``model_opts.<key>``); its value says how Optuna samples it:

* ``[lo, hi]`` of two integers: an integer in ``lo..hi``;
* ``[lo, hi]`` of two floats: a float in ``lo..hi``, log-uniform;
* ``[[lo, hi], [lo, hi], ...]``: a tuple option (``widths = "3x6x8"``), one range per element;
* any other list (strings, or ``{ choices = [...] }``): a categorical choice.

:func:`suggest` turns an Optuna trial into the config overlay of that point, and
:func:`param_count` counts the parameters of the network it describes with the analyzer
(:func:`cnnlab.models.resolve.analyze`), before anything trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cnnlab.common.errors import CnnlabError, SpecError


def _train_fields() -> set[str]:
    from cnnlab.training.trainer import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def _is_num_range(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float)
                                                        and not isinstance(x, bool) for x in v))


def check_space(space: dict[str, Any], where: str) -> None:
    """Fail on a range that is empty or a value of a kind :func:`suggest` cannot sample."""
    if not space:
        raise CnnlabError(f"{where}: space must name at least one free key")
    for key, v in space.items():
        if isinstance(v, dict):
            v = v.get("choices")
        if not isinstance(v, list) or not v:
            raise CnnlabError(f"{where}: space.{key} must be [lo, hi], a list of choices or a "
                              f"list of [lo, hi] ranges, got {v!r}")
        ranges = v if all(isinstance(x, list) for x in v) else [v] if _is_num_range(v) else []
        for r in ranges:
            if not _is_num_range(r) or r[0] > r[1]:
                raise CnnlabError(f"{where}: space.{key}: {r!r} is not a range [lo, hi] "
                                  "with lo <= hi")


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """The config overlay (``{"lr": ..., "model_opts": {...}}``) Optuna's ``trial`` picks."""
    fields = _train_fields()
    out: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for key, v in space.items():
        value: Any
        if isinstance(v, dict):
            value = trial.suggest_categorical(key, list(v["choices"]))
        elif v and all(isinstance(x, list) for x in v):
            value = [_one(trial, f"{key}.{i}", r) for i, r in enumerate(v)]
        elif _is_num_range(v):
            value = _one(trial, key, v)
        else:
            value = trial.suggest_categorical(key, list(v))
        if key in fields:
            out[key] = value
        else:
            opts[key] = value
    if opts:
        out["model_opts"] = opts
    return out


def _one(trial: Any, name: str, r: list[int | float]) -> int | float:
    lo, hi = r
    if isinstance(lo, int) and isinstance(hi, int):
        return trial.suggest_int(name, lo, hi)
    return trial.suggest_float(name, float(lo), float(hi), log=True)


def param_count(model: str, model_opts: dict[str, Any] | str) -> int | None:
    """Parameters of ``model`` with ``model_opts`` by the analyzer (the IR's shapes), or
    ``None`` when that geometry cannot be built (a window larger than its input)."""
    from cnnlab.experiments.recipe import opts_string
    from cnnlab.models.resolve import analyze
    from cnnlab.models.zoo import resolve
    from cnnlab.training.trainer import TrainConfig, model_options

    opts = model_options(TrainConfig(model_opts=opts_string(model_opts)))
    mdef = resolve(model, **opts)
    try:
        return int(analyze(mdef.graph(), input=mdef.input_shape).total.params)
    except (SpecError, CnnlabError, ValueError):
        return None

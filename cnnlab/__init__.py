"""cnnlab: analyze, verify and train convolutional networks.

The public API, importable from the top::

    cnnlab.analyze(model, input="1x28x28")    # -> Analysis (dataclasses; HTML in a notebook)
    cnnlab.train(cnnlab.TrainConfig(...))      # -> RunResult
    cnnlab.load_dataset("mnist")               # -> Dataset
    cnnlab.run_experiment("huji_q1")           # -> path of experiment.json
    cnnlab.report(["runs/experiments"], "report.html")

Names are imported on first use, so ``import cnnlab`` stays light (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "analyze": "cnnlab.models.resolve",
    "Analysis": "cnnlab.analysis.analyze",
    "train": "cnnlab.training.trainer",
    "TrainConfig": "cnnlab.training.trainer",
    "RunResult": "cnnlab.training.trainer",
    "load_dataset": "cnnlab.data.datasets",
    "run_experiment": "cnnlab.experiments.run",
    "report": "cnnlab.experiments.report.page",
    "CnnlabError": "cnnlab.common.errors",
}
_NAMES = {"load_dataset": "load", "report": "write"}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), _NAMES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

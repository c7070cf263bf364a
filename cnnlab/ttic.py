"""TTIC 31230 CNN problems: registers the models and datasets of the three TTIC systems.

Imported on first lookup by :mod:`cnnlab.data` (its ``_PLUGINS``); the models live in
:mod:`cnnlab.ttic_models`, the plugin of :mod:`cnnlab.models`.

* ``video3d`` on ``moving-mnist`` / ``moving-mnist-direction`` (Problems 1-2),
* ``bottleneck-mlp`` on ``mnist`` (Problem 3),
* ``pyramid`` and its same-budget baseline ``plain-cnn`` on ``multiscale-mnist*`` (Problem 4).

See docs/ttic.md.
"""

from __future__ import annotations

from . import moving_mnist as _moving_mnist  # noqa: F401  (registers its datasets)
from . import multiscale as _multiscale  # noqa: F401  (registers its datasets)
from . import ttic_models as _ttic_models  # noqa: F401  (registers its models)

"""Measured training presets: keyword arguments for :class:`~cnnlab.training.trainer.TrainConfig`.

``BASELINE_RECIPE`` is what ``cnnlab demo`` trains: the HUJI baseline it has just analyzed.
Measured on the 2-core CPU (seeds 0-3) it reaches 99.0% test accuracy after 300-375 steps
(3.7-10.5 s of training).

``FAST_RECIPE`` is the headline speed recipe (``cnnlab train --preset fast``), measured by
``bench/bench_fixed_schedule.py`` under the field's protocol: a fixed schedule (0.6 epoch, 141
steps of batch 256), one test evaluation at the end, >= 10 seeds, mean >= 99.0% and no seed
below 98.9% (figures with their CPU in docs/training.md); its model is ``fast4``.
``FAST3_RECIPE`` is the same schedule on ``fast3`` (one more batch norm), the recipe of round
3; ``FAST2_RECIPE`` the one before it (model ``fast2``, 0.75 epoch of batch 128), kept as the
benchmark's reference for the speed-up.

All of them use bf16 autocast only where the CPU or GPU computes it faster than fp32
(precision ``"auto"``, :func:`cnnlab.training.engine.native_bf16`), else fp32.
"""

from __future__ import annotations

from typing import Any

BASELINE_RECIPE: dict[str, Any] = dict(
    model="baseline", optimizer="adam", lr=2e-3, batch_size=128, epochs=1.0,
    schedule="onecycle", warmup=0.2, label_smoothing=0.1, precision="auto",
    channels_last="on")
FAST3_RECIPE: dict[str, Any] = dict(
    model="fast3", optimizer="adam", lr=3e-2, batch_size=256, epochs=0.6,
    schedule="onecycle", warmup=0.3, label_smoothing=0.1, precision="auto",
    channels_last="on")
FAST_RECIPE: dict[str, Any] = dict(FAST3_RECIPE, model="fast4")
FAST2_RECIPE: dict[str, Any] = dict(
    model="fast2", optimizer="adam", lr=6e-3, batch_size=128, epochs=0.75,
    schedule="onecycle", warmup=0.2, label_smoothing=0.1, precision="auto",
    channels_last="on")

PRESETS: dict[str, dict[str, Any]] = {
    "fast": FAST_RECIPE, "fast3": FAST3_RECIPE, "fast2": FAST2_RECIPE,
    "baseline": BASELINE_RECIPE}
"""``cnnlab train --preset NAME``: the base settings that ``--config`` and flags override."""

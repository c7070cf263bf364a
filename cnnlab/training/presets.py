"""Measured training presets: keyword arguments for :class:`~cnnlab.training.trainer.TrainConfig`.

``BASELINE_RECIPE`` is what ``cnnlab demo`` trains: the HUJI baseline it has just analyzed.
Measured on the 2-core CPU (seeds 0-3) it reaches 99.0% test accuracy after 300-375 steps
(3.7-10.5 s of training). ``FAST_RECIPE`` is the time-to-99% recipe measured by
``bench/bench_time_to_99.py`` (docs/training.md). Both use bf16 autocast only where the device
computes bf16 natively (precision ``"auto"``), else fp32.
"""

from __future__ import annotations

from typing import Any

BASELINE_RECIPE: dict[str, Any] = dict(
    model="baseline", optimizer="adam", lr=2e-3, batch_size=128, epochs=1.0,
    schedule="onecycle", warmup=0.2, label_smoothing=0.1, precision="auto",
    channels_last="on")
FAST_RECIPE: dict[str, Any] = dict(
    model="fast2", optimizer="adam", lr=6e-3, batch_size=128, epochs=0.75,
    schedule="onecycle", warmup=0.2, label_smoothing=0.1, precision="auto",
    channels_last="on")

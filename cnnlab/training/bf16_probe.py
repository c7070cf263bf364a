"""Does bf16 autocast pay on this CPU? Measured once per machine, not guessed from CPU flags.

oneDNN runs bf16 on any CPU with AVX512-BF16, but whether that beats fp32 depends on the chip:
on a 2-core "Intel(R) Xeon(R) Processor" with AVX512-BF16 and no AMX a bf16 GEMM ran at 57.6
GFLOP/s against 127 fp32 (docs/training.md), while on an AMD EPYC with AVX512-BF16 a small
CNN's training step ran 1.4x faster in bf16. So ``precision="auto"`` asks this module, which
times a small CNN's forward and backward pass (a 5x5 conv and a linear layer, channels_last,
batch 128) in fp32 and under bf16 autocast, best of a few repeats (robust to load), and says
yes when bf16 is at least :data:`MIN_SPEEDUP` times faster. The answer is cached per CPU
model, torch version and thread count in ``$CNNLAB_CACHE/bf16.json`` (default
``~/.cache/cnnlab``), so a machine decides once and its runs stay reproducible;
``CNNLAB_CPU_BF16=1`` or ``0`` overrides.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from cnnlab.common.files import read_json, write_json

MIN_SPEEDUP = 1.1
_ANSWERS: dict[str, bool] = {}  # per key, for this process


def _cache_file() -> Path:
    root = os.environ.get("CNNLAB_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab"
    return Path(root) / "bf16.json"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f
                         if ln.startswith("model name")), "unknown CPU")
    except OSError:
        return platform.processor() or "unknown CPU"


def _cpu_key() -> str:
    return f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} thread(s)"


def measure_speedup(repeats: int = 7) -> float:
    """fp32 seconds / bf16-autocast seconds of one small-CNN forward + backward (best of
    ``repeats``); > 1 means bf16 is faster."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 16, 12, 12, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 16, 5, 5, generator=gen).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    fc = torch.randn(256, 32 * 8 * 8, generator=gen).requires_grad_()

    def step() -> None:
        h = F.conv2d(x, w)  # (128, 32, 8, 8)
        F.linear(h.flatten(1), fc).float().square().mean().backward()

    times = {}
    for name, ctx in (("fp32", torch.autocast("cpu", enabled=False)),
                      ("bf16", torch.autocast("cpu", dtype=torch.bfloat16))):
        with ctx:
            step()  # warm-up: oneDNN builds its kernels on first use
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - t)
        times[name] = best
    return times["fp32"] / times["bf16"]


def bf16_pays() -> bool:
    """Whether bf16 autocast is faster than fp32 here (env override, cache, else measured)."""
    env = os.environ.get("CNNLAB_CPU_BF16")
    if env in ("0", "1"):
        return env == "1"
    path, key = _cache_file(), _cpu_key()
    if key in _ANSWERS:
        return _ANSWERS[key]
    cache = {}
    try:
        cache = read_json(path, default={})
    except Exception:  # a broken cache file is re-measured, never an error
        cache = {}
    entry = cache.get(key) if isinstance(cache, dict) else None
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)):
        _ANSWERS[key] = entry["speedup"] >= MIN_SPEEDUP
        return _ANSWERS[key]
    speedup = measure_speedup()
    _ANSWERS[key] = speedup >= MIN_SPEEDUP
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**(cache if isinstance(cache, dict) else {}),
                          key: {"speedup": round(speedup, 3), "bf16": _ANSWERS[key]}})
    except OSError:
        pass  # a read-only home keeps the answer for this process only
    return _ANSWERS[key]

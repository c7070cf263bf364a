"""Analyzer speed: captured ResNet-50, EfficientNet-B0 and DenseNet-121 against torchinfo
and fvcore, one thread, in one run.

Run: ``.venv/bin/python bench/bench_analyze.py [--repeat 5] [--input 3x224x224]``. The nets
are written by hand (tests/zoo_nets.py; torchvision is not a dependency): EfficientNet-B0
computes TF-style "same" padding in forward (torch.fx refuses it); cnnlab captures all three
by running them on meta tensors. Times are medians over ``--repeat`` runs after one warm-up;
models are built once (weights are not timed); CPU-seconds (``resource.getrusage``) are
reported next to wall time because the machine may be shared.
  * cnnlab:    ``cnnlab.analyze(module, input)`` (capture + every row's numbers)
  * torchinfo: ``torchinfo.summary(model, input_size, verbose=0)`` (hooks + a real forward)
  * fvcore:    ``FlopCountAnalysis(model, x).total()`` + ``parameter_count`` (jit trace +
               a real forward), when ``pip install fvcore`` worked
The goal is cnnlab >= 3x faster than torchinfo on each net, in CPU-seconds (``ti/CPU``:
torchinfo's CPU time over the method's; ``ti/wall`` the same for wall time, which a shared
machine inflates). Parameter counts of the three must agree before their speeds are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchinfo

import cnnlab
from cnnlab.ir.shapes import parse_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from zoo_nets import DenseNet121, EfficientNetB0, ResNet50  # noqa: E402

try:
    from fvcore.nn import FlopCountAnalysis, parameter_count
except ImportError:  # optional: the comparison is skipped
    FlopCountAnalysis = None


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def median_seconds(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of ``fn`` after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        c0, t0 = _cpu(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(_cpu() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _fvcore(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    flops = FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return int(flops.total()), int(parameter_count(model)[""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--input", default="3x224x224")
    args = ap.parse_args()
    torch.set_num_threads(1)
    shape = parse_shape(args.input)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"python {platform.python_version()}, torch {torch.__version__}, torchinfo "
          f"{torchinfo.__version__}, fvcore {'yes' if FlopCountAnalysis else 'not installed'}"
          f", {torch.get_num_threads()} thread, median of {args.repeat}")
    print(f"CPU: {cpu}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'net':<18}{'method':<12}{'wall ms':>10}{'CPU ms':>10}{'ti/wall':>9}{'ti/CPU':>9}"
          "  numbers")
    for name, factory in (("ResNet-50", ResNet50), ("EfficientNet-B0", EfficientNetB0),
                          ("DenseNet-121", DenseNet121)):
        torch.manual_seed(0)
        model = factory().eval()
        x = torch.rand(1, *shape)
        a = cnnlab.analyze(model, shape)
        info = torchinfo.summary(model, input_size=(1, *shape), verbose=0)
        assert a.total.complete and a.total.params == info.total_params
        rows = [("cnnlab", median_seconds(lambda m=model: cnnlab.analyze(m, shape),
                                          args.repeat),
                 f"params {a.total.params:,}, MACs {a.total.macs:,}")]
        rows.append(("torchinfo", median_seconds(
            lambda m=model: torchinfo.summary(m, input_size=(1, *shape), verbose=0),
            args.repeat), f"params {info.total_params:,}, mult-adds {info.total_mult_adds:,}"))
        if FlopCountAnalysis is not None:
            with torch.no_grad():
                flops, params = _fvcore(model, x)
                assert params == a.total.params
                t = median_seconds(lambda m=model, x=x: _fvcore(m, x), args.repeat)
            rows.append(("fvcore", t, f"params {params:,}, flops (MACs) {flops:,}"))
        ti, ti_cpu = rows[1][1]
        for method, (wall, cpu_s), numbers in rows:
            print(f"{name:<18}{method:<12}{wall * 1e3:>10.1f}{cpu_s * 1e3:>10.1f}"
                  f"{ti / wall:>8.1f}x{ti_cpu / cpu_s:>8.1f}x  {numbers}")


if __name__ == "__main__":
    main()

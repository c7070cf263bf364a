"""Analyzer speed: VGG-16 from the IR, and a traced ResNet-18 side by side with torchinfo.

Run: ``.venv/bin/python bench/bench_analyze.py [--repeat 7]``. Times are medians over
``--repeat`` runs after one warm-up; models are built once (weights are not timed); CPU-seconds
(``resource.getrusage``) are reported next to wall time because the machine may be shared.
  * ir:        parse the spec + ``analyze_graph`` (no tensors at all)
  * fx:        ``from_module`` (symbolic trace; shapes from the IR, no forward pass) +
               ``analyze_graph``
  * torchinfo: ``torchinfo.summary(model, input_size, verbose=0)`` (hooks + a forward pass)
ResNet-18 is written by hand (tests/coverage_nets.py; torchvision is not a dependency) and
analysed at 3x224x224; the goal is fx >= 10x faster than torchinfo on the same module.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchinfo

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir.fximport import from_module
from cnnlab.ir.spec import parse
from cnnlab.models import zoo as models
from cnnlab.models.build import build

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from coverage_nets import ResNet18  # noqa: E402


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


def _row(name: str, t: tuple[float, float], ref: tuple[float, float]) -> str:
    return (f"{name:<38}{t[0] * 1e3:>10.2f}ms{t[1] * 1e3:>10.2f}ms CPU"
            f"{ref[0] / t[0]:>9.1f}x{ref[1] / t[1]:>9.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"torchinfo {torchinfo.__version__}, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeat}")
    print(f"{'method':<38}{'wall':>12}{'':>14}{'ti/wall':>10}{'ti/CPU':>9}")

    mdef = models.get(args.model)
    shape = mdef.input_shape
    model = build(mdef.graph(), shape, seed=0).eval()
    a = analyze_graph(parse(mdef.spec), shape)
    info = torchinfo.summary(model, input_size=(1, *shape), verbose=0)
    fx_a = analyze_graph(from_module(model, shape), shape)
    # the three must agree before their speeds mean anything
    assert a.total.params == info.total_params == fx_a.total.params
    assert a.total.macs == fx_a.total.macs
    t_ir = median_seconds(lambda: analyze_graph(parse(mdef.spec), shape), args.repeat)
    t_fx = median_seconds(lambda: analyze_graph(from_module(model, shape), shape), args.repeat)
    t_ti = median_seconds(
        lambda: torchinfo.summary(model, input_size=(1, *shape), verbose=0), args.repeat)
    print(f"-- {args.model} {'x'.join(map(str, shape))}: params {a.total.params:,}, "
          f"MACs {a.total.macs:,} (torchinfo mult-adds {info.total_mult_adds:,})")
    for name, t in [("cnnlab IR (parse + analyze_graph)", t_ir),
                    ("cnnlab from_module (torch.fx)", t_fx), ("torchinfo.summary", t_ti)]:
        print(_row(name, t, t_ti))

    torch.manual_seed(0)
    net = ResNet18().eval()
    rshape = (3, 224, 224)
    r = analyze_graph(from_module(net, rshape), rshape)
    rinfo = torchinfo.summary(net, input_size=(1, *rshape), verbose=0)
    assert r.total.params == rinfo.total_params == sum(p.numel() for p in net.parameters())
    assert r.total.complete
    t_rfx = median_seconds(lambda: analyze_graph(from_module(net, rshape), rshape), args.repeat)
    t_rti = median_seconds(
        lambda: torchinfo.summary(net, input_size=(1, *rshape), verbose=0), args.repeat)
    print(f"-- ResNet-18 (by hand) 3x224x224: params {r.total.params:,}, MACs "
          f"{r.total.macs:,} (torchinfo mult-adds {rinfo.total_mult_adds:,})")
    print(_row("cnnlab from_module + analyze_graph", t_rfx, t_rti))
    print(_row("torchinfo.summary", t_rti, t_rti))
    print(f"ResNet-18: cnnlab is {t_rti[0] / t_rfx[0]:.1f}x faster than torchinfo (wall), "
          f"{t_rti[1] / t_rfx[1]:.1f}x (CPU-seconds); goal >= 10x")


if __name__ == "__main__":
    main()

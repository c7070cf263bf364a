"""Analyzer speed: VGG-16 at 3x224x224 from the IR vs torchinfo vs torch.fx import.

Run: ``.venv/bin/python bench/bench_analyze.py [--repeat 7]``. Times are medians over
``--repeat`` runs after one warm-up; the model is built once (weights are not timed).
  * ir:        parse the spec + ``analyze_graph`` (no tensors at all)
  * fx:        ``from_module`` (symbolic trace + one forward pass for shapes) + ``analyze_graph``
  * torchinfo: ``torchinfo.summary(model, input_size, verbose=0)`` (hooks + a forward pass)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torchinfo

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir.fximport import from_module
from cnnlab.ir.spec import parse
from cnnlab.models import zoo as models
from cnnlab.models.build import build


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

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

    print(f"model {args.model} input {'x'.join(map(str, shape))}, params {a.total.params:,}, "
          f"MACs {a.total.macs:,} (torchinfo mult-adds {info.total_mult_adds:,})")
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"torchinfo {torchinfo.__version__}, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeat}")
    print(f"{'method':<34}{'median':>12}{'vs ir':>10}")
    for name, t in [("cnnlab IR (parse + analyze_graph)", t_ir),
                    ("cnnlab from_module (torch.fx)", t_fx),
                    ("torchinfo.summary", t_ti)]:
        print(f"{name:<34}{t * 1e3:>10.2f}ms{t / t_ir:>9.0f}x")
    print(f"speed-up of the IR over torchinfo: {t_ti / t_ir:.0f}x (goal >= 100x)")


if __name__ == "__main__":
    main()

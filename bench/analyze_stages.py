"""Where cnnlab.analyze spends its time: CPU ms per stage on the bench_analyze.py nets.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/analyze_stages.py [eff] [dense] [res]
[--repeat 25] [--profile fx|record|import|analyze]`` (``--profile`` prints cProfile's top
functions of that stage instead). Stages, each timed on its own (median CPU ms, one torch
thread): ``fx`` a torch.fx trace (failing on EfficientNet-B0), ``record`` the meta-tensor
run, ``import`` the IR import of an already recorded run, ``analyze`` the analysis pass of an
already imported graph; then ``from_module`` (capture auto) and ``cnnlab.analyze`` end to end.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable
from pathlib import Path

import torch

import cnnlab
from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir import fximport
from cnnlab.ir.scope import analysis_scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_analyze import median_seconds  # noqa: E402 -- this folder, run as a script
from zoo_nets import DenseNet121, EfficientNetB0, ResNet50  # noqa: E402

NETS = {"eff": EfficientNetB0, "dense": DenseNet121, "res": ResNet50}
SHAPE = (3, 224, 224)


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU milliseconds of ``fn`` after one warm-up (bench_analyze's timer)."""
    return round(median_seconds(fn, repeat)[1] * 1e3, 2)


def _fx_attempt(model: torch.nn.Module) -> None:
    try:
        fximport._by_fx(model, "x")
    except Exception:  # noqa: BLE001 -- a refusal is the cost being timed
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="*", help=f"any of {', '.join(NETS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--profile", choices=["fx", "record", "import", "analyze"])
    args = ap.parse_args()
    unknown = [n for n in args.nets if n not in NETS]
    if unknown:
        ap.error(f"unknown net {unknown[0]!r}; use any of {', '.join(NETS)}")
    torch.set_num_threads(1)
    dt = torch.float32
    for name in args.nets or list(NETS):
        model = NETS[name]().eval()
        with analysis_scope():
            recording = fximport._by_run(model, SHAPE, dt)
            graph = fximport._imported(recording, model, SHAPE, dt, "x")
            stages = {
                "fx": lambda m=model: _fx_attempt(m),
                "record": lambda m=model: fximport._by_run(m, SHAPE, dt),
                "import": lambda m=model, r=recording: fximport._imported(r, m, SHAPE, dt, "x"),
                "analyze": lambda g=graph: analyze_graph(g, SHAPE),
            }
            if args.profile:
                stages[args.profile]()
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(10):
                    stages[args.profile]()
                prof.disable()
                print(f"== {name}: {args.profile}, 10 calls")
                pstats.Stats(prof).sort_stats("tottime").print_stats(30)
                continue
            times = {k: cpu_ms(f, args.repeat) for k, f in stages.items()}
        if args.profile:
            continue
        times["from_module"] = cpu_ms(lambda m=model: fximport.from_module(m, SHAPE),
                                      args.repeat)
        times["cnnlab.analyze"] = cpu_ms(lambda m=model: cnnlab.analyze(m, SHAPE), args.repeat)
        print(name, " ".join(f"{k} {v}" for k, v in times.items()), flush=True)


if __name__ == "__main__":
    main()

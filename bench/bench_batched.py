"""Many models at once: ``train_many`` (K models in one group) vs K ``train()`` runs in a row.

Same configs, same data, same thread count for both (``torch.set_num_threads``); each
measurement is repeated and the two ways alternate so that a busy machine slows both alike.
Reported per row: CPU-seconds (getrusage, all threads) of K sequential runs and of one group
(whole runs: data loading, evaluation and run folders included), and the ratios sequential /
batched (> 1: batching is faster) of CPU-seconds, wall time, and the time in training steps
alone (the runs' ``train_time``, wall clock). Medians over the repeats.
The models: a small CNN, HUJI 1.1's baseline at half width (16x32x128), and the baseline.

    nice -n 5 .venv/bin/python bench/bench_batched.py [--threads 1] [--repeats 2] [--quick]
        [--models 0,1,2] [--scale 1.0] [--ks 3,5] [--vary seed,lr]
    .venv/bin/python bench/bench_batched.py --device cuda      # where a GPU is lent
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from cnnlab.training.batched import macs_per_example, train_many
from cnnlab.training.trainer import TrainConfig, train

MODELS = [  # (label, model, spec, model_opts, iterations)
    ("small CNN", "baseline", "conv5x5x8 relu maxpool2 fc64 relu fc10", "", 300),
    ("baseline 16x32x128", "baseline", None, "widths=16x32x128", 120),
    ("HUJI baseline", "baseline", None, "", 150),
]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _measure(fn) -> tuple[float, float, float]:
    """(CPU-s, wall s, seconds in training steps: the runs' ``train_time`` summed)."""
    c, t = _cpu(), time.perf_counter()
    results = fn()
    return _cpu() - c, time.perf_counter() - t, sum(r.train_time for r in results)


def bench(cfgs: list[TrainConfig], repeats: int) -> dict[str, float]:
    got: dict[str, list[tuple[float, float, float]]] = {"seq": [], "many": []}
    for r in range(repeats):
        for way in (("seq", "many") if r % 2 == 0 else ("many", "seq")):
            if way == "seq":
                got[way].append(_measure(lambda: [train(replace(c, out_name=f"s-{c.out_name}"))
                                                  for c in cfgs]))
            else:
                got[way].append(_measure(lambda: train_many(cfgs)))
    out = {}
    for way, rows in got.items():
        for j, name in enumerate(("cpu", "wall", "steps")):
            out[f"{way}_{name}"] = statistics.median(row[j] for row in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ks", default="3,5", help="group sizes")
    ap.add_argument("--vary", default="seed,lr", help="what differs: seed, lr or both")
    ap.add_argument("--models", default="0,1,2", help="rows of MODELS to run (0-based)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the iterations")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 10 iterations")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    print("| model | MACs/example | varies | K | iterations | sequential CPU-s | batched CPU-s "
          "| CPU ratio | wall ratio | steps-only ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for row in (int(i) for i in args.models.split(",")):
            label, model, spec, opts, iterations = MODELS[row]
            iterations = 10 if args.quick else max(1, round(iterations * args.scale))
            base = TrainConfig(model=model, spec=spec, model_opts=opts, iterations=iterations,
                               eval_every=iterations, log_every=50, train_eval_size=1000,
                               runs_dir=tmp, device=args.device, threads=args.threads,
                               tensorboard=False, plots=False, progress="off", overwrite=True)
            # warm-up: imports, data load, first-call costs of both ways
            train_many([replace(base, out_name=f"w{i}", iterations=3, seed=i) for i in range(2)])
            train(replace(base, out_name="w", iterations=3))
            for vary in args.vary.split(","):
                for k in ks:
                    cfgs = [replace(base, out_name=f"{vary}{i}",
                                    seed=i if vary == "seed" else 0,
                                    lr=base.lr * (3.0 ** i if vary == "lr" else 1.0))
                            for i in range(k)]
                    m = bench(cfgs, args.repeats)
                    print(f"| {label} | {macs_per_example(base) / 1e6:.2f} M | {vary} | {k} "
                          f"| {iterations} | {m['seq_cpu']:.1f} | {m['many_cpu']:.1f} "
                          f"| {m['seq_cpu'] / m['many_cpu']:.2f} "
                          f"| {m['seq_wall'] / m['many_wall']:.2f} "
                          f"| {m['seq_steps'] / m['many_steps']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

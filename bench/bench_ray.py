"""Overhead of RayExecutor over LocalExecutor: one sweep, same cores, same runs.

The sweep (``--runs`` seeds of a small ``baseline`` on MNIST, 1 thread per run) is trained
by a LocalExecutor of ``--cores`` processes and by a RayExecutor on a local Ray cluster of
``--cores`` CPUs (``ray.init(num_cpus=...)``, started once, its start-up timed apart). Both
give every run a worker process of its own (``fresh``), and the local executor trains one run
per process (``batch=False``; ``--batch-local`` lets it group runs, which Ray's tasks don't).
Rounds alternate local, ray, local, ray... in fresh runs folders, so load from other
programs falls on both alike; the figure is the ratio of median wall times, plus the runs'
own CPU seconds (``executor.json``), which must agree (same training), and the final
accuracies, which must be identical.

    CNNLAB_DATA=/work/shared/data nice -n 5 .venv/bin/python bench/bench_ray.py \
        [--runs 6] [--cores 2] [--rounds 2] [--iterations 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cnnlab.common.files import read_json
from cnnlab.experiments.executor import LocalExecutor, run_dir
from cnnlab.experiments.executor_ray import RayExecutor, import_ray
from cnnlab.training.trainer import TrainConfig


def sweep(runs_dir: Path, n: int, iterations: int) -> list[TrainConfig]:
    return [TrainConfig(model="baseline", model_opts="widths=8x16x64", dataset="mnist",
                        train_size=5000, iterations=iterations, eval_every=iterations,
                        train_eval_size=1000, batch_size=50, lr=1e-3, seed=s, threads=1,
                        runs_dir=str(runs_dir), out_name=f"s{s}", plots=False,
                        tensorboard=False, progress="off", device="cpu") for s in range(n)]


def timed(executor, cfgs: list[TrainConfig]) -> dict:
    t = time.perf_counter()
    res = executor.map(cfgs)
    wall = time.perf_counter() - t
    cpu = sum(read_json(run_dir(c) / "executor.json")["cpu_s"] for c in cfgs)
    return {"wall_s": wall, "run_cpu_s": cpu, "test_acc": [r.test_acc for r in res]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch-local", action="store_true",
                    help="let the local executor train same-architecture runs together (its "
                         "default since 4d8f764); off: one run per process, like Ray's tasks")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    t = time.perf_counter()
    ray.init(num_cpus=args.cores, num_gpus=0, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    quiet = lambda msg: None  # noqa: E731
    rows: dict[str, list[dict]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="bench_ray") as tmp:
        for k in range(args.rounds):
            for name in ("local", "ray"):
                ex = (LocalExecutor(jobs=args.cores, cores=args.cores, log=quiet,
                                    batch=args.batch_local)
                      if name == "local" else RayExecutor(threads_per_run=1, log=quiet))
                row = timed(ex, sweep(Path(tmp) / f"{name}{k}", args.runs, args.iterations))
                rows[name].append(row)
                print(f"round {k} {name:5}: {row['wall_s']:6.1f} s wall, "
                      f"{row['run_cpu_s']:6.1f} CPU-s in the runs", flush=True)
    ray.shutdown()
    med = {n: statistics.median(r["wall_s"] for r in rows[n]) for n in rows}
    accs = {json.dumps(r["test_acc"]) for n in rows for r in rows[n]}
    out = {"batch_local": args.batch_local, "runs": args.runs, "cores": args.cores,
           "rounds": args.rounds,
           "iterations": args.iterations, "ray_start_s": ray_start, "median_wall_s": med,
           "ratio_ray_over_local": med["ray"] / med["local"], "rows": rows,
           "same_accuracies": len(accs) == 1, "load_avg_1min": os.getloadavg()[0]}
    print(f"ray cluster start {ray_start:.1f} s (once); median wall local {med['local']:.1f} s, "
          f"ray {med['ray']:.1f} s: ratio {out['ratio_ray_over_local']:.3f}; identical "
          f"accuracies: {out['same_accuracies']}; load average {out['load_avg_1min']:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

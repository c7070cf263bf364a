"""``cnnlab search NAME``: a recipe's searches (HUJI 3's smallest networks), resumable.

The same as ``cnnlab experiment run NAME`` (one ``experiment.json``, the report reads it) but
with the executor's workers reused between runs (``fresh=False``): a probe of a few hundred
parameters trains in seconds, so a new interpreter and torch import per run would cost about
as much as the run. Interrupt it at any time: the Optuna study and the finished runs are on
disk, and the next call continues.
"""

from __future__ import annotations

import argparse
import sys
import time

from cnnlab.common.errors import CnnlabError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="recipe with [[searches]] (huji_q3) or "
                        "a path to a .toml recipe")
    parser.add_argument("--quick", action="store_true", help="smoke version: seconds")
    parser.add_argument("--budget", choices=("cpu", "sheet"), default="cpu",
                        help="budget profile: the recipe's own (cpu) or its [sheet] table")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs in parallel (default: CPU cores)")
    parser.add_argument("--runs-dir", default=None,
                        help="default runs/experiments (runs/experiments-quick with --quick)")
    parser.add_argument("--data-dir", default=None, help="folder with the IDX files")


def run(args: argparse.Namespace) -> int:
    from cnnlab.experiments.executor import LocalExecutor
    from cnnlab.experiments.recipe import load_recipe
    from cnnlab.experiments.run import run_experiment

    if args.jobs is not None and args.jobs < 1:
        raise CnnlabError("--jobs must be >= 1")
    if not load_recipe(args.name).searches:
        raise CnnlabError(f"recipe {args.name!r} has no [[searches]]; run it with "
                          "`cnnlab experiment run`")
    executor = LocalExecutor(jobs=args.jobs, fresh=False)
    extra = {} if args.budget == "cpu" else {"budget": args.budget}
    t0 = time.perf_counter()
    print(f"== search {args.name} ({executor.jobs} jobs, {executor.threads} thread(s) each)",
          file=sys.stderr, flush=True)
    for path in run_experiment(args.name, args.runs_dir, args.quick, data_dir=args.data_dir,
                               executor=executor, **extra):
        print(path, flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s wall; trained {executor.trained} runs "
          f"using {executor.cpu_s:.0f} CPU-seconds (the rest were finished before)", flush=True)
    return 0

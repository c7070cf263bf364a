"""``cnnlab experiment list | show NAME | run NAME|all``: the sheets' questions as recipes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cnnlab.common.errors import CnnlabError


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the recipes with their questions and run counts")
    show = sub.add_parser("show", help="the expanded training configs of a recipe")
    show.add_argument("name")
    show.add_argument("--quick", action="store_true")
    show.add_argument("--format", choices=("table", "json"), default="table",
                      help="table: what differs between the jobs (default); json: one raw "
                      "object per job")
    show.add_argument("--budget", choices=("cpu", "sheet"), default="cpu",
                      help="the budget profile to expand (default cpu)")
    run = sub.add_parser("run", help="run one recipe, several, or 'all'")
    run.add_argument("names", nargs="+", metavar="NAME", help="recipe names or 'all'")
    run.add_argument("--quick", action="store_true",
                     help="smoke version: [quick] overrides, thinned sweeps, one seed")
    run.add_argument("--seeds", type=int, default=None,
                     help="seeds per configuration (default: the recipe's; 1 with --quick)")
    run.add_argument("--jobs", type=int, default=None,
                     help="runs in parallel (default: CPU cores)")
    run.add_argument("--runs-dir", default=None,
                     help="default runs/experiments (runs/experiments-quick with --quick)")
    run.add_argument("--data-dir", default=None, help="folder with the IDX files")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local (default): a process pool here; ray: Ray tasks on a cluster "
                          "(pip install 'cnnlab[ray]'; see docs/scale-out.md)")
    run.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                     help="ray: the cluster to join (default: this machine's, else a new one)")
    run.add_argument("--gpus-per-run", type=float, default=None,
                     help="ray: GPUs each run asks for (default 0: CPU; 0.5 shares a GPU)")
    run.add_argument("--threads-per-run", type=int, default=None,
                     help="ray: CPUs (torch threads) each run asks for (default 1)")
    run.add_argument("--budget", choices=("cpu", "sheet"), default="cpu",
                     help="cpu (default): the recipes' budgets for 2 CPU cores; sheet: the "
                          "sheets' own numbers ([sheet] tables, 5 seeds) for a GPU or cluster")


def _names(names: list[str]) -> list[str]:
    from cnnlab.experiments.recipe import all_recipes, recipe_names

    if names == ["all"]:
        return [r.name for r in all_recipes()]
    known = set(recipe_names())
    # a recipe file of one's own is read by the same loader as the shipped ones
    bad = [n for n in names if n not in known and not (n.endswith(".toml") and Path(n).is_file())]
    if bad:
        raise CnnlabError(f"unknown recipe(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(known))}, 'all' or a path to a .toml recipe")
    return names


def _list() -> int:
    from cnnlab.experiments.recipe import all_recipes, expand

    print(f"{'recipe':<18} {'runs':>5} {'quick':>5}  question")
    for r in all_recipes():
        n = len(expand(r))
        if r.searches:
            n_vals = sum(len(s["values"]) for s in r.searches)
            runs = f"{n}+s{n_vals}"
        else:
            runs = str(n)
        print(f"{r.name:<18} {runs:>5} {len(expand(r, quick=True)):>5}  "
              f"{r.sheet} {r.question}: {r.title}")
    print("\n(+sN: a search over N sizes, of which a bisection trains about log2(N) per seed)")
    return 0


def _show(name: str, quick: bool, budget: str = "cpu", fmt: str = "table") -> int:
    from dataclasses import asdict

    from cnnlab.experiments.identity import run_id
    from cnnlab.experiments.recipe import expand, load_recipe, train_config

    recipe = load_recipe(name)
    rows = []
    for job in expand(recipe, quick, budget=budget):
        cfg = train_config(job, "runs/experiments")
        rows.append({"group": job.group, "seed": job.seed, "run_id": run_id(cfg),
                     "config": asdict(cfg)})
    searches = [{"search": s["label"], "param": s["param"], "values": s["values"],
                 "target": s["target"]} for s in recipe.searches]
    if fmt == "json":
        for row in rows + searches:
            print(json.dumps(row))
        return 0
    print(show_table(rows))
    for s in searches:
        print(f"search {s['search']}: {s['param']} over {s['values']}, target {s['target']}")
    return 0


def show_table(rows: list[dict]) -> str:
    """The jobs as a table of the settings that differ between them (``out_name`` aside),
    then the settings they share on one line."""
    if not rows:
        return "(no jobs)"
    keys = list(rows[0]["config"])
    skip = {"out_name"}
    differ = [k for k in keys if k not in skip
              and len({json.dumps(r["config"].get(k)) for r in rows}) > 1]
    header = ["job", "run id", *differ]
    body = [[f"{r['group']} seed {r['seed']}", r["run_id"],
             *(_cell(r["config"].get(k)) for k in differ)] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, ["-" * w for w in widths], *body]]
    same = [f"{k}={_cell(rows[0]['config'].get(k))}" for k in keys
            if k not in differ and k not in skip]
    lines.append(f"\n{len(rows)} jobs; the same in all: {', '.join(same)}")
    return "\n".join(lines)


def _cell(v: object) -> str:
    return "-" if v is None else json.dumps(v) if isinstance(v, list | dict) else str(v)


def _executor(args: argparse.Namespace) -> object:
    """The executor ``--executor`` names; Ray's flags are refused with the local one."""
    from cnnlab.experiments.executor import LocalExecutor

    ray_flags = {"--address": args.address, "--gpus-per-run": args.gpus_per_run,
                 "--threads-per-run": args.threads_per_run}
    if args.executor == "local":
        given = [k for k, v in ray_flags.items() if v is not None]
        if given:
            raise CnnlabError(f"{', '.join(given)} only apply to --executor ray")
        return LocalExecutor(jobs=args.jobs, fresh=not args.quick)
    from cnnlab.experiments.executor_ray import RayExecutor, import_ray

    if args.jobs is not None:
        raise CnnlabError("--jobs is for --executor local; on Ray as many runs go at once as "
                          "the cluster's CPUs / --threads-per-run (and GPUs) allow")
    import_ray()  # a missing package fails before anything runs
    return RayExecutor(address=args.address, threads_per_run=args.threads_per_run or 1,
                       gpus_per_run=args.gpus_per_run or 0.0, fresh=not args.quick)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    if args.action == "show":
        return _show(args.name, args.quick, args.budget, args.format)
    from cnnlab.experiments.run import run_experiment

    if args.seeds is not None:
        from cnnlab.common.config import check_range
        from cnnlab.experiments.recipe import MAX_RUNS

        check_range("seeds", args.seeds, (1, MAX_RUNS))
    budget = getattr(args, "budget", "cpu")
    runs_dir = args.runs_dir or ("runs/experiments-quick" if args.quick else
                                 "runs/experiments-sheet" if budget == "sheet" else
                                 "runs/experiments")
    executor = _executor(args)
    data_dir = args.data_dir
    t0 = time.perf_counter()
    names = _names(args.names)
    from cnnlab.experiments.recipe import load_recipe

    for name in names:  # a bad recipe is one error line, before the run's header
        load_recipe(name)
    print(f"== {', '.join(names)} ({executor.jobs} jobs, {executor.threads} thread(s) each)",
          file=sys.stderr, flush=True)
    for path in run_experiment(names, runs_dir, args.quick, args.seeds, data_dir=data_dir,
                               executor=executor, budget=budget):
        print(path, flush=True)
    print(f"all done in {time.perf_counter() - t0:.0f} s wall; trained {executor.trained} runs "
          f"using {executor.cpu_s:.0f} CPU-seconds (the rest were finished before); report: "
          f"cnnlab report {runs_dir} --out report.html", flush=True)
    return 0

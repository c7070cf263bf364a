"""Running recipes: jobs to the executor, searches round by round, ``experiment.json`` out.

:func:`run_experiment` is the API behind ``cnnlab experiment run``: recipe names in, one
``experiment.json`` per recipe out (the report reads nothing else). Finished runs are never
trained again (the executor's resume rule), so a second call costs only the reading. A
recipe's ``[measure]`` step (:mod:`cnnlab.experiments.measure`) runs after its jobs and
searches, on their finished run folders, and lands in the same ``experiment.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cnnlab.common.files import write_json
from cnnlab.experiments.measure import options as measure_options
from cnnlab.experiments.measure import run_measure
from cnnlab.experiments.recipe import Job, Recipe, available, expand, load_recipe, train_config
from cnnlab.experiments.search import run_searches


def run_jobs(jobs: list[Job], executor: Any, runs_dir: str | Path,
             data_dir: str | None = None) -> list[dict[str, Any]]:
    """Run the available ``jobs``; one record per job (config, result or why it was skipped)."""
    ready = [j for j in jobs if available(j.requires)]
    configs = [train_config(j, runs_dir, data_dir) for j in ready]
    results = iter(executor.map(configs)) if configs else iter(())
    records = []
    for job in jobs:
        rec: dict[str, Any] = {"group": job.group, "seed": job.seed, "kind": job.kind,
                               "values": job.values, "out_name": job.out_name}
        if available(job.requires):
            res = asdict(next(results))
            res.pop("history", None)  # it is in the run folder's metrics.jsonl
            rec.update(run_dir=res["run_dir"], result=res)
        else:
            rec["skipped"] = f"needs {job.requires}, which this machine lacks"
        records.append(rec)
    return records


def run_recipes(recipes: list[Recipe], executor: Any, runs_dir: str | Path,
                quick: bool = False, seeds: int | None = None, data_dir: str | None = None,
                jobs_hint: int = 1) -> list[Path]:
    """Run several recipes; write ``<runs_dir>/<name>/experiment.json`` for each.

    The variant and sweep jobs of all recipes go to the executor as one list, so no core
    idles at the end of a small recipe; searches follow, round by round; then each recipe's
    ``[measure]`` step, given its finished runs.
    """
    t0 = time.perf_counter()
    for r in recipes:  # a bad [measure] table fails before anything trains
        if r.measure:
            measure_options(r.measure, r.name, quick)
    jobs = {r.name: expand(r, quick, seeds) for r in recipes}
    flat = run_jobs([j for r in recipes for j in jobs[r.name]], executor, runs_dir, data_dir)
    paths = []
    for r in recipes:
        records, flat = flat[:len(jobs[r.name])], flat[len(jobs[r.name]):]
        searches = run_searches(r, executor, runs_dir, quick, seeds, data_dir, jobs_hint)
        out = Path(runs_dir) / r.name
        out.mkdir(parents=True, exist_ok=True)
        doc = {"recipe": asdict(r), "quick": quick,
               "seeds": seeds if seeds is not None else (1 if quick else r.seeds),
               "jobs": records, "searches": searches,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "session_wall_s": time.perf_counter() - t0}
        if r.measure:
            doc["measure"] = run_measure(r, records, out, quick, data_dir)
        path = out / "experiment.json"
        write_json(path, doc)
        paths.append(path)
    return paths


def run_recipe(recipe: Recipe, executor: Any, runs_dir: str | Path, quick: bool = False,
               seeds: int | None = None, data_dir: str | None = None,
               jobs_hint: int = 1) -> Path:
    """Run the jobs and searches of ``recipe``; write ``<runs_dir>/<name>/experiment.json``."""
    return run_recipes([recipe], executor, runs_dir, quick, seeds, data_dir, jobs_hint)[0]


def run_experiment(names: str | list[str], runs_dir: str | Path | None = None,
                   quick: bool = False, seeds: int | None = None, jobs: int = 1,
                   data_dir: str | None = None, executor: Any = None) -> list[Path]:
    """Run recipes by name (``"huji_q1"``, a list, or ``"all"``) on ``executor`` (default: a
    :class:`~cnnlab.experiments.executor.LocalExecutor` of ``jobs`` processes); return the
    paths of their ``experiment.json``. ``runs_dir`` defaults to ``runs/experiments``
    (``runs/experiments-quick`` with ``quick``)."""
    from cnnlab.common.errors import CnnlabError
    from cnnlab.experiments.executor import LocalExecutor
    from cnnlab.experiments.recipe import recipe_names

    wanted = [names] if isinstance(names, str) else list(names)
    if "all" in wanted:
        wanted = recipe_names()
    if seeds is not None and seeds < 1:
        raise CnnlabError("seeds must be >= 1")
    if runs_dir is None:
        runs_dir = "runs/experiments-quick" if quick else "runs/experiments"
    executor = executor or LocalExecutor(jobs=jobs, fresh=not quick)
    recipes = [load_recipe(n) for n in wanted]
    return run_recipes(recipes, executor, runs_dir, quick, seeds, data_dir,
                       jobs_hint=getattr(executor, "jobs", jobs))

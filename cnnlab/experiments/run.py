"""Running recipes: jobs to the executor, searches round by round, ``experiment.json`` out.

:func:`run_experiment` is the API behind ``cnnlab experiment run``: recipe names in, one
``experiment.json`` per recipe out (the report reads nothing else). Finished runs are never
trained again (the executor's resume rule), so a second call costs only the reading. A
recipe's ``[measure]`` step (:mod:`cnnlab.experiments.measure`) runs after its jobs and
searches, on their finished run folders, and lands in the same ``experiment.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import write_json
from cnnlab.experiments import identity
from cnnlab.experiments.measure import options as measure_options
from cnnlab.experiments.measure import run_measure
from cnnlab.experiments.recipe import (
    Job,
    Recipe,
    available,
    check_budget,
    expand,
    load_recipe,
    train_config,
)
from cnnlab.experiments.search.run import run_searches


def _plan(jobs: list[Job], runs_dir: str | Path, data_dir: str | None
          ) -> tuple[list[Any], list[str], dict[str, str]]:
    """One config per run identity (:mod:`cnnlab.experiments.identity`): duplicates merged
    with the finest measurement needs, a finished run of that identity read back if it
    measured enough. Returns the configs, each job's run id, and how each id was found
    (``"trained"`` now or ``"earlier"``, by a previous ``experiment run``)."""
    from dataclasses import fields

    from cnnlab.common.files import read_json
    from cnnlab.training.trainer import RESULT_FREE_KEYS, TrainConfig

    FIELDS = {f.name for f in fields(TrainConfig)}  # noqa: N806

    by_id: dict[str, list[Any]] = {}
    ids = []
    for job in jobs:
        cfg = train_config(job, runs_dir, data_dir)
        rid = identity.run_id(cfg)
        ids.append(rid)
        by_id.setdefault(rid, []).append(replace(cfg, out_name=f"{identity.BY_ID}/{rid}"))
    configs, how = [], {}
    # seed-major: every configuration's first seed trains before any second seed, so an
    # interrupted run already compares every configuration
    for rid, cfgs in sorted(by_id.items(), key=lambda kv: kv[1][0].seed):
        cfg = identity.merge_needs(cfgs)
        folder = Path(runs_dir) / identity.BY_ID / rid
        saved = read_json(folder / "config.json", {}) if (folder / "result.json").is_file() \
            else {}
        how[rid] = "trained"
        if saved and identity.covers(saved, cfg):
            # the executor's resume rule compares config.json: ask for what was saved (the
            # same identity may be spelt differently, e.g. keep_prob 1.0 and None)
            keep = {k: v for k, v in saved.items() if k in FIELDS and k not in RESULT_FREE_KEYS}
            again = replace(cfg, **keep)
            if identity.run_id(again) == rid:
                cfg, how[rid] = again, "earlier"
        configs.append(cfg)
    return configs, ids, how


def run_jobs(jobs: list[Job], executor: Any, runs_dir: str | Path,
             data_dir: str | None = None) -> list[dict[str, Any]]:
    """Run the available ``jobs``; one record per job (config, result or why it was skipped).

    Jobs of equal run identity train once, in ``<runs_dir>/by-id/<id>/``; each record names
    its run (``run_id``, ``out_name`` = ``by-id/<id>``, ``name`` = the recipe's own
    ``recipe/label-s<seed>``), the other jobs of this call that share it (``shared_with``) and
    ``reused``: ``None`` for the job that trained it, ``"shared"`` for the others of this
    call, ``"earlier"`` when an earlier call had trained it.
    """
    ready = [j for j in jobs if available(j.requires)]
    configs, ids, how = _plan(ready, runs_dir, data_dir)
    names: dict[str, list[str]] = {}
    for job, rid in zip(ready, ids, strict=True):
        names.setdefault(rid, []).append(job.out_name)
    if isinstance(getattr(executor, "names", None), dict):  # console lines name the jobs
        executor.names.update({f"{identity.BY_ID}/{rid}": n for rid, n in names.items()})
    results = dict(zip([c.out_name.split("/", 1)[1] for c in configs],
                       executor.map(configs) if configs else [], strict=True))
    ids_of = iter(ids)
    records = []
    seen: set[str] = set()
    for job in jobs:
        rec: dict[str, Any] = {"group": job.group, "seed": job.seed, "kind": job.kind,
                               "values": job.values, "name": job.out_name}
        if available(job.requires):
            rid = next(ids_of)
            res = asdict(results[rid])
            res.pop("history", None)  # it is in the run folder's metrics.jsonl
            reused = "earlier" if how[rid] == "earlier" else ("shared" if rid in seen else None)
            seen.add(rid)
            rec.update(out_name=f"{identity.BY_ID}/{rid}", run_id=rid, run_dir=res["run_dir"],
                       result=res, reused=reused,
                       # what result.test_acc measured: "validation" (held-out training data)
                       evaluated_on="validation" if job.config.get("validation") else "test",
                       shared_with=[n for n in names[rid] if n != job.out_name])
        else:
            rec["out_name"] = job.out_name
            rec["skipped"] = f"needs {job.requires}, which this machine lacks"
        records.append(rec)
    return records


def _sheet_asks(recipe: Recipe) -> dict[str, Any]:
    """What the sheet profile sets: the ``[sheet]`` table and the groups' own sheet tables."""
    own = {e["label"]: e["sheet"] for e in recipe.variants + recipe.sweeps + recipe.searches
           if e.get("sheet") and e.get("label")}
    return {**recipe.sheet_budget, "seeds": recipe.seeds_for("sheet"),
            **({"per_group": own} if own else {})}


def run_recipes(recipes: list[Recipe], executor: Any, runs_dir: str | Path,
                quick: bool = False, seeds: int | None = None, data_dir: str | None = None,
                jobs_hint: int = 1, budget: str = "cpu") -> list[Path]:
    """Run several recipes in ``budget`` (``cpu`` or ``sheet``); write
    ``<runs_dir>/<name>/experiment.json`` for each.

    The variant and sweep jobs of all recipes go to the executor as one list, so no core
    idles at the end of a small recipe and a configuration that several recipes share
    trains once; searches follow, round by round; then each recipe's ``[measure]`` step,
    given its finished runs.
    """
    check_budget(budget)
    if quick and budget != "cpu":
        raise CnnlabError("--quick is its own tiny budget; give it without --budget sheet")
    t0 = time.perf_counter()
    recipes = [replace(r, budget=budget) for r in recipes]
    for r in recipes:  # a bad [measure] table fails before anything trains
        if r.measure:
            measure_options(r.measure, r.name, quick)
    n_seeds = {r.name: seeds if seeds is not None else (1 if quick else r.seeds_for(budget))
               for r in recipes}
    jobs = {r.name: expand(r, quick, n_seeds[r.name]) for r in recipes}
    flat = run_jobs([j for r in recipes for j in jobs[r.name]], executor, runs_dir, data_dir)
    paths = []
    for r in recipes:
        records, flat = flat[:len(jobs[r.name])], flat[len(jobs[r.name]):]
        searches = run_searches(r, executor, runs_dir, quick, n_seeds[r.name], data_dir,
                                jobs_hint)
        out = Path(runs_dir) / r.name
        out.mkdir(parents=True, exist_ok=True)
        doc = {"recipe": asdict(r), "quick": quick, "budget": "quick" if quick else budget,
               "sheet_asks": _sheet_asks(r), "seeds": n_seeds[r.name],
               "jobs": records, "searches": searches,
               "reuse": reuse_summary(records),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "session_wall_s": time.perf_counter() - t0}
        doc["recipe"]["profile_notes"] = profile_notes(doc)  # shown by the report
        if r.measure:
            doc["measure"] = run_measure(r, records, out, quick, data_dir)
        path = out / "experiment.json"
        write_json(path, doc)
        paths.append(path)
    return paths


def profile_notes(doc: dict[str, Any]) -> list[str]:
    """Sentences for the report: which budget profile produced the experiment, what the
    sheet profile asks for, and how many jobs were served by a shared or earlier run."""
    asks = dict(doc["sheet_asks"])
    seeds, per_group = asks.pop("seeds"), asks.pop("per_group", {})
    wanted = ", ".join(f"{k} {v}" for k, v in asks.items()) or "the cpu profile's numbers"
    groups = "".join(f"; {g}: " + ", ".join(f"{k} {v}" for k, v in t.items())
                     for g, t in per_group.items())
    notes = [f"Budget profile: {doc['budget']}, {doc['seeds']} seed(s) per configuration. "
             f"The sheet profile (--budget sheet) asks for {wanted}{groups}, {seeds} seeds."]
    u = doc["reuse"]
    if u["shared"] or u["earlier"]:
        others = ", ".join(u["shared_with_recipes"])
        notes.append(f"{u['jobs']} jobs, {u['runs']} runs: {u['shared']} job(s) share a run "
                     f"trained once for several jobs{f' (with {others})' if others else ''}, "
                     f"{u['earlier']} read back from an earlier experiment run (same "
                     "content-addressed run, runs/.../by-id/<hash>).")
    return notes


def reuse_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of a recipe's jobs trained their run, shared one of this call, or read one
    back from an earlier call; and which other recipes' jobs share its runs."""
    ran = [r for r in records if "run_id" in r]
    others = sorted({n.split("/", 1)[0] for r in ran for n in r.get("shared_with", [])}
                    - {r["name"].split("/", 1)[0] for r in ran})
    return {"jobs": len(ran), "runs": len({r["run_id"] for r in ran}),
            "trained_here": sum(r.get("reused") is None for r in ran),
            "shared": sum(r.get("reused") == "shared" for r in ran),
            "earlier": sum(r.get("reused") == "earlier" for r in ran),
            "shared_with_recipes": others}


def run_recipe(recipe: Recipe, executor: Any, runs_dir: str | Path, quick: bool = False,
               seeds: int | None = None, data_dir: str | None = None,
               jobs_hint: int = 1, budget: str = "cpu") -> Path:
    """Run the jobs and searches of ``recipe``; write ``<runs_dir>/<name>/experiment.json``."""
    return run_recipes([recipe], executor, runs_dir, quick, seeds, data_dir, jobs_hint,
                       budget)[0]


def run_experiment(names: str | list[str], runs_dir: str | Path | None = None,
                   quick: bool = False, seeds: int | None = None, jobs: int = 1,
                   data_dir: str | None = None, executor: Any = None,
                   budget: str = "cpu") -> list[Path]:
    """Run recipes by name (``"huji_q1"``, a list, or ``"all"``) in the ``budget`` profile
    (``cpu``: the recipes' own budgets and seeds; ``sheet``: their ``[sheet]`` tables) on
    ``executor`` (default: a :class:`~cnnlab.experiments.executor.LocalExecutor` of ``jobs``
    processes); return the paths of their ``experiment.json``. ``runs_dir`` defaults to
    ``runs/experiments`` (``runs/experiments-quick`` with ``quick``, ``runs/experiments-sheet``
    with the sheet profile)."""
    from cnnlab.experiments.executor import LocalExecutor
    from cnnlab.experiments.recipe import recipe_names

    check_budget(budget)
    wanted = [names] if isinstance(names, str) else list(names)
    if "all" in wanted:
        wanted = recipe_names()
    if seeds is not None:
        from cnnlab.common.config import check_range
        from cnnlab.experiments.recipe import MAX_RUNS

        check_range("seeds", seeds, (1, MAX_RUNS))
    if runs_dir is None:
        runs_dir = ("runs/experiments-quick" if quick else
                    "runs/experiments-sheet" if budget == "sheet" else "runs/experiments")
    executor = executor or LocalExecutor(jobs=jobs, fresh=not quick)
    recipes = [load_recipe(n) for n in wanted]
    return run_recipes(recipes, executor, runs_dir, quick, seeds, data_dir,
                       jobs_hint=getattr(executor, "jobs", jobs), budget=budget)

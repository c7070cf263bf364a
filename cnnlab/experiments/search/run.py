"""HUJI 3.1/3.2: the smallest network that still reaches a target accuracy, found by search.

The candidate sizes are an ordered list (smallest network first). Assuming that a larger
network of the same family reaches the target whenever a smaller one does, the smallest
passing size is found by k-ary bisection: each round trains ``k`` probes per search, all
searches of a recipe in one executor call (so every worker is busy), and narrows the
interval. Every probe
trains with the same fixed budget and ``target_acc`` set, so it stops as soon as its test
accuracy reaches the target and its time and iterations to the target are measured.

The probes become the report's sentences in :func:`cnnlab.experiments.report.findings.search` (HUJI
3.3 compares the two networks' time and iterations to the target). A search with a ``space``
table is not a bisection but an Optuna study over a whole architecture family
(:mod:`cnnlab.experiments.search.optuna_search`); :func:`run_searches` runs both kinds.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cnnlab.experiments.recipe import (
    Job,
    Recipe,
    available,
    group_config,
    train_config,
    value_label,
)


def probes(lo: int, hi: int, k: int) -> list[int]:
    """Up to ``k`` distinct indices in ``[lo, hi)`` splitting it into ``k + 1`` parts."""
    out: list[int] = []
    for j in range(1, k + 1):
        i = lo + (hi - lo) * j // (k + 1)
        if lo <= i < hi and i not in out:
            out.append(i)
    return out or ([lo] if lo < hi else [])


def bisect_rounds(n: int, k: int = 1) -> Generator[list[int], list[bool], int | None]:
    """Generator form of the search: yields a round of probe indices, is sent their verdicts,
    returns the first passing index among ``n`` (``None`` if even the last fails).

    The first round checks the largest candidate together with ``k - 1`` interior ones.
    """
    if n == 0:
        return None
    lo, hi = 0, None  # everything below lo failed; hi is the smallest known pass
    round_ = [n - 1] + (probes(0, n - 1, k - 1) if k > 1 else [])
    while round_:
        passed = yield round_
        ok = [i for i, p in zip(round_, passed, strict=True) if p]
        bad = [i for i, p in zip(round_, passed, strict=True) if not p]
        if ok:
            hi = min(ok + ([hi] if hi is not None else []))
        if hi is None:
            return None
        below = [i for i in bad if i < hi]
        if below:
            lo = max(lo, max(below) + 1)
        round_ = probes(lo, hi, k) if lo < hi else []
    return hi


def smallest_passing(n: int, test: Any, k: int = 1) -> tuple[int | None, list[int]]:
    """:func:`bisect_rounds` driven by ``test(indices) -> list[bool]``; also the probe order."""
    order: list[int] = []
    gen = bisect_rounds(n, k)
    try:
        round_ = next(gen)
        while True:
            order += round_
            round_ = gen.send(test(round_))
    except StopIteration as stop:
        return stop.value, order


class _Search:
    """One ``[[searches]]`` entry in progress: its jobs, its trace, its bisection."""

    def __init__(self, recipe: Recipe, search: dict[str, Any], quick: bool, n_seeds: int,
                 k: int):
        self.spec = {**search, **(search.get("quick", {}) if quick else {})}
        self.recipe, self.quick, self.n_seeds = recipe, quick, n_seeds
        self.values = list(self.spec["values"])
        self.target = float(self.spec["target"])
        self.trace: list[dict[str, Any]] = []
        self.order: list[int] = []
        self.gen = bisect_rounds(len(self.values), k)
        self.found: int | None = None
        self.done = False
        self.round = self._step(None)

    def _step(self, verdicts: list[bool] | None) -> list[int]:
        try:
            r = next(self.gen) if verdicts is None else self.gen.send(verdicts)
        except StopIteration as stop:
            self.found, self.done = stop.value, True
            return []
        self.order += r
        return r

    def jobs(self) -> list[tuple[int, Job]]:
        spec, out = self.spec, []
        for i in self.round:
            value = self.values[i]
            cfg = group_config(self.recipe, self.quick, [spec.get("set", {})],
                                [{spec["param"]: value, "target_acc": self.target}])
            group = f"{spec['label']} {value_label(spec['param'], value)}"
            out += [(i, Job(self.recipe.name, group, s, {**cfg, "seed": s},
                            {spec["param"]: value}, "search")) for s in range(self.n_seeds)]
        return out

    def advance(self, batch: list[tuple[int, Job]], results: list[Any]) -> None:
        """A probe passes only if every seed reached the target."""
        verdicts = []
        for i in self.round:
            runs = [(j, r) for (ii, j), r in zip(batch, results, strict=True) if ii == i]
            passed = all(r.iteration_to_target is not None for _, r in runs)
            for j, r in runs:
                res = asdict(r)
                res.pop("history", None)
                self.trace.append({"group": j.group, "seed": j.seed, "value": self.values[i],
                                   "index": i, "passed": passed, "kind": "search",
                                   "values": j.values, "out_name": j.out_name,
                                   "run_dir": res["run_dir"], "result": res})
            verdicts.append(passed)
        self.round = self._step(verdicts)

    def summary(self) -> dict[str, Any]:
        found = self.found
        return {"label": self.spec["label"], "param": self.spec["param"],
                "values": self.values, "target": self.target, "found_index": found,
                "found": self.values[found] if found is not None else None,
                "order": self.order, "trace": self.trace}


def run_searches(recipe: Recipe, executor: Any, runs_dir: str | Path, quick: bool = False,
                 seeds: int | None = None, data_dir: str | None = None,
                 jobs: int = 1) -> list[dict[str, Any]]:
    """Run all searches of ``recipe`` side by side: each round of every unfinished search goes
    to the executor in one call, ``jobs // searches`` probes each, so all workers stay busy.
    """
    from cnnlab.experiments.search.optuna_search import run_optuna_searches

    n_seeds = seeds if seeds is not None else (1 if quick else recipe.seeds)
    ready = [s for s in recipe.searches if available(s.get("requires"))]
    optuna = [s for s in ready if "space" in s]  # a family: cnnlab.experiments.search.optuna_search
    found = run_optuna_searches(recipe, optuna, executor, runs_dir, quick, seeds,
                                data_dir) if optuna else []
    todo = [s for s in ready if "space" not in s]
    k = max(1, jobs // max(1, len(todo) * n_seeds))
    active = [_Search(recipe, s, quick, n_seeds, k) for s in todo]
    while any(not s.done for s in active):
        batches = [(s, s.jobs()) for s in active if not s.done]
        flat = [job for _, b in batches for _, job in b]
        results = iter(executor.map([train_config(j, runs_dir, data_dir) for j in flat]))
        for s, b in batches:
            s.advance(b, [next(results) for _ in b])
    skipped = [{"label": s["label"], "param": s["param"], "skipped": "needs " + s["requires"],
                "trace": []} for s in recipe.searches if not available(s.get("requires"))]
    return found + [s.summary() for s in active] + skipped

"""HUJI 3.1/3.2: the smallest network that still reaches a target accuracy, found by search.

The candidate sizes are an ordered list (smallest network first). Assuming that a larger
network of the same family reaches the target whenever a smaller one does, the smallest
passing size is found by k-ary bisection: each round trains ``k`` probes in parallel (``k``
is the executor's job count, so both cores work) and narrows the interval. Every probe
trains with the same fixed budget and ``target_acc`` set, so it stops as soon as its test
accuracy reaches the target and its time and iterations to the target are measured.

:func:`param_steps` explains a size as the sheet asks (HUJI 1.1, 3.1.1, 3.2.1: "how many
parameters ... explain how you count them"): one checked product per layer, from the analyzer.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .experiment import (
    Job,
    Recipe,
    _group_config,
    available,
    opts_string,
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


def smallest_passing(n: int, test: Any, k: int = 1) -> tuple[int | None, list[int]]:
    """Index of the first passing candidate among ``n`` (``None`` if even the last fails).

    ``test(indices) -> list[bool]`` evaluates a round of ``k`` probes at once; the first round
    checks the largest candidate together with ``k - 1`` interior ones. Returns the index and
    the order in which candidates were evaluated.
    """
    order: list[int] = []
    if n == 0:
        return None, order
    lo, hi = 0, None  # everything below lo failed; hi is the smallest known pass
    round_ = [n - 1] + [i for i in probes(0, n - 1, k - 1) if k > 1]
    while round_:
        order += round_
        passed = test(round_)
        ok = [i for i, p in zip(round_, passed, strict=True) if p]
        bad = [i for i, p in zip(round_, passed, strict=True) if not p]
        if ok:
            hi = min(ok + ([hi] if hi is not None else []))
        if hi is None:
            return None, order
        below = [i for i in bad if i < hi]
        if below:
            lo = max(lo, max(below) + 1)
        round_ = probes(lo, hi, k) if lo < hi else []
    return hi, order


def run_search(recipe: Recipe, search: dict[str, Any], executor: Any, runs_dir: str | Path,
               quick: bool = False, seeds: int | None = None, data_dir: str | None = None,
               k: int = 1) -> dict[str, Any]:
    """Run one ``[[searches]]`` entry; the trace lists every probe with its measured numbers."""
    spec = {**search, **(search.get("quick", {}) if quick else {})}
    values = list(spec["values"])
    target = float(spec["target"])
    n_seeds = seeds if seeds is not None else (1 if quick else recipe.seeds)
    trace: list[dict[str, Any]] = []
    if not available(spec.get("requires")):
        return {"label": spec["label"], "param": spec["param"], "skipped": True, "trace": []}

    def jobs_for(value: Any) -> list[Job]:
        cfg = _group_config(recipe, quick, spec.get("set", {}),
                            {spec["param"]: value, "target_acc": target})
        group = f"{spec['label']} {value_label(spec['param'], value)}"
        return [Job(recipe.name, group, s, {**cfg, "seed": s}, {spec["param"]: value},
                    "search") for s in range(n_seeds)]

    def test(indices: list[int]) -> list[bool]:
        batch = [(i, job) for i in indices for job in jobs_for(values[i])]
        results = executor.map([train_config(j, runs_dir, data_dir) for _, j in batch])
        verdicts = []
        for i in indices:
            runs = [(j, r) for (ii, j), r in zip(batch, results, strict=True) if ii == i]
            passed = all(r.iteration_to_target is not None for _, r in runs)
            for j, r in runs:
                res = asdict(r)
                res.pop("history", None)
                trace.append({"group": j.group, "seed": j.seed, "value": values[i],
                              "index": i, "passed": passed, "kind": "search",
                              "values": j.values, "out_name": j.out_name,
                              "run_dir": res["run_dir"], "result": res})
            verdicts.append(passed)
        return verdicts

    found, order = smallest_passing(len(values), test, k=max(1, k))
    return {"label": spec["label"], "param": spec["param"], "values": values,
            "target": target, "found_index": found,
            "found": values[found] if found is not None else None,
            "order": order, "trace": trace}


# ------------------------------------------------------------------------ parameter steps


def param_steps(model: str, model_opts: dict[str, Any] | str = "",
                input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """HUJI 1.1/3.1.1: the parameter count layer by layer, each step a checked product."""
    from . import models
    from .analyze import analyze
    from .train import TrainConfig, model_options

    opts = model_options(TrainConfig(model_opts=_opts_text(model_opts)))
    mdef = models.resolve(model, **opts)
    a = analyze(mdef.graph(), input=input_shape or mdef.input_shape)
    shapes = {row.name: row.output_shape for row in a.layers}
    lines = []
    for row in a.layers:
        if not row.params:
            continue
        inp = shapes.get(row.inputs[0], ()) if row.inputs else ()
        lines.append(f"{row.name} ({row.desc}): {_formula(row, inp)}")
    return {"model": mdef.name, "spec": mdef.spec, "total": a.total.params, "steps": lines,
            "input": "x".join(map(str, input_shape or mdef.input_shape))}


def _opts_text(opts: dict[str, Any] | str) -> str:
    return opts_string(opts or "")


def _formula(row: Any, inp: tuple[int, ...]) -> str:
    out = row.output_shape
    w, b = row.weights, row.biases
    tail = f" + {b:,} biases = {w + b:,}"
    if row.kind == "conv" and inp and out:
        cin, cout = inp[0], out[0]
        area = w // max(cin * cout, 1)
        side = math.isqrt(area)
        k = f"{side}·{side}" if side * side == area else str(area)
        if area * cin * cout == w:
            return f"{k}·{cin}·{cout} = {w:,} weights" + tail
    if row.kind == "linear" and inp:
        fan_in = math.prod(inp)
        fan = ("·".join(map(str, inp)) + f" = {fan_in:,}") if len(inp) > 1 else f"{fan_in:,}"
        if w and w % fan_in == 0:
            return f"({fan}) inputs · {w // fan_in:,} outputs = {w:,} weights" + tail
    if row.kind == "batchnorm":
        return f"scale {w:,} + shift {b:,} = {w + b:,}"
    return f"{w:,} weights" + tail

"""Findings written from measured numbers: sentences, tables and parameter counts.

Nothing here knows an answer in advance. Each sentence is a template filled from the runs of
an ``experiment.json`` (mean ± sample std over seeds, :mod:`cnnlab.experiments.stats`);
comparisons ("higher", "faster", "within the seed-to-seed spread") are decided by the numbers.
One function per ``[findings] kind`` of a recipe: :func:`curves`, :func:`compare`,
:func:`sweep`, :func:`search`; :func:`analyze` picks by kind and adds the findings of the
recipe's ``[measure]`` step (:func:`cnnlab.experiments.measure.describe`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.files import read_json
from cnnlab.experiments.measure import describe as describe_measure
from cnnlab.experiments.recipe import opts_string, value_label
from cnnlab.experiments.stats import (
    LOWER_IS_BETTER,
    METRICS,
    Findings,
    Group,
    best_group,
    better,
    crossing,
    diff_text,
    fmt,
    groups,
    table,
)

# ------------------------------------------------------------------------ sentences


def _metric_list(spec: dict[str, Any], default: str = "test_acc") -> list[str]:
    m = spec.get("metric", default)
    return [m] if isinstance(m, str) else list(m)


def _say_threshold(g: Group, thr: float) -> str:
    its, secs, hit = crossing(g, thr)
    if not any(r["_curves"].get("test_acc") for r in g.runs):
        return f"{g.label}: no test-accuracy curve was found (metrics.jsonl missing)"
    if not hit:
        last = max((r["iterations"] or 0 for r in g.runs), default=0)
        return f"{g.label} did not reach {100 * thr:g}% test accuracy within {last:,} iterations"
    seeds = "" if hit == len(g.runs) else f" ({hit} of {len(g.runs)} seeds)"
    return (f"{g.label} first reached {100 * thr:g}% test accuracy at iteration "
            f"{fmt('iterations', its)} after {fmt('train_time', secs)} s of training{seeds}")


def curves(gs: list[Group], spec: dict[str, Any]) -> Findings:
    """HUJI 1.2: accuracies along training and where a threshold was crossed."""
    f = Findings(groups=gs)
    every = int(spec.get("every", 500))
    for g in gs:
        if not g.runs:
            continue
        f.sentences.append(
            f"After {fmt('iterations', g.stat('iterations'))} iterations {g.label} reached "
            f"{fmt('test_acc', g.stat('test_acc'))} test and "
            f"{fmt('train_acc', g.stat('train_acc'))} train accuracy "
            f"({len(g.runs)} seed{'s' if len(g.runs) > 1 else ''}).")
        if "threshold" in spec:
            f.sentences.append(_say_threshold(g, float(spec["threshold"])) + ".")
        its, tr, _ = g.curve("train_acc")
        _, te, te_sd = g.curve("test_acc")
        rows = [[f"{it:,}", f"{100 * a:.2f}%", f"{100 * b:.2f}%" + (
            f" ± {100 * s:.2f}" if len(g.runs) > 1 else "")]
            for it, a, b, s in zip(its, tr, te, te_sd, strict=True)
            if it % every == 0 or it == its[-1]]
        f.tables.append((f"{g.label}: accuracy every {every} iterations",
                         {"header": ["iteration", "train acc", "test acc"], "rows": rows}))
    return f


def compare(gs: list[Group], spec: dict[str, Any]) -> Findings:
    """Variants against a baseline: accuracy, ratio, speed, memory, time to a threshold."""
    f = Findings(groups=gs)
    shown = spec.get("table", ["test_acc", "train_acc", "ratio", "step_ms", "train_time"])
    f.tables.append(("results", table(gs, shown)))
    ran = [g for g in gs if g.runs]
    base = next((g for g in ran if g.label == spec.get("baseline")), ran[0] if ran else None)
    if base is None:
        return f
    metrics = _metric_list(spec)
    for g in ran:
        if g is base:
            continue
        for m in metrics:
            a, b = g.stat(m), base.stat(m)
            if not (a.values and b.values):
                continue
            word = "better" if better(m, a.mean, b.mean) else "worse"
            f.sentences.append(
                f"{g.label} reached {METRICS[m][0]} {fmt(m, a)} vs {base.label} {fmt(m, b)}, "
                f"a difference of {diff_text(m, a, b)}: {word} by this measure.")
        for m in spec.get("speed", ["step_ms"]):
            a, b = g.stat(m), base.stat(m)
            if a.values and b.values and a.mean > 0 and b.mean > 0:
                r = a.mean / b.mean
                how = f"{1 / r:.2f}x faster" if r < 1 else f"{r:.2f}x slower"
                if m in ("peak_rss_mib", "data_mib"):
                    how = f"{r:.2f}x the memory"
                f.sentences.append(f"{METRICS[m][0]}: {g.label} {fmt(m, a)} vs {base.label} "
                                   f"{fmt(m, b)} ({how}).")
    if "threshold" in spec:
        f.sentences += [_say_threshold(g, float(spec["threshold"])) + "." for g in ran]
    for m in metrics:
        best = best_group(ran, m)
        if best is not None and len(ran) > 2:
            f.sentences.append(f"Best by {METRICS[m][0]}: {best.label} "
                               f"({fmt(m, best.stat(m))}).")
    return f


def sweep(gs: list[Group], spec: dict[str, Any]) -> Findings:
    """One key swept: the best value by each metric and the range of described metrics."""
    f = Findings(groups=gs)
    metrics = _metric_list(spec)
    shown = spec.get("table", list(dict.fromkeys(metrics + ["train_acc", "step_ms"])))
    param = spec.get("param", "value")
    f.tables.append(("results", table(gs, shown, key=param)))
    ran = [g for g in gs if g.runs and g.stat(metrics[0]).values]
    failed = [g.label for g in gs if g.runs and not g.stat(metrics[0]).values]
    if failed:
        f.sentences.append(f"Diverged (loss became NaN): {', '.join(failed)}.")
    for m in metrics:
        best = best_group(ran, m)
        if best is None:
            continue
        others = sorted((g for g in ran if g is not best), key=lambda g: g.stat(m).mean,
                        reverse=m not in LOWER_IS_BETTER)
        tail = ""
        if others:
            tail = (f"; the runner-up {others[0].label} had {fmt(m, others[0].stat(m))} "
                    f"({diff_text(m, others[0].stat(m), best.stat(m))})")
        if len(others) > 1:
            tail += f" and the worst, {others[-1].label}, {fmt(m, others[-1].stat(m))}"
        f.sentences.append(f"The best {param} by {METRICS[m][0]} was {best.label}: "
                           f"{fmt(m, best.stat(m))}{tail}.")
        ref = next((g for g in ran if g.label == spec.get("baseline")), None)
        if ref is not None and ref is not best:
            a, b = best.stat(m), ref.stat(m)
            size = ""
            pa, pb = best.stat("param_count"), ref.stat("param_count")
            if pa.values and pb.values and pa.mean != pb.mean and pa.mean > 0:
                size = (f" with {pa.mean:,.0f} instead of {pb.mean:,.0f} parameters "
                        f"({pb.mean / pa.mean:.1f}x fewer)" if pa.mean < pb.mean else
                        f" with {pa.mean:,.0f} instead of {pb.mean:,.0f} parameters")
            f.sentences.append(f"Against {ref.label}, {best.label} changed {METRICS[m][0]} "
                               f"from {fmt(m, b)} to {fmt(m, a)} ({diff_text(m, a, b)})"
                               f"{size}.")
    for m in spec.get("describe", []):
        vals = [g for g in ran if g.stat(m).values]
        if len(vals) > 1:
            lo = min(vals, key=lambda g: g.stat(m).mean)
            hi = max(vals, key=lambda g: g.stat(m).mean)
            f.sentences.append(f"{METRICS[m][0]} was lowest with {lo.label} "
                               f"({fmt(m, lo.stat(m))}) and highest with {hi.label} "
                               f"({fmt(m, hi.stat(m))}).")
    return f


# ------------------------------------------------------------------------ searches (HUJI 3)


def search(doc: dict[str, Any], root: Path) -> Findings:
    """HUJI 3: per search the smallest passing size, its parameters, time to the target."""
    f = Findings()
    found_groups = []
    for s in doc.get("searches", []):
        trace = sorted(s.get("trace", []), key=lambda t: (t["index"], t["seed"]))
        probes = groups(trace, root)
        f.tables.append((f"{s['label']}: probes (target {100 * s.get('target', 0):g}%)",
                         table(probes, ["param_count", "best_test_acc",
                                        "iteration_to_target", "time_to_target"])))
        if s.get("skipped"):
            f.sentences.append(f"The {s['label']} search was skipped: {s['skipped']}.")
            continue
        if s.get("found") is None:
            tried = ", ".join(str(v) for v in s.get("values", []))
            f.sentences.append(f"No {s['label']} size among {tried} reached "
                               f"{100 * s.get('target', 0):g}% within the training budget.")
            continue
        g = next(p for p in probes if p.values.get(s["param"]) == s["found"])
        g.label = s["label"]
        found_groups.append(g)
        cfg = read_json(Path(g.runs[0]["run_dir"]) / "config.json", {})
        steps = param_steps(cfg.get("spec") or cfg.get("model", ""), cfg.get("model_opts", ""))
        steps["label"] = s["label"]
        f.params.append(steps)
        f.sentences.append(
            f"The smallest {s['label']} network reaching {100 * s['target']:g}% was "
            f"{value_label(s['param'], s['found'])} with {steps['total']:,} parameters; "
            f"{len(probes)} sizes were trained to find it. It reached the target at iteration "
            f"{fmt('iteration_to_target', g.stat('iteration_to_target'))} after "
            f"{fmt('time_to_target', g.stat('time_to_target'))} s of training "
            f"({fmt('step_ms', g.stat('step_ms'))} ms per step).")
        smaller = [p for p in probes if s["values"].index(p.values[s["param"]]) < s["found_index"]]
        if smaller:
            below = smaller[-1]
            f.sentences.append(
                f"The next smaller size trained, {below.label} "
                f"({fmt('param_count', below.stat('param_count'))} parameters), did not reach "
                f"the target on every seed (best test accuracy "
                f"{fmt('best_test_acc', below.stat('best_test_acc'))}).")
    if len(found_groups) == 2:
        a, b = found_groups
        for m in ("time_to_target", "iteration_to_target"):
            sa, sb = a.stat(m), b.stat(m)
            if sa.values and sb.values and sb.mean > 0:
                r = sa.mean / sb.mean
                f.sentences.append(f"{METRICS[m][0]}: {a.label} {fmt(m, sa)} vs {b.label} "
                                   f"{fmt(m, sb)}; {a.label} needed {r:.2f}x what "
                                   f"{b.label} needed.")
    f.groups = found_groups
    return f


def root_of(doc: dict[str, Any]) -> Path:
    """The runs folder that a document's ``out_name``s are relative to."""
    return Path(doc["_root"]) if "_root" in doc else Path(doc["_path"]).parent.parent


def analyze(doc: dict[str, Any]) -> Findings:
    """Findings of one experiment document (``experiment.json``) by its ``[findings] kind``."""
    recipe = doc["recipe"]
    spec = recipe.get("findings", {}) or {}
    root = root_of(doc)
    kind = spec.get("kind", "compare")
    gs = groups(doc.get("jobs", []), root)
    if kind == "search":
        f = search(doc, root)
    elif kind == "curves":
        f = curves(gs, spec)
    elif kind == "sweep":
        f = sweep(gs, spec)
    else:
        f = compare(gs, spec)
    for m in (recipe.get("analyze") or {}).get("models", []):
        f.params.append(param_steps(m["model"], m.get("model_opts", "")))
    if doc.get("measure"):
        describe_measure(doc["measure"], f)
    return f


# ------------------------------------------------------------------------ parameter steps


def param_steps(model: str, model_opts: dict[str, Any] | str = "",
                input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """HUJI 1.1/3.1.1: a recipe model's parameter count layer by layer
    (:func:`cnnlab.analysis.steps.param_steps`), with the model's name, spec and input."""
    from cnnlab.analysis.steps import param_steps as steps_of
    from cnnlab.models.resolve import analyze
    from cnnlab.models.zoo import resolve
    from cnnlab.training.trainer import TrainConfig, model_options

    opts = model_options(TrainConfig(model_opts=opts_string(model_opts or "")))
    mdef = resolve(model, **opts)
    shape = input_shape or mdef.input_shape
    a = analyze(mdef.graph(), input=shape)
    return {"model": mdef.name, "spec": mdef.spec, "total": a.total.params,
            "steps": [str(s) for s in steps_of(a)], "input": "x".join(map(str, shape))}

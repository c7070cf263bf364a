"""Findings written from measured numbers: sentences, tables and parameter counts.

Nothing here knows an answer in advance. Each sentence is a template filled from the runs of
an ``experiment.json``: a configuration as mean ± 95% confidence interval with its seed count,
a comparison as a difference with its 95% interval, paired by seed where the runs share their
data order, else Welch (:mod:`.stats`, :mod:`.intervals`).
A difference whose interval contains 0 (or that has none: one seed) is "not distinguishable at
this budget", never a ranking; a sweep names its best value only when the intervals separate
it from every other. One function per ``[findings] kind`` of a recipe: :func:`curves`,
:func:`compare`, :func:`sweep`, :func:`search`; :func:`analyze` picks by kind and adds the
findings of the recipe's ``[measure]`` step (:func:`.measure_text.describe`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.files import read_json
from cnnlab.experiments.recipe import opts_string, value_label
from cnnlab.experiments.report.answers import answer
from cnnlab.experiments.report.measure_text import describe as describe_measure
from cnnlab.experiments.report.stats import (
    LOWER_IS_BETTER,
    METRICS,
    NOT_DISTINGUISHABLE,
    ONE_SEED_EACH,
    Findings,
    Group,
    compare_stats,
    crossing,
    diff_amount,
    diff_text,
    fmt,
    fmt_time,
    groups,
    one_seed_note,
    quote,
    rank,
    seeds_note,
    shared_clock,
    table,
    untested,
    verdict,
)

# ------------------------------------------------------------------------ sentences


def _metric_list(spec: dict[str, Any], default: str = "test_acc") -> list[str]:
    m = spec.get("metric", default)
    return [m] if isinstance(m, str) else list(m)


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def _say_threshold(g: Group, thr: float) -> str:
    its, secs, hit = crossing(g, thr)
    if not any(r["_curves"].get("test_acc") for r in g.runs):
        return f"{g.label}: no test-accuracy curve was found (metrics.jsonl missing)"
    if not hit:
        last = max((r["iterations"] or 0 for r in g.runs), default=0)
        return (f"{g.label} did not reach {100 * thr:g}% test accuracy within {last:,} "
                f"iterations ({'on any of ' if len(g.runs) > 1 else 'on '}"
                f"{_seeds(len(g.runs))})")
    note = seeds_note(hit)
    if hit < len(g.runs):
        note = f"{hit} of {len(g.runs)} seeds reached it: " + (
            "one seed, no interval" if hit == 1 else f"95% CI over those {hit}")
    return (f"{g.label} first reached {100 * thr:g}% test accuracy at iteration "
            f"{fmt('iterations', its)} after {fmt_time('train_time', secs)} s of training ({note})")


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
            f"({seeds_note(g.stat('test_acc').n)}).")
        if "threshold" in spec:
            f.sentences.append(_say_threshold(g, float(spec["threshold"])) + ".")
        pm = len(g.runs) > 1
        cols = []
        for key in ("train_acc", "test_acc"):
            its_k, mean, ci = g.curve(key, band="ci")
            cols.append({it: f"{100 * a:.2f}" + (f" ± {100 * h:.2f}" if pm else "") + "%"
                         for it, a, h in zip(its_k, mean, ci, strict=True)})
        its = sorted(set(cols[0]) | set(cols[1]))
        rows = [[f"{it:,}", cols[0].get(it, "n/a"), cols[1].get(it, "n/a")] for it in its
                if it % every == 0 or it == its[-1]]
        f.tables.append((f"{g.label}: accuracy every {every} iterations "
                         f"({seeds_note(len(g.runs))})",
                         {"header": ["iteration", "train acc", "test acc"], "rows": rows}))
    return f


def _versus(m: str, g: Group, base: Group) -> str:
    """One configuration against another by ``m``: both with their intervals, the
    difference with its interval, and the verdict."""
    a, b = g.stat(m), base.stat(m)
    if (why := untested(a, b)) is not None:  # the numbers as they are, no verdict
        return (f"{g.label} reached {METRICS[m][0]} {fmt(m, a)} vs {base.label} {fmt(m, b)}, "
                f"a difference of {diff_amount(m, a, b)} ({why}).")
    return (f"{g.label} reached {METRICS[m][0]} {quote(m, a)} vs {base.label} {quote(m, b)}, "
            f"a difference of {diff_text(m, a, b)}: {verdict(m, a, b)}.")


def _speed(m: str, g: Group, base: Group) -> str:
    """A cost (time, memory) of ``g`` against ``base``: a ratio only when distinguishable."""
    a, b = g.stat(m), base.stat(m)
    r = a.mean / b.mean
    how = f"{1 / r:.2f}x faster" if r < 1 else f"{r:.2f}x slower"
    if m in ("peak_rss_mib", "data_mib"):
        how = f"{r:.2f}x the memory"
    if (why := untested(a, b)) is not None:
        return (f"{METRICS[m][0]}: {g.label} {fmt(m, a)} vs {base.label} {fmt(m, b)}, a "
                f"difference of {diff_amount(m, a, b)}: {how} by the means ({why}).")
    head = (f"{METRICS[m][0]}: {g.label} {quote(m, a)} vs {base.label} {quote(m, b)}, "
            f"a difference of {diff_text(m, a, b)}")
    if shared_clock(a, b):
        return f"{head}: not a measured difference."
    d = compare_stats(a, b)
    if d.method == "none" and (a.merged or b.merged):
        # each side is one batched group's clock: a ratio, but no interval to test it by
        return f"{head}: {how} by the means, not a tested difference (one measurement)."
    if not d.distinguishable:
        return f"{head}: {NOT_DISTINGUISHABLE}."
    return f"{head}: {how}."


def _ranked(gs: list[Group], m: str, what: str) -> str | None:
    """The best ``what`` by ``m`` when the intervals separate it from every other, else which
    ones are not distinguishable from the top mean."""
    rk = rank(gs, m)
    if rk is None:
        return None
    top, name = rk.top, METRICS[m][0]
    mean_word = "lowest" if m in LOWER_IS_BETTER else "highest"
    st = top.stat(m)
    if all(g.stat(m).n == 1 and not g.stat(m).merged for g in rk.order):
        listed = ", ".join(f"{g.label} {fmt(m, g.stat(m))}" for g in rk.order)
        return (f"By {name}, {mean_word} first: {listed} (one seed each, no interval: an "
                f"order of single runs, not a ranking).")

    def vs(g: Group) -> str:
        return f"{g.label} at {fmt(m, g.stat(m))}, a difference of {diff_text(m, g.stat(m), st)}"

    if rk.best is not None:
        runner = rk.order[1]
        text = (f"The best {what} by {name} was {top.label}: {quote(m, st)}; the runner-up "
                f"{runner.label} had {quote(m, runner.stat(m))}, a difference of "
                f"{diff_text(m, runner.stat(m), st)}")
        if len(rk.order) > 2:
            worst = rk.order[-1]
            text += f", and the worst, {worst.label}, {quote(m, worst.stat(m))}"
        return text + "."
    text = (f"No {what} is distinguishably best by {name} at this budget: {top.label} had the "
            f"{mean_word} mean, {quote(m, st)}; not distinguishable from it: "
            f"{'; '.join(vs(g) for g in rk.ties)}.")
    if rk.below:
        text += f" Distinguishably worse than {top.label}: {'; '.join(vs(g) for g in rk.below)}."
    return text


def compare(gs: list[Group], spec: dict[str, Any]) -> Findings:
    """Variants against a baseline: accuracy, ratio, speed, memory, time to a threshold."""
    f = Findings(groups=gs)
    shown = spec.get("table", ["test_acc", "train_acc", "ratio", "step_ms", "train_time"])
    f.tables.append(("results (mean ± 95% CI over seeds)", table(gs, shown)))
    ran = [g for g in gs if g.runs]
    base = next((g for g in ran if g.label == spec.get("baseline")), ran[0] if ran else None)
    if base is None:
        return f
    metrics = _metric_list(spec)
    for g in ran:
        if g is base:
            continue
        for m in metrics:
            if g.stat(m).values and base.stat(m).values:
                f.sentences.append(_versus(m, g, base))
        for m in spec.get("speed", ["step_ms"]):
            a, b = g.stat(m), base.stat(m)
            if a.values and b.values and a.mean > 0 and b.mean > 0:
                f.sentences.append(_speed(m, g, base))
    if "threshold" in spec:
        f.sentences += [_say_threshold(g, float(spec["threshold"])) + "." for g in ran]
    if len(ran) > 2:
        f.sentences += [t for m in metrics if (t := _ranked(ran, m, "configuration"))]
    return f


def _diverged(gs: list[Group], metric: str) -> str | None:
    """Which groups lost seeds to a NaN loss, with how many."""
    out = []
    for g in gs:
        st = g.stat(metric)
        lost = len(g.runs) - st.n - st.merged
        if g.runs and lost:
            out.append(f"{g.label} ({'all ' if lost == len(g.runs) else ''}{lost} of "
                       f"{len(g.runs)} seeds)")
    return f"Diverged (loss became NaN): {', '.join(out)}." if out else None


def _against(m: str, best: Group, ref: Group) -> str:
    a, b = best.stat(m), ref.stat(m)
    why = untested(a, b)
    size = ""
    pa, pb = best.stat("param_count"), ref.stat("param_count")
    if pa.values and pb.values and pa.mean != pb.mean and pa.mean > 0:
        size = (f" with {pa.mean:,.0f} instead of {pb.mean:,.0f} parameters "
                f"({pb.mean / pa.mean:.1f}x fewer)" if pa.mean < pb.mean else
                f" with {pa.mean:,.0f} instead of {pb.mean:,.0f} parameters")
    if why is not None:
        return (f"Against {ref.label}, {best.label} changed {METRICS[m][0]} from {fmt(m, b)} to "
                f"{fmt(m, a)}{size}, a difference of {diff_amount(m, a, b)} ({why}).")
    return (f"Against {ref.label}, {best.label} changed {METRICS[m][0]} from {quote(m, b)} to "
            f"{quote(m, a)}{size}, a difference of {diff_text(m, a, b)}: {verdict(m, a, b)}.")


def sweep(gs: list[Group], spec: dict[str, Any]) -> Findings:
    """One key swept: the best value by each metric (only when distinguishable), the values
    not distinguishable from the top one, and the range of the described metrics."""
    f = Findings(groups=gs)
    metrics = _metric_list(spec)
    shown = spec.get("table", list(dict.fromkeys(metrics + ["train_acc", "step_ms"])))
    param = spec.get("param", "value")
    f.tables.append(("results (mean ± 95% CI over seeds)", table(gs, shown, key=param)))
    ran = [g for g in gs if g.runs and g.stat(metrics[0]).values]
    if (lost := _diverged(gs, metrics[0])) is not None:
        f.sentences.append(lost)
    for m in metrics:
        scored = [g for g in ran if g.stat(m).values]
        if len(scored) == 1:
            g = scored[0]
            f.sentences.append(f"Only {g.label} has {METRICS[m][0]}: {quote(m, g.stat(m))}.")
        text = _ranked(scored, m, param)
        if text is None:
            continue
        f.sentences.append(text)
        rk = rank(scored, m)
        ref = next((g for g in ran if g.label == spec.get("baseline")), None)
        if rk is not None and ref is not None and ref is not rk.top:
            f.sentences.append(_against(m, rk.top, ref))
    for m in spec.get("describe", []):
        vals = [g for g in ran if g.stat(m).values]
        if len(vals) > 1:
            lo = min(vals, key=lambda g: g.stat(m).mean)
            hi = max(vals, key=lambda g: g.stat(m).mean)
            a, b = hi.stat(m), lo.stat(m)
            if a.mean == b.mean:
                f.sentences.append(f"{METRICS[m][0]} was the same for every {param}: "
                                   f"{quote(m, a)}.")
                continue
            why = untested(a, b)
            same = (f" ({why})" if why else "" if compare_stats(a, b).distinguishable
                    else f": {NOT_DISTINGUISHABLE}")
            q, dt = (fmt, diff_amount) if why else (quote, diff_text)
            f.sentences.append(f"{METRICS[m][0]} was lowest with {lo.label}, {q(m, b)}, "
                               f"and highest with {hi.label}, {q(m, a)}, a difference "
                               f"of {dt(m, a, b)}{same}.")
    return f


# ------------------------------------------------------------------------ searches (HUJI 3)


def search(doc: dict[str, Any], root: Path) -> Findings:
    """HUJI 3: per search the smallest passing size, its parameters, time to the target.
    Optuna searches over a family: :func:`cnnlab.experiments.report.frontier.findings`."""
    if any(s.get("kind") == "optuna" for s in doc.get("searches", [])):
        from cnnlab.experiments.report.frontier import findings as frontier_findings

        return frontier_findings(doc, root, param_steps)
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
            f"{fmt_time('time_to_target', g.stat('time_to_target'))} s of training "
            f"({fmt_time('step_ms', g.stat('step_ms'))} ms per step).")
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
                f.sentences.append(f"{METRICS[m][0]}: {a.label} {fmt_time(m, sa)} vs {b.label} "
                                   f"{fmt_time(m, sb)}; {a.label} needed {r:.2f}x what "
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
    ran = [g for g in gs if g.runs] + [g for g in f.groups if g.runs and g not in gs]
    f.answers = answer(doc, f)
    if ran and all(len(g.runs) == 1 for g in ran):  # said once, not at every number
        name = recipe.get("name")
        f.sentences = [_once(t) for t in f.sentences]
        f.answers = [(q, _once(t)) for q, t in f.answers]
        f.sentences.insert(0, one_seed_note(name if name and name != "runs" else None))
    return f


def _once(text: str) -> str:
    """``text`` without the per-difference one-seed marker (the section's note says it)."""
    return text.replace(f" ({ONE_SEED_EACH})", "")


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

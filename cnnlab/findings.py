"""Findings written from measured numbers: per-run metrics, seed statistics, sentences.

Nothing here knows an answer in advance. Each sentence is a template filled from the runs of
an ``experiment.json`` (mean ± sample std over seeds); comparisons ("higher", "faster",
"within the seed-to-seed spread") are decided by the numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .search import param_steps

# metric -> (column heading, formatter kind)
METRICS = {
    "test_acc": ("test acc", "pct"), "train_acc": ("train acc", "pct"),
    "ratio": ("test/train", "ratio"), "test_error": ("test error", "pct"),
    "best_test_acc": ("best test acc", "pct"), "test_loss": ("test loss", "num"),
    "train_loss": ("train loss", "num"), "step_ms": ("ms/step", "num"),
    "train_time": ("train s", "num"), "iterations": ("iterations", "int"),
    "param_count": ("params", "int"), "peak_rss_mib": ("peak RSS MiB", "num"),
    "train_examples": ("train examples", "int"), "data_mib": ("train set MiB", "num"),
    "regularizer": ("final regularizer", "num"), "time_to_target": ("s to target", "num"),
    "iteration_to_target": ("its to target", "int"),
}
LOWER_IS_BETTER = {"test_error", "test_loss", "train_loss", "step_ms", "train_time",
                   "time_to_target", "iteration_to_target", "peak_rss_mib", "data_mib"}


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0


@dataclass
class Group:
    """The runs of one configuration (variant, sweep point or search probe) over seeds."""

    label: str
    values: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None

    def stat(self, metric: str) -> Stat:
        vals = [r[metric] for r in self.runs if r.get(metric) is not None]
        return Stat([v for v in vals if not (isinstance(v, float) and math.isnan(v))])

    def curve(self, key: str) -> tuple[list[int], list[float], list[float]]:
        """Iterations, mean and std over seeds of an eval/train metric (common iterations)."""
        per_run = [dict(r["_curves"].get(key, [])) for r in self.runs]
        if not per_run:
            return [], [], []
        common = sorted(set.intersection(*(set(c) for c in per_run)))
        its, means, stds = [], [], []
        for it in common:
            s = Stat([c[it] for c in per_run])
            its.append(it)
            means.append(s.mean)
            stds.append(s.std)
        return its, means, stds


# ------------------------------------------------------------------------ loading


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from .runlog import read_metrics

    out: dict[str, list[tuple[int, float]]] = {}
    if not (run_dir / "metrics.jsonl").is_file():
        return out
    for rec in read_metrics(run_dir):
        for k, v in rec.items():
            if k not in ("kind", "iteration") and isinstance(v, int | float):
                name = "batch_loss" if k == "batch_loss" else k
                out.setdefault(name, []).append((rec["iteration"], float(v)))
    if "test_acc" in out:
        out["test_error"] = [(i, 1 - v) for i, v in out["test_acc"]]
    return out


def run_metrics(rec: dict[str, Any], root: Path) -> dict[str, Any]:
    """Every metric of one job record; ``root`` is the runs folder the experiment lives in."""
    folder = root / rec["out_name"]
    if not folder.is_dir():
        folder = Path(rec.get("run_dir", folder))
    res = rec.get("result", {})
    env = _read_json(folder / "env.json")
    ex = _read_json(folder / "executor.json")
    m: dict[str, Any] = {k: res.get(k) for k in (
        "test_acc", "train_acc", "test_loss", "train_loss", "train_time", "iterations",
        "param_count", "time_to_target", "iteration_to_target", "images_per_s", "stopped")}
    m["seed"] = rec.get("seed")
    m["run_dir"] = str(folder)
    ok = m["test_acc"] is not None and not math.isnan(m["test_acc"])
    m["test_error"] = 1 - m["test_acc"] if ok else None
    m["ratio"] = m["test_acc"] / m["train_acc"] if ok and m["train_acc"] else None
    its = m["iterations"] or 0
    m["step_ms"] = 1000 * m["train_time"] / its if its and m["train_time"] else None
    m["peak_rss_mib"] = ex["peak_rss_bytes"] / 2**20 if "peak_rss_bytes" in ex else None
    m["cpu_s"], m["wall_s"] = ex.get("cpu_s"), ex.get("wall_s")
    m["load_avg"], m["cores"] = ex.get("load_avg_1min"), ex.get("cores")
    m["train_examples"] = env.get("train_examples")
    shape = env.get("input_shape")
    if m["train_examples"] and shape:
        m["data_mib"] = m["train_examples"] * math.prod(shape) * 4 / 2**20
    m["_curves"] = _curves(folder)
    hist = m["_curves"].get("test_acc", [])
    m["best_test_acc"] = max((v for _, v in hist), default=None)
    reg = m["_curves"].get("regularizer", [])
    m["regularizer"] = reg[-1][1] if reg else None
    return m


def groups(records: list[dict[str, Any]], root: Path) -> list[Group]:
    """Job records grouped by label, in the order they first appear."""
    out: dict[str, Group] = {}
    for rec in records:
        g = out.setdefault(rec["group"], Group(rec["group"], rec.get("values", {})))
        if "skipped" in rec:
            g.skipped = rec["skipped"]
        else:
            g.runs.append(run_metrics(rec, root))
    return list(out.values())


def crossing(group: Group, threshold: float) -> tuple[Stat, Stat, int]:
    """Iteration and training seconds at which test accuracy first reached ``threshold``;
    the count of seeds that reached it."""
    its, secs = [], []
    for r in group.runs:
        times = dict(r["_curves"].get("train_time", []))
        for it, acc in r["_curves"].get("test_acc", []):
            if acc >= threshold:
                its.append(float(it))
                secs.append(times.get(it, math.nan))
                break
    return Stat(its), Stat(secs), len(its)


# ------------------------------------------------------------------------ formatting


def fmt(metric: str, stat: Stat) -> str:
    kind = METRICS.get(metric, ("", "num"))[1]
    if not stat.values:
        return "n/a"
    mean, std = stat.mean, stat.std
    if kind == "pct":
        body = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if stat.n > 1 else "") + "%"
    elif kind == "int":
        body = f"{mean:,.0f}" + (f" ± {std:,.0f}" if stat.n > 1 and std else "")
    elif kind == "ratio":
        body = f"{mean:.3f}" + (f" ± {std:.3f}" if stat.n > 1 else "")
    else:
        digits = 3 if abs(mean) < 10 else 1
        body = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if stat.n > 1 else "")
    return body


def diff_text(metric: str, a: Stat, b: Stat) -> str:
    """'a difference of +1.52 percentage points, larger than the seed-to-seed spread'."""
    d = a.mean - b.mean
    kind = METRICS.get(metric, ("", "num"))[1]
    if kind == "pct":
        amount = f"{100 * d:+.2f} percentage points"
    elif kind == "ratio":
        amount = f"{d:+.3f}"
    else:
        amount = f"{d:+.3g}"
    if a.n > 1 and b.n > 1:
        spread = a.std + b.std
        amount += (", within the seed-to-seed spread" if abs(d) <= spread
                   else ", larger than the seed-to-seed spread")
    return amount


def better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def table(groups_: list[Group], metrics: list[str], key: str = "configuration") -> dict:
    """A table (header + rows of strings) of ``metrics`` per group."""
    header = [key, "seeds"] + [METRICS.get(m, (m, ""))[0] for m in metrics]
    rows = []
    for g in groups_:
        if g.skipped:
            rows.append([g.label, "0"] + [f"skipped: {g.skipped}"] + [""] * (len(metrics) - 1))
            continue
        rows.append([g.label, str(len(g.runs))] + [fmt(m, g.stat(m)) for m in metrics])
    return {"header": header, "rows": rows}


def best_group(groups_: list[Group], metric: str) -> Group | None:
    scored = [g for g in groups_ if g.stat(metric).values]
    if not scored:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scored, key=lambda g: g.stat(metric).mean)


# ------------------------------------------------------------------------ sentences


@dataclass
class Findings:
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, dict]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)


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
        from .search import search_findings

        f = search_findings(doc, root)
    elif kind == "curves":
        f = curves(gs, spec)
    elif kind == "sweep":
        f = sweep(gs, spec)
    else:
        f = compare(gs, spec)
    for m in (recipe.get("analyze") or {}).get("models", []):
        f.params.append(param_steps(m["model"], m.get("model_opts", "")))
    return f

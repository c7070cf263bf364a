"""Measured numbers of an experiment: per-run metrics, groups of seeds, their statistics.

A :class:`Group` is the runs of one configuration over seeds; :class:`Stat` is one metric over
them (mean ± sample std). :mod:`cnnlab.experiments.findings` writes sentences from these;
:mod:`cnnlab.experiments.report` renders their tables and curves.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.common.files import read_json

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


def _curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from cnnlab.training.runlog import read_metrics

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
    env = read_json(folder / "env.json", {})
    ex = read_json(folder / "executor.json", {})
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


@dataclass
class Findings:
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, dict]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)

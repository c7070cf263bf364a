"""Measured numbers of an experiment: per-run metrics, groups of seeds, their statistics.

A :class:`Group` is the runs of one configuration over seeds; :class:`Stat` is one metric over
them: mean ± the half-width of its 95% confidence interval (Student t,
:mod:`cnnlab.experiments.report.intervals`), and per run the seed and data-order key that let two
groups be compared paired by seed. :mod:`cnnlab.experiments.report.findings` writes sentences from
these (:func:`quote`, :func:`diff_text`, :func:`verdict`, :func:`rank`);
:mod:`cnnlab.experiments.report.page` renders their tables and curves.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.common.files import read_json
from cnnlab.experiments.report.intervals import Interval, data_order, difference, mean_interval

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
#: metrics read off one clock (or one process) that a batched group's runs share
#: (:func:`cnnlab.experiments.executor.run_group`): the group's time split evenly, so
#: equal values within one group are one measurement, not one per seed
SHARED_CLOCK = {"train_time", "step_ms", "images_per_s", "time_to_target", "cpu_s", "wall_s",
                "peak_rss_mib"}
LOWER_IS_BETTER = {"test_error", "test_loss", "train_loss", "step_ms", "train_time",
                   "time_to_target", "iteration_to_target", "peak_rss_mib", "data_mib"}


@dataclass
class Stat:
    """One metric over the seeds of a group; ``seeds``/``keys`` (the run's seed and
    :func:`~.intervals.data_order`), when given, run parallel to ``values``.
    """

    values: list[float]
    seeds: list[Any] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    #: per value, the batched group it was measured in (``None``: trained alone)
    batches: list[Any] = field(default_factory=list)
    #: runs whose value is another run's measurement (same batched group, same clock)
    merged: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    @property
    def interval(self) -> Interval:
        """The mean with its 95% confidence interval (none for one seed)."""
        return mean_interval(self.values)

    @property
    def half(self) -> float:
        """Half-width of the 95% confidence interval of the mean (0 for one seed)."""
        return self.interval.half if self.n > 1 else 0.0

    def obs(self) -> list[tuple[Any, Any, float]]:
        """(seed, data-order key, value) per run; unknown seeds/keys are ``None``."""
        seeds = self.seeds if len(self.seeds) == self.n else [None] * self.n
        keys = self.keys if len(self.keys) == self.n else [None] * self.n
        return list(zip(seeds, keys, self.values, strict=True))


@dataclass
class Group:
    """The runs of one configuration (variant, sweep point or search probe) over seeds."""

    label: str
    values: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None

    def stat(self, metric: str) -> Stat:
        runs = [r for r in self.runs if r.get(metric) is not None
                and not (isinstance(r[metric], float) and math.isnan(r[metric]))]
        return one_per_clock(metric, [r[metric] for r in runs], runs)

    def curve(self, key: str, band: str = "std") -> tuple[list[int], list[float], list[float]]:
        """Iterations, mean and spread over seeds of an eval/train metric (common iterations):
        ``band="std"`` the sample standard deviation, ``"ci"`` the 95% interval's half-width.
        """
        per_run = [dict(r["_curves"].get(key, [])) for r in self.runs]
        if not per_run:
            return [], [], []
        common = sorted(set.intersection(*(set(c) for c in per_run)))
        its, means, stds = [], [], []
        for it in common:
            s = Stat([c[it] for c in per_run])
            its.append(it)
            means.append(s.mean)
            stds.append(s.half if band == "ci" else s.std)
        return its, means, stds


def one_per_clock(metric: str, values: list[float], runs: list[dict[str, Any]]) -> Stat:
    """:class:`Stat` of ``values`` (one per run of ``runs``); for a :data:`SHARED_CLOCK`
    metric, equal values of runs trained in one batched group count once: they are the
    group's one time, split evenly, not independent measurements (a time to target at
    different crossing iterations still differs per run and is kept)."""
    kept: list[int] = []
    seen: set[tuple[Any, float]] = set()
    for i, r in enumerate(runs):
        batch = r.get("_batch")
        if metric in SHARED_CLOCK and batch is not None:
            if (batch, values[i]) in seen:
                continue
            seen.add((batch, values[i]))
        kept.append(i)
    clocks = [runs[i].get("_batch") for i in kept] if metric in SHARED_CLOCK else []
    return Stat([values[i] for i in kept], [runs[i].get("seed") for i in kept],
                [runs[i].get("_order") for i in kept], clocks, merged=len(runs) - len(kept))


def shared_clock(a: Stat, b: Stat) -> bool:
    """Whether ``a`` and ``b`` hold a time measured in the same batched group (so their
    difference is the split of one clock, not a measured difference)."""
    return bool({x for x in a.batches if x is not None} & {x for x in b.batches if x is not None})


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
    cfg = read_json(folder / "config.json", {})
    cfg = cfg if isinstance(cfg, dict) else {}
    ex = read_json(folder / "executor.json", {})
    m: dict[str, Any] = {k: res.get(k) for k in (
        "test_acc", "train_acc", "test_loss", "train_loss", "train_time", "iterations",
        "param_count", "time_to_target", "iteration_to_target", "images_per_s", "stopped")}
    m["seed"] = rec.get("seed")
    m["_order"] = data_order(cfg) if cfg.get("seed", m["seed"]) == m["seed"] else None
    m["run_dir"] = str(folder)
    ok = m["test_acc"] is not None and not math.isnan(m["test_acc"])
    m["test_error"] = 1 - m["test_acc"] if ok else None
    m["ratio"] = m["test_acc"] / m["train_acc"] if ok and m["train_acc"] else None
    its = m["iterations"] or 0
    m["step_ms"] = 1000 * m["train_time"] / its if its and m["train_time"] else None
    m["peak_rss_mib"] = ex["peak_rss_bytes"] / 2**20 if "peak_rss_bytes" in ex else None
    m["cpu_s"], m["wall_s"] = ex.get("cpu_s"), ex.get("wall_s")
    batch = ex.get("group")
    m["_batch"] = tuple(sorted(batch)) if isinstance(batch, list) and len(batch) > 1 else None
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
    its, secs, hit = [], [], []
    for r in group.runs:
        times = dict(r["_curves"].get("train_time", []))
        for it, acc in r["_curves"].get("test_acc", []):
            if acc >= threshold:
                its.append(float(it))
                secs.append(times.get(it, math.nan))
                hit.append(r)
                break
    return Stat(its), one_per_clock("time_to_target", secs, hit), len(its)


# ------------------------------------------------------------------------ formatting


def _kind(metric: str) -> str:
    return METRICS.get(metric, ("", "num"))[1]


def _num(metric: str, x: float, signed: bool = False, ref: float | None = None) -> str:
    """One number of ``metric`` (a fraction as percent digits, no % sign); ``ref`` picks the
    decimals of a plain number (those of the mean it belongs to)."""
    kind, sign = _kind(metric), "+" if signed else ""
    if kind == "pct":
        return f"{100 * x:{sign}.2f}"
    if kind == "int":
        return f"{x:{sign},.0f}"
    if kind == "ratio":
        return f"{x:{sign}.3f}"
    digits = 3 if abs(x if ref is None else ref) < 10 else 1
    return f"{x:{sign}.{digits}f}"


def number(metric: str, x: float, signed: bool = False, ref: float | None = None) -> str:
    """One number of ``metric`` as every sentence of the report writes it (a fraction as
    percent digits without the sign; ``ref`` picks a plain number's decimals)."""
    return _num(metric, x, signed, ref)


def fmt(metric: str, stat: Stat) -> str:
    """``mean ± half-width of the 95% interval`` ("98.91 ± 0.05%"); one seed (or a count all
    seeds agree on) gives the mean alone; ``n/a`` without values."""
    if not stat.values:
        return "n/a"
    mean, half = stat.mean, stat.half
    body = _num(metric, mean)
    if stat.n > 1 and (half > 0 or _kind(metric) != "int"):
        body += f" ± {_num(metric, half, ref=mean)}"
    return body + ("%" if _kind(metric) == "pct" else "")


def fmt_time(metric: str, stat: Stat) -> str:
    """:func:`fmt` of a time; one that runs of a batched group share says so
    ("2.482 (one measurement: 3 runs trained as one batched group, no interval)")."""
    return fmt(metric, stat) + (f" ({seeds_note(stat.n, stat.merged)})" if stat.merged else "")


def seeds_note(n: int, merged: int = 0) -> str:
    """"95% CI, 3 seeds" or "one seed, no interval" (or "no seeds"); with ``merged`` runs
    that shared a batched group's clock: "one measurement: 3 runs trained as one batched
    group, no interval", "95% CI, 2 measurements: 4 runs trained in batched groups"."""
    if n == 0:
        return "no seeds"
    if merged:
        if n == 1:
            return f"one measurement: {n + merged} runs trained as one batched group, no interval"
        return f"95% CI, {n} measurements: {n + merged} runs trained in batched groups"
    return "one seed, no interval" if n == 1 else f"95% CI, {n} seeds"


def quote(metric: str, stat: Stat) -> str:
    """:func:`fmt` with its seed count: "98.91 ± 0.05% (95% CI, 3 seeds)"."""
    return f"{fmt(metric, stat)} ({seeds_note(stat.n, stat.merged)})"


def compare_stats(a: Stat, b: Stat) -> Interval:
    """``a - b`` with its 95% interval: paired by seed where the runs share their data order,
    else Welch (:func:`cnnlab.experiments.report.intervals.difference`)."""
    return difference(a.obs(), b.obs())


#: the marker of a difference between single runs; a section whose every configuration has
#: one seed says so once (:func:`one_seed_note`) and drops the marker from its sentences
ONE_SEED_EACH = "one seed each, no interval"


def untested(a: Stat, b: Stat) -> str | None:
    """Why ``a - b`` has no interval when a side has a single seed ("one seed each, no
    interval", "one seed on one side, no interval"); ``None`` when it has one or when a
    batched group's shared clock is the reason (:func:`diff_text` says that)."""
    if a.merged or b.merged or shared_clock(a, b) or not a.values or not b.values:
        return None
    if a.n == 1 and b.n == 1:
        return ONE_SEED_EACH
    if min(a.n, b.n) == 1:
        return "one seed on one side, no interval"
    return None


def diff_amount(metric: str, a: Stat, b: Stat) -> str:
    """``a - b`` alone, signed, with its unit: "+1.52 percentage points"."""
    unit = " percentage points" if _kind(metric) == "pct" else ""
    ref = max(abs(a.mean), abs(b.mean))
    return _num(metric, a.mean - b.mean, signed=True, ref=ref) + unit


def one_seed_note(name: str | None) -> str:
    """The one sentence a one-seed section carries (instead of a verdict per difference)."""
    how = (f"`cnnlab experiment run {name} --seeds 3` measures them" if name else
           "train every configuration with more seeds for them")
    return (f"One seed per configuration: no number here has a confidence interval and no "
            f"difference is tested, so none is called significant or not; {how}.")


def diff_text(metric: str, a: Stat, b: Stat) -> str:
    """``a - b`` with its interval and how it was computed:
    "+1.52 percentage points (95% CI +0.80 to +2.24, paired by seed, 3 seeds)",
    "... (95% CI -0.30 to +0.54, Welch, 3 and 2 seeds)", "... (one seed, no interval)".
    """
    d = compare_stats(a, b)
    unit = " percentage points" if _kind(metric) == "pct" else ""
    ref = max(abs(a.mean), abs(b.mean))
    amount = _num(metric, d.estimate, signed=True, ref=ref) + unit
    if shared_clock(a, b):
        return f"{amount} (trained in one batched group: one shared clock, no interval)"
    if d.method == "none":
        n = d.n if isinstance(d.n, tuple) else (d.n, d.n)
        why = "one seed" if min(n) == 1 else "no seeds"
        if min(n) == 1 and (a.merged or b.merged):
            why = "one measurement"
        return f"{amount} ({why}, no interval)"
    bounds = (f"95% CI {_num(metric, d.lo, True, ref)} to {_num(metric, d.hi, True, ref)}")
    if d.method == "paired":
        how = f"paired by seed, {d.n} seeds"
    else:
        na, nb = d.n if isinstance(d.n, tuple) else (d.n, d.n)
        how = f"Welch, {na} and {nb} seeds"
    return f"{amount} ({bounds}, {how})"


NOT_DISTINGUISHABLE = "not distinguishable at this budget"


def verdict(metric: str, a: Stat, b: Stat) -> str:
    """"better by this measure" / "worse by this measure" when the interval of ``a - b``
    excludes 0, else :data:`NOT_DISTINGUISHABLE` (never a ranking)."""
    d = compare_stats(a, b)
    if not d.distinguishable or shared_clock(a, b):
        return NOT_DISTINGUISHABLE
    return "better by this measure" if better(metric, a.mean, b.mean) else \
        "worse by this measure"


def better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def _cell(metric: str, stat: Stat) -> str:
    """A table cell: :func:`fmt`, and how many clocks a batched group's time rests on."""
    if not stat.merged:
        return fmt(metric, stat)
    return fmt(metric, stat) + f" ({stat.n} shared clock{'s' if stat.n > 1 else ''})"


def table(groups_: list[Group], metrics: list[str], key: str = "configuration") -> dict:
    """A table (header + rows of strings) of ``metrics`` per group: mean ± 95% CI, seeds."""
    header = [key, "seeds"] + [METRICS.get(m, (m, ""))[0] for m in metrics]
    rows = []
    for g in groups_:
        if g.skipped:
            rows.append([g.label, "0"] + [f"skipped: {g.skipped}"] + [""] * (len(metrics) - 1))
            continue
        rows.append([g.label, str(len(g.runs))] + [_cell(m, g.stat(m)) for m in metrics])
    return {"header": header, "rows": rows}


def best_group(groups_: list[Group], metric: str) -> Group | None:
    """The group with the best mean (no claim that it is distinguishable: see :func:`rank`)."""
    scored = [g for g in groups_ if g.stat(metric).values]
    if not scored:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scored, key=lambda g: g.stat(metric).mean)


@dataclass
class Ranking:
    """Groups by their mean of one metric, best first, and what the intervals allow to say.

    ``best`` is set only when the top mean is distinguishable from the runner-up's (and so
    from every other: a noisier group further down may still overlap it);
    ``ties`` are the groups not distinguishable from the top one (with the difference),
    ``below`` those distinguishably worse.
    """

    order: list[Group]
    best: Group | None
    ties: list[Group]
    below: list[Group]

    @property
    def top(self) -> Group:
        return self.order[0]


def rank(groups_: list[Group], metric: str) -> Ranking | None:
    """:class:`Ranking` of the groups that have ``metric``; ``None`` when fewer than two."""
    scored = [g for g in groups_ if g.stat(metric).values]
    if len(scored) < 2:
        return None
    order = sorted(scored, key=lambda g: g.stat(metric).mean,
                   reverse=metric not in LOWER_IS_BETTER)
    top = order[0].stat(metric)
    ties, below = [], []
    for g in order[1:]:
        other = g.stat(metric)
        apart = compare_stats(top, other).distinguishable and not shared_clock(top, other)
        (below if apart else ties).append(g)
    return Ranking(order, None if ties else order[0], ties, below)


@dataclass
class Findings:
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, dict]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    #: figure files a measurement wrote, relative to the recipe folder (embedded by the report)
    figures: list[str] = field(default_factory=list)
    #: answer paragraphs: (sub-question, the answer in words), one per sub-question
    answers: list[tuple[str, str]] = field(default_factory=list)

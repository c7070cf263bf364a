"""The wording of answers: a claim two groups' numbers support, the best of several, the
mechanism sentence, a paragraph (:mod:`cnnlab.experiments.report.answers` writes one per
sub-question).

Each paragraph states the claim the measurements support, with its interval and seed count,
and the mechanism in one sentence. The claim is decided by the numbers
(:func:`contrast`, :func:`best`): a difference whose 95% interval excludes 0 is stated as a
difference ("higher", "lower"); one whose interval contains 0 is "not distinguishable at this
budget"; a difference with one seed on a side is given as the numbers of single runs, without
a verdict (the section says once how to get intervals:
:func:`cnnlab.experiments.report.stats.one_seed_note`). The mechanism sentence is picked by the
direction the numbers show, and is hedged ("if more seeds confirm it") when they are untested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnlab.experiments.report.stats import (
    LOWER_IS_BETTER,
    METRICS,
    NOT_DISTINGUISHABLE,
    Findings,
    Group,
    Stat,
    compare_stats,
    diff_amount,
    fmt,
    number,
    rank,
    seeds_note,
    shared_clock,
    untested,
)


@dataclass(frozen=True)
class Claim:
    """What two groups' numbers support: ``direction`` is ``higher``/``lower`` (``a`` vs
    ``b``, by the interval), ``same`` (the interval contains 0), ``untested`` (one seed on a
    side: ``observed`` then holds the direction of the single runs) or ``missing``."""

    direction: str
    text: str
    observed: str = ""


def _ci(d: Any, metric: str, a: Any, b: Any) -> str:
    ref = max(abs(a.mean), abs(b.mean))
    how = (f"paired by seed, {d.n} seeds" if d.method == "paired" else
           f"Welch, {d.n[0]} and {d.n[1]} seeds" if isinstance(d.n, tuple) else
           f"Welch, {d.n} seeds")
    return f"95% CI {number(metric, d.lo, True, ref)} to {number(metric, d.hi, True, ref)}, {how}"


def contrast(metric: str, a: Group, b: Group) -> Claim:
    """``a`` against ``b`` by ``metric``, in words, as far as the seeds allow."""
    return contrast_stats(metric, a.label, a.stat(metric), b.label, b.stat(metric))


def contrast_stats(metric: str, la: str, sa: Stat, lb: str, sb: Stat) -> Claim:
    """:func:`contrast` of two :class:`~.stats.Stat` labelled ``la``, ``lb``."""
    name = METRICS.get(metric, (metric, ""))[0]
    if not sa.values or not sb.values:
        return Claim("missing", f"{la if not sa.values else lb} has no {name}")
    amount = diff_amount(metric, sa, sb)
    sign = "higher" if sa.mean > sb.mean else "lower" if sa.mean < sb.mean else "same"
    d = compare_stats(sa, sb)
    if (why := untested(sa, sb)) is not None or shared_clock(sa, sb) or d.method == "none":
        return Claim("untested", f"{la} reached {name} {fmt(metric, sa)} and {lb} "
                                 f"{fmt(metric, sb)}, {amount} ({why or 'no interval'})", sign)
    ci = _ci(d, metric, sa, sb)
    if not d.distinguishable:
        return Claim("same", f"{la} and {lb} are {NOT_DISTINGUISHABLE} by {name}: "
                             f"{fmt(metric, sa)} vs {fmt(metric, sb)}, {amount} ({ci}, which "
                             f"contains 0)", sign)
    return Claim(sign, f"{la} reached a {sign} {name} than {lb}: {fmt(metric, sa)} "
                       f"vs {fmt(metric, sb)}, {amount} ({ci})", sign)


def best(groups: list[Group], metric: str, what: str) -> tuple[Group | None, str]:
    """The group the intervals single out as best by ``metric`` (else ``None``), in words."""
    name = METRICS.get(metric, (metric, ""))[0]
    rk = rank(groups, metric)
    if rk is None:
        return None, f"fewer than two {what}s have {name}"
    word = "lowest" if metric in LOWER_IS_BETTER else "highest"
    top = rk.top
    st = top.stat(metric)
    if all(g.stat(metric).n == 1 for g in rk.order):
        return None, (f"by {name} on one seed each, {top.label} came first with "
                      f"{fmt(metric, st)}, then " + ", ".join(
                          f"{g.label} {fmt(metric, g.stat(metric))}" for g in rk.order[1:])
                      + " (single runs, not a ranking)")
    if rk.best is not None:
        runner = rk.order[1]
        return top, (f"{top.label} had the {word} {name}, {fmt(metric, st)} "
                     f"({seeds_note(st.n)}), distinguishably ahead of every other {what} "
                     f"(the runner-up, {runner.label}: {fmt(metric, runner.stat(metric))})")
    ties = ", ".join(g.label for g in rk.ties)
    return None, (f"no {what} is distinguishably best by {name}: {top.label} had the {word} "
                  f"mean, {fmt(metric, st)} ({seeds_note(st.n)}), but {ties} "
                  f"{'is' if len(rk.ties) == 1 else 'are'} not distinguishable from it")


def because(claim: Claim, why: dict[str, str]) -> str:
    """The mechanism sentence for the direction the numbers show (``why`` keyed by
    ``higher``/``lower``/``same``); hedged when the difference is untested."""
    if claim.direction in why:
        return why[claim.direction]
    if claim.direction == "untested" and claim.observed in why and claim.observed != "same":
        text = why[claim.observed]
        return f"If more seeds confirm the gap, the reason is this: {text[0].lower()}{text[1:]}"
    return ""


def paragraph(*parts: str) -> str:
    """Sentences joined, each capitalized and ending in a period; empty parts dropped."""
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        p = p[0].upper() + p[1:]
        out.append(p if p.endswith((".", "?", "!")) else p + ".")
    return " ".join(out)


Writer = Callable[[dict[str, Any], Findings], list[tuple[str, str]]]


def writer(table: dict[str, Writer], *names: str) -> Callable[[Writer], Writer]:
    """Register the decorated answer writer in ``table`` for the recipes ``names``."""
    def register(fn: Writer) -> Writer:
        for n in names:
            table[n] = fn
        return fn
    return register


def group_named(f: Findings, label: str) -> Group | None:
    """The group labelled ``label`` that has runs, else ``None``."""
    return next((g for g in f.groups if g.label == label and g.runs), None)


def group_starting(f: Findings, prefix: str) -> Group | None:
    """The first group whose label starts with ``prefix`` and that has runs."""
    return next((g for g in f.groups if g.label.startswith(prefix) and g.runs), None)


def claim_of(metric: str, a: Group | None, b: Group | None) -> Claim | None:
    """:func:`contrast` when both groups ran, else ``None``."""
    return None if a is None or b is None else contrast(metric, a, b)


def pair_answer(q: str, f: Findings, a: str, b: str, why: dict[str, str] | str,
                metric: str = "test_acc", also: tuple[str, ...] = (), lead: str = "",
                tail: str = "") -> list[tuple[str, str]]:
    """The answer to ``q`` that compares variant ``a`` with ``b`` by ``metric`` (none when
    either did not run): ``lead`` + the claim, the claims of the ``also`` metrics, the
    mechanism (``why``: by direction as in :func:`because`, or one sentence that holds
    whatever the direction), then ``tail``."""
    ga, gb = group_named(f, a), group_named(f, b)
    c = claim_of(metric, ga, gb)
    if c is None:
        return []
    reason = why if isinstance(why, str) else because(c, why)
    return [(q, paragraph(lead + c.text, *texts(*(claim_of(m, ga, gb) for m in also)),
                          reason, tail))]


def texts(*claims: Claim | None) -> list[str]:
    """The texts of the claims that exist."""
    return [c.text for c in claims if c is not None]


def sweep_answer(q: str, f: Findings, what: str, baseline: str, why: str,
                 metrics: tuple[str, ...] = ("test_acc", "ratio")) -> list[tuple[str, str]]:
    """A sweep's answer: the best value by each metric (when the intervals single it out)
    against ``baseline``, then the mechanism ``why``."""
    ran = [g for g in f.groups if g.runs]
    if len(ran) < 2:
        return []
    parts = []
    ref = group_named(f, baseline)
    for m in metrics:
        top, text = best(ran, m, what)
        parts.append(text)
        if top is not None and ref is not None and top is not ref:
            parts.append(f"against {baseline}: {contrast(m, top, ref).text}")
    return [(q, paragraph(*parts, why))]

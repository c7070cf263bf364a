"""HUJI 3's findings from an Optuna search: the accuracy–parameters frontier and the winners.

Input is the ``searches`` list of an ``experiment.json`` written by
:mod:`cnnlab.experiments.search.optuna_search`: per family every trial (its point, the analyzer's
parameter count, the mean validation accuracy over the search seeds), the winner, and the
winner's retraining on new seeds (validation 0, so their ``test_acc`` is test accuracy).

* :func:`findings`: the probe table (every trial, Pareto-optimal ones marked), the winner's
  sentence with its test accuracy (mean ± 95% interval over the new seeds), its parameter count
  layer by layer, and HUJI 3.3's comparison of the two winners' time to the target;
* :func:`pareto`: the trials no other trial beats on both parameters and accuracy;
* :func:`figure`: every probe as a point (parameters, log scale, against mean validation
  accuracy), the Pareto fronts drawn, the target line and the winners' test accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.experiments.report.stats import (
    Findings,
    Group,
    Stat,
    crossing,
    diff_text,
    fmt,
    fmt_time,
    groups,
)


def _complete(search: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in search.get("trials", []) if t.get("state") == "complete"]


def pareto(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials on the front (fewer parameters and higher accuracy are better), by
    parameters: each is more accurate than every trial with as few parameters or fewer."""
    front: list[dict[str, Any]] = []
    for t in sorted(trials, key=lambda t: (t["param_count"], -t["mean_val_acc"])):
        if not front or t["mean_val_acc"] > front[-1]["mean_val_acc"]:
            front.append(t)
    return front


def _describe(point: dict[str, Any]) -> str:
    opts = point.get("model_opts", "")
    lr = point.get("overlay", {}).get("lr")
    return opts + (f", lr={lr:.4g}" if lr is not None else "")


def _probe_table(s: dict[str, Any]) -> dict[str, Any]:
    trials = _complete(s)
    on_front = {t["number"] for t in pareto(trials)}
    rows = []
    for t in sorted(trials, key=lambda t: (t["param_count"], -t["mean_val_acc"])):
        accs = t.get("val_accs") or []
        rows.append([str(t["number"]), f"{t['param_count']:,}", _describe(t),
                     fmt("test_acc", Stat(accs)) if accs else f"{100 * t['mean_val_acc']:.2f}%",
                     str(len(accs)) if accs else "?",
                     "yes" if t["feasible"] else "no", "yes" if t["number"] in on_front else ""])
    return {"header": ["trial", "params", "point", "validation acc", "seeds", "meets target",
                       "Pareto"], "rows": rows}


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _final_group(s: dict[str, Any], root: Path) -> Group | None:
    runs = [r for r in s.get("final", []) if r.get("result")]
    if not runs:
        return None
    g = groups(runs, root)[0]
    g.label = f"{s['label']} winner"
    return g


def _search_cpu_s(s: dict[str, Any], root: Path) -> tuple[float, int]:
    probes = [r for r in s.get("trace", []) if r.get("kind") == "search"]
    runs = [r for g in groups(probes, root) for r in g.runs]
    return sum(r.get("cpu_s") or 0.0 for r in runs), len(runs)


def findings(doc: dict[str, Any], root: Path,
             param_steps: Callable[[str, str], dict[str, Any]]) -> Findings:
    """Sentences, tables, parameter steps and the winners' groups of the Optuna searches;
    ``param_steps(model, model_opts)`` is :func:`cnnlab.experiments.report.findings.param_steps`
    (passed in: that module calls this one)."""
    f = Findings()
    winners: list[tuple[dict[str, Any], Group]] = []
    for s in doc.get("searches", []):
        if s.get("kind") != "optuna":
            continue
        target = 100 * s["target"]
        f.tables.append((f"{s['label']}: every probe (mean validation accuracy over seeds "
                         f"{', '.join(map(str, s['seeds']))}; target {target:g}%)",
                         _probe_table(s)))
        cpu, n_runs = _search_cpu_s(s, root)
        budget = s.get("budget", {})
        n = len(_complete(s))
        f.sentences.append(
            f"The {s['label']} search ({s.get('sampler', 'optuna')}) trained {n} points "
            f"of its family with {s['validation']:,} training examples held out for "
            f"validation, {budget.get('iterations', '?')} steps of batch "
            f"{budget.get('batch_size', '?')} each, on the first seed and, for the points "
            f"that could still win, on all {_seeds(len(s['seeds']))} "
            f"({n_runs} runs, {cpu:,.0f} CPU-seconds).")
        w = s.get("winner")
        if w is None:
            f.sentences.append(f"No {s['label']} point reached a mean validation accuracy of "
                               f"{target:g}% within that budget.")
            continue
        smaller = [t for t in _complete(s) if t["param_count"] < w["param_count"]]
        f.sentences.append(
            f"The fewest parameters meeting {target:g}% on validation: trial {w['number']}, "
            f"{s.get('model')} with {_describe(w)}: {w['param_count']:,} parameters (counted "
            f"by the analyzer), mean validation accuracy {100 * w['mean_val_acc']:.2f}%"
            + (f"; the {len(smaller)} smaller points tried all stayed below "
               f"(best {100 * max(t['mean_val_acc'] for t in smaller):.2f}%)." if smaller
               else "."))
        g = _final_group(s, root)
        if g is not None:
            acc = g.stat("test_acc")
            lo, hi = (min(acc.values), max(acc.values)) if acc.values else (0.0, 0.0)
            f.sentences.append(
                f"Retrained from scratch on new seeds {', '.join(map(str, s['final_seeds']))} "
                f"with the full training set, its test accuracy is {fmt('test_acc', acc)} "
                f"(mean ± 95% interval over {_seeds(acc.n)}; lowest {100 * lo:.2f}%, highest "
                f"{100 * hi:.2f}%): it {'meets' if acc.mean >= s['target'] else 'misses'} "
                f"the {target:g}% target on test.")
            winners.append((s, g))
            f.groups.append(g)
        mopts = w.get("model_opts", "")
        steps = param_steps(s.get("model") or "", mopts)
        steps["label"] = f"{s['label']} winner"
        f.params.append(steps)
    if len(winners) == 2:
        f.sentences += _speed(winners)
    return f


def _speed(winners: list[tuple[dict[str, Any], Group]]) -> list[str]:
    """HUJI 3.3: the winners' iterations and training seconds to the target on test."""
    (sa, a), (sb, b) = winners
    thr = sa["target"]
    (ia, ta, na), (ib, tb, nb) = crossing(a, thr), crossing(b, thr)
    out = []
    for g, its, secs, hit in ((a, ia, ta, na), (b, ib, tb, nb)):
        if not hit:
            out.append(f"{g.label} did not reach {100 * thr:g}% test accuracy on any seed.")
            continue
        reach = "" if hit == len(g.runs) else f" ({hit} of {len(g.runs)} seeds reached it)"
        out.append(f"{g.label} first reached {100 * thr:g}% test accuracy at iteration "
                   f"{fmt('iterations', its)} after {fmt_time('train_time', secs)} s of training "
                   f"({fmt_time('step_ms', g.stat('step_ms'))} ms per step){reach}.")
    if ia.values and ib.values:
        out.append(f"Iterations to {100 * thr:g}%, {a.label} minus {b.label}: "
                   f"{diff_text('iteration_to_target', ia, ib)}; seconds: "
                   f"{diff_text('time_to_target', ta, tb)}.")
    return out


def figure(doc: dict[str, Any], root: Path | None = None) -> Any | None:
    """The accuracy–parameters frontier of every Optuna search in ``doc``; ``None`` if none."""
    from cnnlab.common.plotting import pyplot

    searches = [s for s in doc.get("searches", []) if s.get("kind") == "optuna"
                and _complete(s)]
    if not searches:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    target = searches[0]["target"]
    for i, s in enumerate(searches):
        trials, color = _complete(s), f"C{i % 10}"
        ax.scatter([t["param_count"] for t in trials], [t["mean_val_acc"] for t in trials],
                   s=14, color=color, alpha=0.6, label=f"{s['label']}: probes (validation)")
        front = pareto(trials)
        ax.step([t["param_count"] for t in front], [t["mean_val_acc"] for t in front],
                where="post", color=color, lw=1.2, label=f"{s['label']}: Pareto front")
        g = _final_group(s, root) if root is not None else None
        if g is not None and s.get("winner"):
            acc = g.stat("test_acc")
            ax.errorbar([s["winner"]["param_count"]], [acc.mean],
                        yerr=[[max(0.0, acc.mean - min(acc.values))],
                              [max(0.0, max(acc.values) - acc.mean)]],
                        fmt="*", ms=11, color=color, mec="black",
                        label=f"{s['label']} winner: test, new seeds (min..max)")
    ax.axhline(target, color="gray", ls="--", lw=1, label=f"target {100 * target:g}%")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (analyzer)")
    ax.set_ylabel("mean accuracy")
    lo = min(t["mean_val_acc"] for s in searches for t in _complete(s))
    ax.set_ylim(max(lo - 0.01, target - 0.15), 1.0)
    ax.set_title("accuracy vs parameters: every probe, Pareto fronts", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig

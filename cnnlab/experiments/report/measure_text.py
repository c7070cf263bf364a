"""Findings of the ``[measure]`` kinds: sentences and tables written from the stored numbers.

One function per kind of :mod:`cnnlab.experiments.measure`, each reading the ``result`` of the
``"measure"`` entry of an ``experiment.json`` (so a report needs no torch run) and appending
to a :class:`~.stats.Findings`. As in :mod:`.findings`,
every comparison ("equal", "cheaper", "higher at 7 of 9 scales") is decided by the numbers.
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.experiments.report.stats import Findings


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def gamma_text(g: float | None) -> str:
    if g is None:
        return "n/a"
    return "1/sqrt2" if abs(g - 2 ** -0.5) < 1e-9 else f"{g:g}"


def num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) < 1e-2 and v != 0 else f"{v:.{digits}f}"


def _figures(res: dict[str, Any], f: Findings) -> None:
    """The measurement's figures (paths relative to the recipe folder): the report embeds
    them (:func:`cnnlab.experiments.report.page.section`)."""
    # the PNG of each figure (its SVG twin is for print tools, not the page)
    f.figures += [p for p in res.get("figures") or [] if isinstance(p, str)
                  and p.lower().endswith(".png")]


# ------------------------------------------------------------------------ video_macs


def video_macs(res: dict[str, Any], f: Findings) -> None:
    """Problem 1: analyzer vs formula vs hooks per conv of video3d."""
    rows = res.get("layers", [])
    shape = "x".join(map(str, res.get("input", [])))
    f.tables.append((
        f"Problem 1: multiplications per conv of {res.get('model')} (input {shape}, "
        f"batch {res.get('batch')})",
        {"header": ["layer", "output X·Y·T", "kernel ΔX·ΔY·ΔT", "N_in -> N_out", "analyzer",
                    "formula", "hooks"],
         "rows": [[r["layer"], "·".join(map(str, r["output_XYT"])),
                   "·".join(map(str, r["kernel_XYT"])), f"{r['n_in']} -> {r['n_out']}",
                   f"{r['analyzer']:,}", f"{r['formula']:,}", f"{r['hooks']:,}"]
                  for r in rows]}))
    bad = [r["layer"] for r in rows if not r["analyzer"] == r["formula"] == r["hooks"]]
    conv = sum(r["analyzer"] or 0 for r in rows)
    if rows and not bad:
        f.sentences.append(
            f"For all {len(rows)} convolutions of {res.get('model')} the analyzer's count, "
            f"Problem 1's formula B·X·Y·T·ΔX·ΔY·ΔT·N_out·N_in (X, Y, T of the output) and the "
            f"forward-hook count agree: {conv:,} multiplications per clip in the convolutions,"
            f" {res.get('total_macs', 0):,} with the fc layer ({res.get('params', 0):,} "
            f"parameters).")
    elif bad:
        f.sentences.append(f"Analyzer, formula and hooks disagree at {', '.join(bad)} "
                           "(see the table).")
    _figures(res, f)


# ------------------------------------------------------------------------ bottleneck


def _macs(res: dict[str, Any], f: Findings) -> None:
    rows = res.get("macs", [])
    if not rows:
        return
    r0 = rows[0]
    n, depth = r0["width"], r0["depth"]
    f.tables.append((f"Problem 3(a): multiplications of the L-1 matrices, L={depth}, N={n}", {
        "header": ["N_bottle", "2·N·Nb·(L-1)", "analyzer", "hooks", "plain N²(L-1)",
                   "plain analyzer = hooks", "bottleneck cheaper?"],
        "rows": [[r["bottleneck"], f"{r['formula_bottleneck']:,}",
                  f"{r['analyzer_bottleneck']:,}", f"{r['hook_bottleneck']:,}",
                  f"{r['formula_plain']:,}",
                  "yes" if r["analyzer_plain"] == r["hook_plain"] == r["formula_plain"]
                  else f"no ({r['analyzer_plain']:,} / {r['hook_plain']:,})",
                  "yes" if r["cheaper"] else "no"] for r in rows]}))
    exact = all(r["formula_bottleneck"] == r["analyzer_bottleneck"] == r["hook_bottleneck"]
                for r in rows)
    rule = all(r["cheaper"] == (r["bottleneck"] < n / 2) for r in rows)
    tried = ", ".join(str(r["bottleneck"]) for r in rows)
    f.sentences.append(
        f"(a) For N_bottle = {tried}, the analyzer and the forward hooks "
        + ("count exactly" if exact else "do not always match")
        + " the sheet's 2·N·N_bottle·(L-1); the bottleneck stack is cheaper than the plain "
        + (f"N²(L-1) exactly when N_bottle < N/2 = {n // 2}" if rule else
           "MLP, but not exactly when N_bottle < N/2")
        + f". A gamma != 1 adds {r0['gamma_multiplies']:,} multiplies ({n} per block), "
          "which the formula leaves out.")


def _init(res: dict[str, Any], f: Findings) -> None:
    rows = res.get("init", [])
    if not rows:
        return
    depth = len(rows[0]["var"])
    picks = sorted({2, max(depth // 2, 1), depth})
    f.tables.append((f"Problem 3(b): variance at initialization, L_1 ~ N(0,1), {depth} layers", {
        "header": ["gamma", "branch"] + [f"Var L_{i}" for i in picks]
                  + ["mean Lh_1", "Var Lh_1"],
        "rows": [[gamma_text(s["gamma"]), s["branch"]]
                 + [num(s["var"][i - 1]) for i in picks]
                 + [num(s["branch_mean"][0] if s["branch_mean"] else None),
                    num(s["branch_var"][0] if s["branch_var"] else None)] for s in rows]}))
    for s in rows:
        v = [x for x in s["var"] if x is not None]
        what = ("an independent N(0,1) branch (the sheet's assumption)"
                if s["branch"] == "synthetic" else "the real ReLU branch at default init")
        f.sentences.append(
            f"(b) gamma = {gamma_text(s['gamma'])} with {what}: Var L_l ran from "
            f"{num(min(v))} to {num(max(v))} over L_1..L_{depth} (Var L_{depth} = "
            f"{num(s['var'][-1])}).")
    relu = next((s for s in rows if s["branch"] == "relu" and s["branch_mean"]), None)
    if relu:
        f.sentences.append(
            f"The real branch breaks the assumption: its first-block output has mean "
            f"{num(relu['branch_mean'][0])} and variance {num(relu['branch_var'][0])} "
            f"(the sheet assumes 0 and 1).")


def _grad(res: dict[str, Any], f: Findings) -> None:
    rows = res.get("grad_depth", [])
    if not rows:
        return
    top = rows[0]["depths"][-1]
    f.tables.append((f"Problem 3(c): bottom-block gradient vs depth L = "
                     f"{rows[0]['depths'][0]}..{top}", {
                         "header": ["gamma", "setting", "fitted slope", "log gamma",
                                    f"ratio at L={top}", f"gamma^{top - 2}"],
                         "rows": [[gamma_text(r["gamma"]), r["mode"], f"{r['slope']:.4f}",
                                   f"{r['log_gamma']:.4f}", num(r["ratios"][-1]),
                                   num(r["gamma"] ** (top - 2))] for r in rows]}))
    lin = [r for r in rows if r["mode"] == "linear"]
    if lin:
        worst = max(abs(r["slope"] - r["log_gamma"]) for r in lin)
        f.sentences.append(f"(c) With only the direct path (blocks above the bottom one "
                           f"output 0) the fitted slope of log gradient norm against L equals "
                           f"log gamma to {worst:.1e}: the ratio is gamma^(L-2).")
    for r in rows:
        if r["mode"] == "init":
            f.sentences.append(f"At default init, gamma = {gamma_text(r['gamma'])}: slope "
                               f"{r['slope']:.4f} against log gamma {r['log_gamma']:.4f}.")


def _probes(res: dict[str, Any], f: Findings) -> None:
    rows = res.get("train", [])
    if not rows:
        return
    f.tables.append(("Problem 3(c) in training: first/last block, mean over probed steps", {
        "header": ["run", "test acc (run)", "test acc (probe replay)", "first/last grad",
                   "first/last update", "first-block grad at step 0"],
        "rows": [[r["label"], pct(r["run_test_acc"]), pct(r["test_acc"]), num(r["grad_ratio"]),
                  num(r["update_ratio"]), num(r["first_grad"][0] if r["first_grad"] else None)]
                 for r in rows]}))
    diffs = [abs(r["test_acc"] - r["run_test_acc"]) for r in rows
             if r["test_acc"] is not None and r["run_test_acc"] is not None]
    every = rows[0]["steps"][1] - rows[0]["steps"][0] if len(rows[0]["steps"]) > 1 else 1
    same = sum(d == 0 for d in diffs)
    f.sentences.append(
        f"Each of the {len(rows)} runs was replayed through the trainer's engine with its "
        f"saved config, watching the first and last residual block "
        f"{'every step' if every == 1 else f'every {every} steps'}; the "
        f"replay reproduced the run's test accuracy exactly in {same} of {len(diffs)} runs"
        + (f" (largest difference {100 * max(diffs):.2f} points)." if diffs and max(diffs)
           else "."))
    scored = [r for r in rows if r["update_ratio"] is not None]
    if not scored:
        return
    low = min(scored, key=lambda r: r["update_ratio"])
    ref = next((r for r in scored if r["gamma"] == 1.0 and r["depth"] == low["depth"]
                and r["optimizer"] == low["optimizer"]), None)
    tail = ""
    if ref is not None and ref is not low and low["first_grad"] and ref["first_grad"]:
        tail = (f"; its first block's gradient at step 0 was {num(low['first_grad'][0])} "
                f"against {num(ref['first_grad'][0])} for gamma = 1 ({ref['label']})")
    f.sentences.append(
        f"Smallest first/last update ratio: {low['label']} ({num(low['update_ratio'])}, test "
        f"accuracy {pct(low['run_test_acc'])}){tail}.")


def bottleneck(res: dict[str, Any], f: Findings) -> None:
    """Problem 3 (a)-(c): counts, variance, gradient vs depth, probes in training."""
    _macs(res, f)
    _init(res, f)
    _grad(res, f)
    _probes(res, f)
    _figures(res, f)


# ------------------------------------------------------------------------ pyramid_scales


def _mean(v: list[float]) -> float | None:
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def pyramid_scales(res: dict[str, Any], f: Findings) -> None:
    """Problem 4: accuracy per single test scale, seen vs unseen scales, pairwise."""
    scales, models = res.get("scales", []), res.get("models", {})
    if not models:
        return
    lo, hi = res.get("train_scales", [0.5, 1.0])
    f.tables.append((f"Problem 4: test accuracy per single scale ({res.get('test_size'):,} "
                     f"digits each; training scales {lo:g}-{hi:g})", {
                         "header": ["model", "params"] + [f"{s:g}" for s in scales],
                         "rows": [[label, f"{m['params']:,}"]
                                  + [pct(a) for a in m["acc_per_scale"]]
                                  for label, m in models.items()]}))
    for label, m in models.items():
        acc = dict(zip(scales, m["acc_per_scale"], strict=True))
        seen = _mean([a for s, a in acc.items() if lo <= s <= hi])
        unseen = _mean([a for s, a in acc.items() if s > hi])
        drop = ""
        if hi in acc and scales and scales[-1] > hi and acc[hi] is not None \
                and acc[scales[-1]] is not None:
            drop = (f"; from scale {hi:g} to {scales[-1]:g} it lost "
                    f"{100 * (acc[hi] - acc[scales[-1]]):.1f} points")
        f.sentences.append(f"{label} ({m['params']:,} parameters): mean accuracy "
                           f"{pct(seen)} on the training scales, {pct(unseen)} on the "
                           f"unseen scales above {hi:g}{drop}.")
    labels = list(models)
    for label in labels[1:]:
        ref = next((r for r in labels if r != label and
                    models[r]["normalize"] == models[label]["normalize"]), None)
        if ref is None or labels.index(ref) > labels.index(label):
            continue
        a, b = models[ref], models[label]
        pairs = [(x, y) for x, y in zip(a["acc_per_scale"], b["acc_per_scale"], strict=True)
                 if x is not None and y is not None]
        above = sum(x > y for x, y in pairs)
        ratio = b["params"] / a["params"] if a["params"] else math.nan
        f.sentences.append(f"{ref} was more accurate than {label} at {above} of {len(pairs)} "
                           f"test scales; {label} has {ratio:.3f} of its parameters.")
    _figures(res, f)


DESCRIBE = {"video_macs": video_macs, "bottleneck": bottleneck, "pyramid_scales": pyramid_scales}


def describe(doc: dict[str, Any], f: Findings) -> None:
    """Add the sentences, tables and figures of a ``"measure"`` entry of an
    ``experiment.json`` to ``f`` (by its ``kind``, :data:`DESCRIBE`)."""
    kind = doc.get("kind")
    if kind not in DESCRIBE:
        f.sentences.append(f"Unknown measurement kind {kind!r}: nothing to report.")
        return
    DESCRIBE[kind](doc.get("result") or {}, f)

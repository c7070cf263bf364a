"""Answers in words to the HUJI assignment's practical questions 1-5 (one writer per
recipe, registered in :data:`WRITERS`; :mod:`.answers` dispatches)."""

from __future__ import annotations

from typing import Any

from cnnlab.experiments.report.stats import Findings, crossing, fmt
from cnnlab.experiments.report.wording import (
    Writer,
    because,
    claim_of,
    contrast,
    contrast_stats,
    group_named,
    group_starting,
    pair_answer,
    paragraph,
    sweep_answer,
    texts,
    writer,
)

WRITERS: dict[str, Writer] = {}


@writer(WRITERS, "huji_q1")
def _huji_q1(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = []
    if f.params:
        ps = f.params[0]
        out.append(("1.1", paragraph(
            f"The network has {ps['total']:,} free parameters, counted layer by layer above",
            "each convolution has k·k·C_in·C_out weights and one bias per filter, each fully "
            "connected layer inputs·outputs weights and one bias per output; ReLU and pooling "
            "have none (`cnnlab analyze baseline` prints the same steps)")))
    g = f.groups[0] if f.groups and f.groups[0].runs else None
    if g is not None:
        c = contrast_stats("train_acc", "train accuracy", g.stat("train_acc"),
                           "test accuracy", g.stat("test_acc"))
        out.append(("1.2", paragraph(
            f"After {fmt('iterations', g.stat('iterations'))} iterations, {c.text}",
            because(c, {
                "higher": "train accuracy is measured on examples the weights were fitted to, "
                          "so it runs above test accuracy; the gap is the overfitting at this "
                          "budget",
                "same": "the network has not yet fitted its training examples better than "
                        "unseen ones: at this budget it does not overfit",
                "lower": "train accuracy is measured on a sample of the training examples, "
                         "so a test accuracy above it at this budget is that sample's "
                         "noise, not the network doing better on unseen digits"}),
            "the plot above draws both curves at every evaluation")))
    return out


@writer(WRITERS, "huji_q2")
def _huji_q2(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = [("2.1", _nonlinear_layers("baseline", "linear"))]
    lin, base = group_named(f, "linear"), group_named(f, "non-linear (baseline)")
    test, train = claim_of("test_acc", lin, base), claim_of("train_acc", lin, base)
    if test is not None:
        why = {"lower": "without ReLU and max-pooling the network is one affine map of the "
                        "pixels (a composition of linear maps is linear), so it separates the "
                        "digits by hyperplanes only, like a multinomial logistic regression, "
                        "however many layers it has",
               "same": "at this budget the non-linear network has not yet used the extra "
                       "expressiveness its ReLUs and max-pooling give it",
               "higher": "a linear map trains fast at first (a convex problem in the end "
                         "layer), and the non-linear network had not caught up at this budget"}
        out.append(("2.2-2.3", paragraph(*texts(test, train), because(test, why))))
    return out


def _nonlinear_layers(model: str, linear: str) -> str:
    """HUJI 2.1 from the analyzer: which layers of ``model`` are non-linear, and what the
    linear network ``linear`` keeps."""
    from cnnlab.models.resolve import analyze
    from cnnlab.models.zoo import resolve

    def layers(name: str) -> tuple[Any, Any]:
        mdef = resolve(name)
        return mdef, analyze(mdef.graph(), input=mdef.input_shape).layers

    mdef, rows = layers(model)
    ldef, _ = layers(linear)
    acts = [r.name for r in rows if r.kind == "act"]
    maxp = [r.name for r in rows if r.kind == "pool" and r.desc.startswith("maxpool")]
    affine = [r.name for r in rows if r.kind in ("conv", "linear")]
    return paragraph(
        f"Non-linear in `{mdef.spec}`: {', '.join(acts)} (ReLU, max(0, x)) and "
        f"{', '.join(maxp)} (the maximum of each window); {', '.join(affine)} are affine "
        f"(a weighted sum plus a bias)",
        f"The linear network drops the ReLUs and replaces max-pooling by average pooling with "
        f"the same uniform stride, a linear map: `{ldef.spec}` "
        f"(`cnnlab analyze {linear}`); the softmax stays in the loss, as the sheet allows")


@writer(WRITERS, "huji_q3")
def _huji_q3(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = []
    for q, label in (("3.1.1", "shallow"), ("3.2.1", "deep")):
        ps = next((p for p in f.params if str(p.get("label", "")).startswith(label)), None)
        if ps is not None:
            out.append((q, paragraph(
                f"The {label} network found has {ps['total']:,} free parameters "
                f"(`{ps['spec']}`), counted layer by layer above")))
    sh, dp = group_starting(f, "shallow"), group_starting(f, "deep")
    target = min((float(s.get("target", 0.95)) for s in doc.get("searches", [])), default=0.95)
    if sh is None or dp is None:
        missing = " and ".join(n for n, g in (("shallow", sh), ("deep", dp)) if g is None)
        if doc.get("searches"):
            out.append(("3.3", paragraph(
                f"No {missing} network reached {100 * target:g}% in this run's search, so "
                f"there is no time to convergence to compare; `cnnlab experiment run huji_q3` "
                f"(without --quick) searches at the full budget")))
        return out
    its = {}
    for g in (sh, dp):
        stat_its, stat_s, _ = crossing(g, target)
        its[g.label] = (stat_its, stat_s)
    t = contrast_stats("time_to_target", sh.label, its[sh.label][1], dp.label, its[dp.label][1])
    n = contrast_stats("iteration_to_target", sh.label, its[sh.label][0], dp.label,
                       its[dp.label][0])
    ms = contrast("step_ms", sh, dp)
    sa, sb = sh.stat("step_ms"), dp.stat("step_ms")
    split = ""
    if its[sh.label][0].values and its[dp.label][0].values and sa.values and sb.values:
        r_it = its[sh.label][0].mean / its[dp.label][0].mean
        r_ms = sa.mean / sb.mean
        split = (f"time to the target is iterations times time per step: {sh.label} needed "
                 f"{r_it:.2f}x the iterations of {dp.label} at {r_ms:.2f}x its time per step, "
                 f"so the {'iterations' if abs(_log(r_it)) > abs(_log(r_ms)) else 'cost per step'}"
                 f" decided it; a step costs what the network's multiplications cost, and how "
                 f"many steps it needs depends on how easily its features separate the digits")
    out.append(("3.3", paragraph(
        f"Time to {100 * target:g}% test accuracy: {t.text}", n.text, ms.text, split)))
    return out


def _log(x: float) -> float:
    import math

    return math.log(x) if x > 0 else 0.0


@writer(WRITERS, "huji_q4_subset")
def _huji_q4a(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    return pair_answer("4.1 (a)", f, "250 examples", "full set", metric="ratio",
                       also=("test_acc", "train_acc"), why={
            "lower": "with 250 examples the network's 1.1 million parameters can fit the "
                     "training set itself, train accuracy climbs while test accuracy lags, "
                     "and the test/train ratio falls: overfitting",
            "same": "at this budget the 250-example network has not yet fitted its training "
                    "set much better than the test set",
            "higher": "the full-set network is still fitting at this budget, so its train "
                      "accuracy is not yet far above its test accuracy"})


@writer(WRITERS, "huji_q4_size")
def _huji_q4b(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = sweep_answer(
        "4.1 (b)", f, "size", "widths 32x64x1024",
        "a smaller network has fewer parameters with which to memorize the 250 examples, so "
        "up to a point it generalizes better; too small, and it cannot fit the digits at all")
    ref = group_named(f, "widths 32x64x1024")
    sizes = [g for g in f.groups if g.runs and g.stat("param_count").values]
    if out and ref is not None and len(sizes) > 1:
        small = min(sizes, key=lambda g: g.stat("param_count").mean)
        pr, ps = ref.stat("param_count").mean, small.stat("param_count").mean
        q, text = out[0]
        out[0] = (q, text + f" The sizes tried go from {pr:,.0f} parameters ({ref.label}) "
                  f"down to {ps:,.0f} ({small.label}), {pr / ps:,.0f}x fewer.")
    return out


@writer(WRITERS, "huji_q4_dropout")
def _huji_q4c(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    return sweep_answer(
        "4.1 (c)", f, "keep probability", "keep 1.0",
        "dropout zeroes each hidden unit with probability 1 - keep at training time, so no "
        "unit can rely on another to memorize an example; too low a keep probability leaves "
        "too little signal to learn from 250 examples")


@writer(WRITERS, "huji_q5")
def _huji_q5(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    return pair_answer("5.3", f, "two digits, then add (5.2)", "sum directly (5.1)", why={
        "higher": "the two-digit network learns 10 digit classes, each trained by both halves "
                  "of every pair, and the sum is then exact arithmetic, while the direct "
                  "network must learn 19 sums, each the union of up to 10 digit pairs, from "
                  "the same examples",
        "same": "at this budget both networks read the digits about equally well; the "
                "two-digit network's advantage (10 shared digit classes, exact addition) "
                "did not show",
        "lower": "the direct network's 19-way softmax is trained on the quantity scored, "
                 "while the two-digit network is scored on two digit guesses both being "
                 "right"})

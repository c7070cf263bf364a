"""Answers in words to the ETH, problem sheet 3 and TTIC practical questions (one writer per
recipe, registered in :data:`WRITERS`; :mod:`.answers` dispatches)."""

from __future__ import annotations

from typing import Any

from cnnlab.experiments.report.stats import Findings, fmt
from cnnlab.experiments.report.wording import (
    Writer,
    because,
    best,
    claim_of,
    contrast,
    group_named,
    group_starting,
    pair_answer,
    paragraph,
    sweep_answer,
    texts,
    writer,
)

WRITERS: dict[str, Writer] = {}


# ------------------------------------------------------------------------ ETH


@writer(WRITERS, "eth_dropout")
def _eth_dropout(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    low = group_starting(f, "keep 0.5") or group_starting(f, "keep 0.25")
    none = group_named(f, "keep 1.0")
    out = sweep_answer("How did the accuracy change?", f, "keep probability", "keep 1.0",
                        "dropout trains a random sub-network at every step, which regularizes "
                        "but also slows fitting, so at a short budget it can cost accuracy "
                        "as often as it helps", metrics=("test_acc",))
    loss = claim_of("train_loss", low, none)
    if loss is not None:
        out.append(("Did something else change?", paragraph(
            loss.text, claim_of("step_ms", low, none).text, because(loss, {
                "higher": "the dropped units make every training step's prediction noisier, "
                          "so the training loss stays higher and the mini-batch loss curve "
                          "noisier than without dropout",
                "same": "at this budget dropout's extra noise did not raise the training loss "
                        "measurably"}))))
    return out


@writer(WRITERS, "eth_l2")
def _eth_l2(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    ran = [g for g in f.groups if g.runs and g.stat("regularizer").values]
    if len(ran) < 2:
        return []
    lo = min(ran, key=lambda g: g.stat("regularizer").mean)
    hi = max(ran, key=lambda g: g.stat("regularizer").mean)
    reg = contrast("regularizer", lo, hi)
    _, acc = best([g for g in f.groups if g.runs], "test_acc", "lambda")
    return [("What does the regularizer do?", paragraph(reg.text, acc, because(reg, {
        "lower": "the penalty lambda·sum(W²+b²) pulls the fully connected weights toward 0, "
                 "so the sum of squares falls as lambda grows; a lambda too large keeps "
                 "the weights too small to fit the digits"})))]


@writer(WRITERS, "eth_conv2")
def _eth_conv2(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    two, one = group_named(f, "two convs"), group_named(f, "one conv")
    c = claim_of("test_acc", two, one)
    if c is None:
        return []
    return [("Second convolution", paragraph(c.text, claim_of("step_ms", two, one).text,
                                             because(c, {
        "higher": "the second convolution combines the first layer's edge features over a "
                  "larger receptive field (and its pooling shrinks the fully connected layer's "
                  "input), giving features that separate the digits better",
        "same": "at this budget the extra layer's larger receptive field did not yet change "
                "the accuracy measurably"})))]


@writer(WRITERS, "eth_filters", "eth_lr")
def _eth_best(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    what = "filter-size pair" if doc["recipe"].get("name") == "eth_filters" else \
        "learning rate"
    ran = [g for g in f.groups if g.runs]
    if len(ran) < 2:
        return []
    top, text = best(ran, "test_acc", what)
    why = ("a filter size trades receptive field against parameters per layer; with two "
           "stacked convolutions and pooling, every pair tried sees most of a digit"
           if what.startswith("filter") else
           "too small a rate moves the weights too little in the steps given, too large a "
           "rate overshoots and the loss stalls or diverges; the best rate is the largest "
           "that still descends steadily")
    return [(f"Best {what}", paragraph(text, why))]


@writer(WRITERS, "eth_bn")
def _eth_bn(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = []
    bn, plain = group_named(f, "BN True, keep 1.0"), group_named(f, "BN False, keep 1.0")
    c = claim_of("test_acc", bn, plain)
    if c is not None:
        out.append(("Does batch normalization help?", paragraph(
            c.text, claim_of("step_ms", bn, plain).text, because(c, {
                "higher": "batch normalization rescales each convolution's outputs to zero "
                          "mean and unit variance per mini-batch, so the next layer sees "
                          "inputs on a steady scale and the same learning rate makes faster "
                          "progress",
                "same": "with Adam, which already scales each weight's step, the steadier "
                        "activation scale batch normalization gives did not change the "
                        "accuracy measurably at this budget",
                "lower": "at this short budget the per-batch statistics batch normalization "
                         "trains with differ from the running averages used at test time"}))))
    drop, nodrop = group_named(f, "BN True, keep 0.5"), group_named(f, "BN True, keep 1.0")
    d = claim_of("test_acc", drop, nodrop)
    if d is not None:
        out.append(("Is dropout still useful?", paragraph(
            f"With batch normalization: {d.text}", because(d, {
                "higher": "dropout still removes co-adaptation in the fully connected layer, "
                          "which batch normalization in the convolutions does not address",
                "same": "the noise of batch statistics already regularizes, so dropout on top "
                        "adds no measurable benefit here",
                "lower": "the noise of batch statistics already regularizes, and dropout on "
                         "top only slows fitting at this budget"}))))
    return out


# ------------------------------------------------------------------------ problem sheet 3


@writer(WRITERS, "sheet3_precision")
def _sheet3_precision(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    return pair_answer(
        "1(d)", f, "bf16", "fp32", also=("step_ms", "peak_rss_mib"),
        why="half precision stores 2 bytes a number instead of 4, halving the activations' "
            "memory and bandwidth (the analyzer's activation bytes above), but bf16 keeps "
            "8 bits of mantissa against 24, so sums and small updates round; whether it "
            "is faster depends on the hardware having half-precision kernels")


@writer(WRITERS, "sheet3_augment")
def _sheet3_augment(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    none, batch, front = (group_named(f, "no augmentation"), group_named(f, "per mini-batch"),
                          group_named(f, "up front (3 copies)"))
    parts = texts(claim_of("test_acc", batch, none), claim_of("test_acc", front, none),
                  claim_of("data_mib", front, batch))
    if not parts:
        return []
    return [("1(e)", paragraph(
        *parts, "augmenting each mini-batch draws a new random shift and rotation every time "
                "an example is used, so the network never sees the same variant twice and "
                "the training set in memory stays its original size, while augmenting up "
                "front fixes a few copies and multiplies the memory by their number"))]


# ------------------------------------------------------------------------ TTIC


@writer(WRITERS, "ttic_video")
def _ttic_video(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    digit, direction = group_named(f, "class = digit"), group_named(f, "class = direction")
    parts = [f"{g.label}: test accuracy {fmt('test_acc', g.stat('test_acc'))} after "
             f"{fmt('iterations', g.stat('iterations'))} iterations" for g in (digit, direction)
             if g is not None]
    if not parts:
        return []
    return [("Problems 1-2", paragraph(
        *parts, "a 3D convolution slides its ΔX·ΔY·ΔT filter over space and time, so "
                "every output value costs ΔX·ΔY·ΔT·N_in multiplications and a layer "
                "B·X·Y·T·ΔX·ΔY·ΔT·N_in·N_out (the table above checks the formula against "
                "the analyzer and forward hooks); the same network reads the digit from one "
                "frame's shape and the direction from the change between frames"))]


def _bottleneck_ab(res: dict[str, Any]) -> list[tuple[str, str]]:
    """TTIC 3(a) and 3(b) from the ``[measure]`` step's stored numbers."""
    out = []
    rows = res.get("macs") or []
    if rows:
        n = rows[0]["width"]
        exact = all(r["formula_bottleneck"] == r["analyzer_bottleneck"] == r["hook_bottleneck"]
                    for r in rows)
        rule = all(r["cheaper"] == (r["bottleneck"] < n / 2) for r in rows)
        out.append(("3(a)", paragraph(
            "The L - 1 residual blocks multiply N·N_bottle (down) and N_bottle·N (up): "
            "2·N·N_bottle·(L - 1), against N²·(L - 1) for a plain MLP",
            f"the analyzer and forward hooks {'agree with' if exact else 'differ from'} "
            f"the formula for N = {n}, N_bottle = "
            + ", ".join(str(r["bottleneck"]) for r in rows)
            + (f", and the bottleneck is cheaper exactly when N_bottle < N/2 = {n // 2}"
               if rule else "")
            + " (`cnnlab analyze 'res{fc64 relu fc256 relu}*4' --input 256`)")))
    synth = {round(r["gamma"], 6): r for r in res.get("init") or []
             if r.get("branch") == "synthetic" and r.get("var")}
    half, one = synth.get(round(2 ** -0.5, 6)), synth.get(1.0)
    if half is not None and half["var"][-1] is not None:
        depth = len(half["var"])
        tail = (f", against {one['var'][-1]:.4g} with gamma = 1, where the variances of "
                f"independent terms add, one unit per layer" if one is not None
                and one["var"][-1] is not None else "")
        out.append(("3(b)", paragraph(
            "The answer is gamma = 1/sqrt2: with L_l and Lh_l independent, zero mean and unit "
            "variance, Var(gamma(L_l + Lh_l)) = gamma²·(1 + 1) = 1, and the mean stays 0",
            f"measured at initialization over {depth} layers: Var L_{depth} = "
            f"{half['var'][-1]:.4g}{tail}")))
    return out


@writer(WRITERS, "ttic_bottleneck")
def _ttic_bottleneck(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    out = _bottleneck_ab((doc.get("measure") or {}).get("result") or {})
    for opt in ("SGD", "Adam"):
        deep = [g for g in f.groups if g.runs and g.label.startswith(f"{opt}, gamma 1/sqrt2")]
        if not deep:
            continue
        small = max(deep, key=lambda g: int(g.label.rsplit("L=", 1)[-1]))
        ref = group_named(f, small.label.replace("gamma 1/sqrt2", "gamma 1.0"))
        c = claim_of("test_acc", small, ref)
        if c is None:
            continue
        out.append((f"3(c) with {opt}", paragraph(c.text, because(c, {
            "lower": "with gamma < 1 the gradient reaching a lower block is scaled by about "
                     "gamma^(L-l) on the direct path, so plain SGD updates the lower layers "
                     "that much less"
                     + (" (Adam divides each step by the gradient's own scale, which undoes "
                        "most of it)" if opt == "Adam" else ""),
            "same": "at this depth the factor gamma^(L-l) that scales the lower blocks' "
                    "gradients did not cost accuracy measurably"
                    + (": Adam normalizes each weight's step by its gradient's scale"
                       if opt == "Adam" else ""),
            "higher": "gamma < 1 keeps the forward signal's variance at 1, which can help a "
                      "deep stack more than the smaller lower-layer gradients hurt"}))))
    return out


@writer(WRITERS, "ttic_pyramid")
def _ttic_pyramid(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    return pair_answer(
        "4", f, "pyramid", "plain CNN (same budget)",
        lead="Tested on scales 0.5-2 after training on 0.5-1: ", why={
            "higher": "the pyramid applies the same weights at every scale, so a digit twice "
                      "the largest training size reaches, one pyramid level down, the filters "
                      "trained on its half-size version; the plain CNN has never seen it",
            "same": "at this budget the weight sharing across scales did not give the pyramid "
                    "a measurable edge on the larger test digits",
            "lower": "the pyramid spends its parameter budget on shared weights that must "
                     "serve every scale, and at this budget the plain CNN fitted the digits "
                     "better"},
        tail="the per-scale table above shows where each network gains or loses")

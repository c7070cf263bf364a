"""Render an :class:`~cnnlab.analysis.analyze.Analysis` as a terminal table, Markdown, CSV, JSON or
HTML.

Nothing here computes a number: every value comes from the analysis data. Shapes are shown
with the batch axis, channels first (``1x32x24x24``) or, with ``layout="nhwc"``, as the
sheets write them (``1x24x24x32``: batch x height x width x channels).
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from cnnlab.analysis.steps import param_steps
from cnnlab.analysis.units import BYTES

if TYPE_CHECKING:
    from cnnlab.analysis.analyze import Analysis, LayerStats


def shape_of(shape: tuple[int, ...], batch: int, layout: str = "nchw") -> tuple[int, ...]:
    if layout == "nhwc" and len(shape) > 1:
        return (batch, *shape[1:], shape[0])
    return (batch, *shape)


def _x(values: tuple[int, ...] | None) -> str:
    return "-" if values is None else "x".join(map(str, values))


def _int(v: int | None) -> str:
    return "unsupported" if v is None else f"{v:,}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def exact_ratio(num: int, den: int) -> str:
    """``num/den`` as an exact fraction in lowest terms: "1/9,944,428"; one whose numerator is
    not 1 also as "1/x" ("25/251,919,360 = 1/10,076,774.4"); "-" for an empty denominator."""
    if den <= 0 or num <= 0:
        return "-"
    f = Fraction(num, den)
    if f.numerator == 1:
        return f"1/{f.denominator:,}"
    return f"{f.numerator:,}/{f.denominator:,} = 1/{den / num:,.1f}"


def _ratio(num: int, den: int) -> str:
    """A table cell: the exact ratio, without the decimal echo."""
    return exact_ratio(num, den).split(" = ")[0]


def columns(a: Analysis, layout: str = "nchw") -> tuple[list[str], list[list[str]]]:
    show_cmp = any(r.compare is not None for r in a.layers)
    head = ["layer", "type", "output", "RF", "jump", "params", "MACs", "FLOPs", "mem fp32"]
    if show_cmp:
        head += ["local params", "full params", "conv/local", "conv/full"]
    rows = []
    for r in a.layers:
        rf = _x(r.rf) + (" whole" if r.rf_note == "whole input" else "")
        desc = r.desc + (f" (shares {r.shared:,} params with {r.shared_with})"
                         if r.shared else "")
        row = [r.name, desc, _x(shape_of(r.output_shape, a.batch, layout)), rf,
               _x(r.jump), _int(r.params) if r.supported or r.params else "?",
               _int(r.macs), _int(r.flops), human_bytes(r.memory("fp32"))]
        if show_cmp:
            c = r.compare
            row += ["", "", "", ""] if c is None else [
                f"{c.local:,}", f"{c.full:,}", _ratio(c.conv, c.local), _ratio(c.conv, c.full)]
        rows.append(row)
    return head, rows


def total_lines(a: Analysis, layout: str = "nchw") -> list[str]:
    t = a.total
    bound = "" if t.complete else " (lower bound: unsupported ops " + ", ".join(a.unsupported) + ")"
    acts = ", ".join(f"{p} {human_bytes(b)}" for p, b in t.activation_bytes.items())
    return [
        f"input: {_x(shape_of(a.input_shape, a.batch, layout))} "
        f"({_order(a, layout)}), "
        f"batch {a.batch}",
        f"params: {t.params:,} (weights {t.weights:,} + biases {t.biases:,}); "
        f"{human_bytes(t.param_bytes)} in fp32",
        f"MACs (multiplications): {t.macs:,}{bound}",
        f"FLOPs: {t.flops:,}{bound}",
        f"activations: {t.activations:,} values; memory {acts}",
        f"training memory estimate (fp32, Adam: weights+grads+2 states+saved activations): "
        f"{human_bytes(t.train_memory_bytes)}",
        *notes(a),
    ]


def notes(a: Analysis) -> list[str]:
    """One line per unsupported op (its reason), per unknown receptive field that does not
    merely follow an earlier one, per whole-input field and per shared parameter tensor."""
    out = []
    for r in a.layers:
        if not r.supported:
            out.append(f"not modelled: {r.name}: {r.desc.removeprefix('unsupported: ')}")
        elif r.rf is None and r.rf_note and not r.rf_note.startswith("after "):
            out.append(f"RF unknown at {r.name}: {r.rf_note}")
        if r.shared:
            out.append(f"shared parameters: {r.name} reuses {r.shared:,} values of "
                       f"{r.shared_with} (counted once, there)")
    whole = [r.name for r in a.layers if r.rf_note == "whole input"]
    if whole:
        out.append(f"RF whole input (a global op, e.g. an SE gate or group norm, feeds every "
                   f"unit) from {whole[0]} on ({len(whole)} rows)")
    window = [r.name for r in a.layers if r.rf_note == "attention window"]
    if window:
        out.append(f"RF attention window: {', '.join(window[:3])}"
                   + (f" and {len(window) - 3} more" if len(window) > 3 else "")
                   + " (each query sees everything its keys and values read)")
    if a.unused:
        out.append("not used in forward (not counted): " + ", ".join(
            f"{path} ({n:,} values)" for path, n in a.unused))
    return out


def _order(a: Analysis, layout: str) -> str:
    if a.layers and a.layers[0].desc.startswith("input tokens"):
        return "batch x tokens, " + a.layers[0].desc.removeprefix("input tokens ").strip("()")
    return "batch x spatial x channels" if layout == "nhwc" else "batch x channels x spatial"


def table(a: Analysis, layout: str = "nchw") -> str:
    head, rows = columns(a, layout)
    right = {"params", "MACs", "FLOPs", "mem fp32", "local params", "full params"}
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if h in right else c.ljust(w)
                         for c, w, h in zip(cells, widths, head, strict=True)).rstrip()

    rule = "-" * len(fmt(head))
    out = [fmt(head), rule, *(fmt(r) for r in rows), rule, *total_lines(a, layout)]
    return "\n".join(out + compare_lines(a) + step_lines(a))


def compare_lines(a: Analysis) -> list[str]:
    """ETH Problem 2 per compared conv layer: the three parameter counts as formulas in the
    sheet's symbols (m x m x C input, K kernels of p x p, n x n outputs), the numbers put in,
    and the ratios exactly, with biases and weights only. A layer that is not square, grouped
    or bias-free gets the counts and ratios without the formulas."""
    out: list[str] = []
    for r in a.layers:
        c = r.compare
        if c is None:
            continue
        square = (len(c.in_sides) == 2 and len(set(c.in_sides)) == 1 and len(set(c.kernel)) == 1
                  and len(c.out_sides) == 2 and len(set(c.out_sides)) == 1)
        out += ["", f"{r.name} against the layers with less sharing (ETH Problem 2):"]
        if square and c.groups == 1 and c.bias:
            m, p, n, C, K = c.in_sides[0], c.kernel[0], c.out_sides[0], c.channels, c.kernels
            valid = " = m - p + 1 (valid, stride 1)" if n == m - p + 1 else ""
            out += [
                f"  m = {m} (input m x m x C, C = {C}), K = {K} kernels of p x p, p = {p}, "
                f"n = {n}{valid} outputs per side",
                f"  conv:  K(Cp² + 1) = {K}·({C}·{p}² + 1) = {c.conv:,}"
                f" (weights KCp² = {c.conv_weights:,})",
                f"  local: n²K(Cp² + 1) = {n}²·{K}·({C}·{p}² + 1) = {c.local:,}"
                f" (weights n²KCp² = {c.local_weights:,})",
                f"  full:  n²K(Cm² + 1) = {n}²·{K}·({C}·{m}² + 1) = {c.full:,}"
                f" (weights n²KCm² = {c.full_weights:,})",
                f"  conv/local = 1/n² = {exact_ratio(c.conv, c.local)}; weights only "
                f"1/n² = {exact_ratio(c.conv_weights, c.local_weights)}",
                f"  conv/full = (Cp² + 1)/(n²(Cm² + 1)) = {exact_ratio(c.conv, c.full)}; "
                f"weights only p²/(n²m²) = {exact_ratio(c.conv_weights, c.full_weights)}",
            ]
        else:
            out += [
                f"  conv {c.conv:,} (weights {c.conv_weights:,}), locally connected "
                f"{c.local:,} (weights {c.local_weights:,}), fully connected {c.full:,} "
                f"(weights {c.full_weights:,})",
                f"  conv/local = {exact_ratio(c.conv, c.local)}, weights only "
                f"{exact_ratio(c.conv_weights, c.local_weights)}; conv/full = "
                f"{exact_ratio(c.conv, c.full)}, weights only "
                f"{exact_ratio(c.conv_weights, c.full_weights)}",
            ]
    return out


def step_lines(a: Analysis) -> list[str]:
    """The parameter count layer by layer (HUJI 1.1), each step a product checked against the
    analyzer's count, then the sum."""
    steps = param_steps(a)
    if not steps:
        return []
    if len(steps) == 1:
        total = f"{a.total.params:,}"
    elif len(steps) <= 12:
        total = " + ".join(f"{s.params:,}" for s in steps) + f" = {a.total.params:,}"
    else:  # a deep net: the sum written out would be longer than the table
        total = f"the {len(steps)} steps above add up to {a.total.params:,}"
    return ["", "parameters, step by step:", *(f"  {s}" for s in steps), f"  total: {total}"]


def markdown(a: Analysis, layout: str = "nchw") -> str:
    head, rows = columns(a, layout)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    out += [""] + [f"- {line}" for line in total_lines(a, layout)]
    return "\n".join(out)


def _layer_dict(r: LayerStats, batch: int, layout: str) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": r.name, "kind": r.kind, "desc": r.desc, "inputs": list(r.inputs),
        "output_shape": list(shape_of(r.output_shape, batch, layout)),
        "rf": None if r.rf is None else list(r.rf),
        "jump": None if r.jump is None else [v if isinstance(v, int) else str(v)
                                             for v in r.jump],
        "rf_note": r.rf_note, "shared": r.shared, "shared_with": r.shared_with,
        "params": r.params, "weights": r.weights, "biases": r.biases,
        "macs": r.macs, "flops": r.flops, "activations": r.activations,
        "memory_bytes": {p: r.memory(p) for p in BYTES}, "supported": r.supported,
    }
    if r.compare is not None:
        c = r.compare
        d["compare"] = {
            "conv": c.conv, "local": c.local, "full": c.full,
            "conv_weights": c.conv_weights, "local_weights": c.local_weights,
            "full_weights": c.full_weights,
            "conv_over_local": c.conv_over_local, "conv_over_full": c.conv_over_full,
            "weights_conv_over_local": c.weights_conv_over_local,
            "weights_conv_over_full": c.weights_conv_over_full,
            "exact": {"conv_over_local": exact_ratio(c.conv, c.local),
                      "conv_over_full": exact_ratio(c.conv, c.full),
                      "weights_conv_over_local": exact_ratio(c.conv_weights, c.local_weights),
                      "weights_conv_over_full": exact_ratio(c.conv_weights, c.full_weights)},
        }
    return d


def to_dict(a: Analysis, layout: str = "nchw") -> dict[str, Any]:
    t = a.total
    return {
        "source": a.source, "layout": layout, "batch": a.batch,
        "input_shape": list(shape_of(a.input_shape, a.batch, layout)),
        "layers": [_layer_dict(r, a.batch, layout) for r in a.layers],
        "total": {
            "params": t.params, "weights": t.weights, "biases": t.biases, "macs": t.macs,
            "flops": t.flops, "activations": t.activations, "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes, "train_memory_bytes": t.train_memory_bytes,
            "complete": t.complete, "unsupported": a.unsupported,
            "unused": [{"parameter": p, "values": n} for p, n in a.unused],
        },
        "param_steps": [{"layer": s.layer, "formula": s.formula, "params": s.params}
                        for s in param_steps(a)],
    }


def to_json(a: Analysis, layout: str = "nchw") -> str:
    return json.dumps(to_dict(a, layout), indent=2)


def to_csv(a: Analysis, layout: str = "nchw") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    fields = ["name", "kind", "desc", "output_shape", "rf", "jump", "params", "weights",
              "biases", "macs", "flops", "activations", "mem_fp32", "mem_fp16", "mem_bf16"]
    cmp_fields = ["local_params", "full_params", "conv_over_local", "conv_over_full"]
    show_cmp = any(r.compare is not None for r in a.layers)
    w.writerow(fields + (cmp_fields if show_cmp else []))
    for r in a.layers:
        row = [r.name, r.kind, r.desc, _x(shape_of(r.output_shape, a.batch, layout)), _x(r.rf),
               _x(r.jump), r.params, r.weights, r.biases,
               "" if r.macs is None else r.macs, "" if r.flops is None else r.flops,
               r.activations, r.memory("fp32"), r.memory("fp16"), r.memory("bf16")]
        if show_cmp:
            c = r.compare
            row += ["", "", "", ""] if c is None else [
                c.local, c.full, f"{c.conv_over_local:.6g}", f"{c.conv_over_full:.6g}"]
        w.writerow(row)
    t = a.total
    w.writerow(["total", "", "", "", "", "", t.params, t.weights, t.biases, t.macs, t.flops,
                t.activations, *(t.activation_bytes[p] for p in BYTES)]
               + ([""] * 4 if show_cmp else []))
    return buf.getvalue()


def html(a: Analysis, layout: str = "nchw") -> str:
    head, rows = columns(a, layout)
    esc = html_lib.escape
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    foot = "".join(f"<li>{esc(line)}</li>" for line in total_lines(a, layout))
    return (f"<table class='cnnlab-analysis'><thead><tr>{th}</tr></thead>"
            f"<tbody>{body}</tbody></table><ul>{foot}</ul>")


def render(a: Analysis, fmt: str = "table", layout: str = "nchw") -> str:
    return {"table": table, "markdown": markdown, "json": to_json, "csv": to_csv,
            "html": html}[fmt](a, layout)

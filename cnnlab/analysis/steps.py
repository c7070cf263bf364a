"""The parameter count step by step, as the sheets ask (HUJI 1.1, 3.1.1, 3.2.1: "how many
parameters ... explain how you count them"): one checked product per layer with parameters.

Every step is computed from the analyzer's own numbers (the layer's weights, biases and shapes)
and printed only when the product it shows equals them, so a step can never disagree with the
total; a layer whose count is not a simple product shows its weights and biases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.analysis.analyze import Analysis, LayerStats


@dataclass(frozen=True)
class ParamStep:
    layer: str
    desc: str
    formula: str  # e.g. "5·5·1·32 = 800 weights + 32 biases = 832"
    params: int

    def __str__(self) -> str:
        return f"{self.layer} ({self.desc}): {self.formula}"


def param_steps(a: Analysis) -> list[ParamStep]:
    """One :class:`ParamStep` per layer of ``a`` that has parameters, in network order."""
    shapes = {row.name: row.output_shape for row in a.layers}
    out = []
    for row in a.layers:
        if not row.params:
            continue
        inp = shapes.get(row.inputs[0], ()) if row.inputs else ()
        out.append(ParamStep(row.name, row.desc, formula(row, inp), row.params))
    return out


def formula(row: LayerStats, inp: tuple[int, ...]) -> str:
    """The count of one layer as a product of its sizes (``inp``: its input shape, no batch)."""
    out = row.output_shape
    w, b = row.weights, row.biases
    tail = f" + {b:,} biases = {w + b:,}"
    if row.kind == "conv" and inp and out:
        cin, cout = inp[0], out[0]
        area = w // max(cin * cout, 1)
        dims = len(out) - 1
        side = round(area ** (1 / dims)) if dims > 1 else area
        k = "·".join([str(side)] * dims) if dims > 1 and side ** dims == area else str(area)
        if area * cin * cout == w:
            return f"{k}·{cin}·{cout} = {w:,} weights" + tail
    if row.kind == "linear" and inp:
        fan_in = math.prod(inp)
        fan = ("·".join(map(str, inp)) + f" = {fan_in:,}") if len(inp) > 1 else f"{fan_in:,}"
        if w and w % fan_in == 0:
            return f"({fan}) inputs · {w // fan_in:,} outputs = {w:,} weights" + tail
    if row.kind == "batchnorm":
        return f"scale {w:,} + shift {b:,} = {w + b:,}"
    return f"{w:,} weights" + tail

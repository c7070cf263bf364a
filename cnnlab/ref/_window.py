"""The NumPy ops' arguments (ints or per-axis tuples, padding modes) -> the one window geometry.

:func:`geometry` parses what :func:`cnnlab.ref.conv.conv_forward` and the pools accept into a
:class:`cnnlab.ir.shapes.Window`, the same dataclass the analyzer and the builder use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Window

from .padding import explicit_pads

IntOrAxes = int | Sequence[int]
PaddingArg = str | int | Sequence[int] | Sequence[tuple[int, int]]


def axes(value: IntOrAxes | None, dims: int, what: str, default: int = 1) -> ir.Axes:
    if value is None:
        return (default,) * dims
    vals = (int(value),) if isinstance(value, int | np.integer) else tuple(int(v) for v in value)
    try:
        out = ir.broadcast(vals, dims, what)
    except ValueError as e:
        raise CnnlabError(f"{e}; give one value or one per axis") from None
    if any(v < 1 for v in out):
        raise CnnlabError(f"{what} must be positive, got {out}")
    return out


def padding_arg(padding: PaddingArg) -> ir.Padding:
    """Accept ``'valid'|'same'|'full'``, an int, one int per axis, or ``(lo, hi)`` pairs."""
    if isinstance(padding, str):
        return padding  # type: ignore[return-value]
    if isinstance(padding, int | np.integer):
        return ((int(padding), int(padding)),)
    out = []
    for p in padding:
        if isinstance(p, int | np.integer):
            out.append((int(p), int(p)))
        else:
            lo, hi = p
            out.append((int(lo), int(hi)))
    return tuple(out)


def geometry(size: Sequence[int], kernel: IntOrAxes, stride: IntOrAxes | None,
             padding: PaddingArg, dilation: IntOrAxes | None, what: str = "window") -> Window:
    dims = len(size)
    k = axes(kernel, dims, "kernel")
    s = axes(stride, dims, "stride")
    d = axes(dilation, dims, "dilation")
    pads = explicit_pads(padding_arg(padding), tuple(size), k, s, d)
    geom = Window(k, s, d, pads, tuple(int(v) for v in size))
    if any(o < 1 for o in geom.out):
        raise CnnlabError(f"{what}: kernel span {geom.span} is larger than the padded input "
                          f"{geom.padded}; use a smaller kernel or padding='same'")
    return geom


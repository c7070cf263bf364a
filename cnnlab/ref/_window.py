"""Shared window geometry of conv and pool: per-axis kernel/stride/dilation and explicit pads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir

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


@dataclass(frozen=True)
class Geometry:
    """A window op resolved for a concrete input: everything per spatial axis.

    ``out[i] = floor((n[i] + lo[i] + hi[i] - d[i](k[i]-1) - 1) / s[i]) + 1``.
    """

    size: ir.Axes
    kernel: ir.Axes
    stride: ir.Axes
    dilation: ir.Axes
    pads: ir.Pads
    out: ir.Axes

    @property
    def dims(self) -> int:
        return len(self.size)

    @property
    def span(self) -> ir.Axes:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    @property
    def padded(self) -> ir.Axes:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.size, self.pads, strict=True))

    def window(self, o: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the padded input read by output position ``o``."""
        return tuple(
            slice(i * s, i * s + sp, d)
            for i, s, sp, d in zip(o, self.stride, self.span, self.dilation, strict=True)
        )

    def tap(self, t: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the padded input that kernel tap ``t`` reads, across all outputs."""
        return tuple(
            slice(j * d, j * d + s * (o - 1) + 1, s)
            for j, d, s, o in zip(t, self.dilation, self.stride, self.out, strict=True)
        )


def geometry(size: Sequence[int], kernel: IntOrAxes, stride: IntOrAxes | None,
             padding: PaddingArg, dilation: IntOrAxes | None, what: str = "window") -> Geometry:
    dims = len(size)
    k = axes(kernel, dims, "kernel")
    s = axes(stride, dims, "stride")
    d = axes(dilation, dims, "dilation")
    pads = explicit_pads(padding_arg(padding), tuple(size), k, s, d)
    out = tuple(ir.out_size(n, kk, ss, dd, lo, hi)
                for n, kk, ss, dd, (lo, hi) in zip(size, k, s, d, pads, strict=True))
    geom = Geometry(tuple(int(v) for v in size), k, s, d, pads, out)
    if any(o < 1 for o in out):
        raise CnnlabError(f"{what}: kernel span {geom.span} is larger than the padded input "
                          f"{geom.padded}; use a smaller kernel or padding='same'")
    return geom


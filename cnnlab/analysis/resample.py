"""Which input units each output unit of a spatial op reads, along one tensor axis.

The receptive-field pass (:mod:`cnnlab.analysis.receptive`) applies these rules to periodic
fields (unclipped: ``reads``) and to the per-unit reach of a concrete input (``clipped``: only
real input positions, after torch's clamping/reflection). The formulas are torch's own:

  * transposed conv: output ``o`` gets input ``i`` through tap ``t`` when
    ``o = i*s - pad + t*d``;
  * nearest: ``src = floor(o * scale)`` (``nearest-exact``: ``floor((o + 0.5) * scale)``),
    ``scale = 1/scale_factor`` when a factor is given, else ``in/out``;
  * linear (bi/trilinear, per axis): ``src = (o + 0.5) * scale - 0.5`` clamped at 0
    (``align_corners``: ``o * (in-1)/(out-1)``); pixels ``floor(src)`` and the next one,
    the next only when its weight ``src - floor(src)`` is not 0; bicubic: four pixels;
  * adaptive pooling: ``[floor(o n/m), ceil((o+1) n/m))``;
  * pad: ``o - lo`` (constant: nothing outside; reflect, replicate, circular as torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from fractions import Fraction

from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Shape, Window

Reads = Callable[[int], Iterable[int]]
Rule = tuple[Reads, Callable[[int], tuple[int, int]], Reads, tuple[int, int, int, int] | None]


def _rational(step_in: int, step_out: int) -> Callable[[int], tuple[int, int]]:
    """Period rule of an op where ``step_out`` output units read ``step_in`` input units on."""

    def period(p: int) -> tuple[int, int]:
        m = p // math.gcd(step_in, p)
        return step_out * m, step_in * m

    return period


def _scale(op: ir.Upsample, i: int, n: int, m: int) -> Fraction:
    """Input units per output unit along spatial axis ``i`` (torch's ``scale``)."""
    if op.mode.startswith(("linear", "bilinear", "trilinear", "bicubic")) and op.align_corners:
        return Fraction(n - 1, m - 1) if m > 1 else Fraction(0)
    if op.size is None and op.scale is not None:
        f = op.scale[i] if len(op.scale) > 1 else op.scale[0]
        return Fraction(1 / float(f)).limit_denominator(1 << 20)
    return Fraction(n, m)


def _interp(op: ir.Upsample, scale: Fraction, o: int, n: int | None) -> list[int]:
    if op.mode.startswith("nearest"):
        src = math.floor((o + Fraction(1, 2)) * scale if op.mode == "nearest-exact" else o * scale)
        return [src if n is None else min(src, n - 1)]
    src = o * scale if op.align_corners else (o + Fraction(1, 2)) * scale - Fraction(1, 2)
    if n is not None and not op.align_corners:
        src = max(src, Fraction(0))
    i0 = math.floor(src)
    lam = src - i0
    cubic = op.mode == "bicubic"
    if lam == 0:
        taps = [i0]
    else:
        taps = [i0 - 1, i0, i0 + 1, i0 + 2] if cubic else [i0, i0 + 1]
    if n is None:
        return taps
    return sorted({min(max(v, 0), n - 1) for v in taps})


def _pad_index(v: int, n: int, mode: str) -> int | None:
    if 0 <= v < n:
        return v
    if mode == "constant":
        return None
    if mode == "replicate":
        return min(max(v, 0), n - 1)
    if mode == "circular":
        return v % n
    period = 2 * (n - 1)  # reflect, without repeating the edge
    v = abs(v) % period if period else 0
    return v if v < n else period - v


def op_reads(op: ir.Op, x: Shape, out: Shape, t: int, w: Window | None = None) -> Rule:
    """The rule of tensor axis ``t`` (no batch) of ``op``: (reads, period, clipped, window)."""
    n, m = x[t], out[t]
    if isinstance(op, ir.Pad):
        lo = op.pads[t - (len(x) - len(op.pads))][0]

        def clipped(o: int) -> list[int]:
            v = _pad_index(o - lo, n, op.mode)
            return [] if v is None else [v]

        return (lambda o: (o - lo,)), _rational(1, 1), clipped, None
    i = t - 1
    if isinstance(op, ir.Conv | ir.Pool):
        k, s, d, pad = w.kernel[i], w.stride[i], w.dilation[i], w.pads[i][0]

        def reads(u: int) -> range:
            return range(u * s - pad, u * s - pad + (k - 1) * d + 1, d)

        return reads, _rational(s, 1), reads, (k, s, d, pad)
    if isinstance(op, ir.ConvTranspose):
        k, s, d, pad = w.kernel[i], w.stride[i], w.dilation[i], w.pads[i][0]

        def deconv(o: int) -> list[int]:
            return [(o + pad - j * d) // s for j in range(k) if (o + pad - j * d) % s == 0]

        return deconv, _rational(1, s), (lambda o: [v for v in deconv(o) if 0 <= v < n]), None
    if isinstance(op, ir.AdaptivePool):
        def window(o: int) -> range:
            return range((o * n) // m, -(-((o + 1) * n) // m))

        g = math.gcd(n, m)
        return window, _rational(n // g, m // g), window, None
    if isinstance(op, ir.Upsample):
        scale = _scale(op, i, n, m)
        return ((lambda o: _interp(op, scale, o, None)),
                _rational(scale.numerator, scale.denominator) if scale else _rational(0, 1),
                (lambda o: _interp(op, scale, o, n)), None)
    raise TypeError(f"no reads rule for {op.kind}")

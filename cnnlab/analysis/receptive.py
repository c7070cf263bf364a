"""Receptive field and jump of every unit, per spatial axis, through an IR graph.

Per axis, with ``k' = d(k-1)+1`` the dilated kernel span::

    jump_out = jump_in * s          rf_out = rf_in + (k' - 1) * jump_in
    lo_out   = lo_in - pad_lo * jump_in     (left edge of unit 0's field, input coordinates)

At a join (add/concat) the field is the bounding box of the union over the incoming paths. A
unit of a vector layer (after flatten/fc/global pooling) sees the span of image positions its
inputs actually read (padding excluded): for a 28x28 image usually 28x28, less when strides or
floor-rounded pools leave border pixels unread. Used by :mod:`cnnlab.analysis.analyze`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Shape, window_params

Reach = tuple[tuple[int | None, ...], ...]  # per axis, one value per unit


@dataclass
class Field:
    rf: tuple[int, ...]
    jump: tuple[int, ...]
    lo: tuple[int, ...]
    count: tuple[int, ...]  # units per axis at this node
    # per axis and unit, the first/last image position the unit reads through real units
    # (None: it reads only padding); a vector layer's field is their span
    first: Reach
    last: Reach
    vector: bool = False


def _pick(values: list[int | None], fn) -> int | None:
    known = [v for v in values if v is not None]
    return fn(known) if known else None


def _window_reach(reach: tuple[int | None, ...], count: int, k: int, s: int, d: int,
                  pad: int, fn) -> tuple[int | None, ...]:
    n, span = len(reach), (k - 1) * d

    def unit(u: int) -> int | None:
        a, b = u * s - pad, min(u * s - pad + span, n - 1)
        if a < 0:
            a += -(a // d) * d  # the first tap inside the input
        return _pick(list(reach[a:b + 1:d]), fn) if a <= b else None

    # the usual case: reach grows with the unit index (no None), so a window lying wholly
    # inside the input has its min at its first tap and its max at its last: one slice
    first, last = -(-pad // s), min(count - 1, (n - 1 - span + pad) // s)
    if first > last or None in reach or reach != tuple(sorted(reach)):
        return tuple(unit(u) for u in range(count))
    off = first * s - pad + (0 if fn is min else span)
    return (*(unit(u) for u in range(first)), *reach[off:off + (last - first) * s + 1:s],
            *(unit(u) for u in range(last + 1, count)))


def node_field(node: ir.Node, ins: list[Field], in_shapes: list[Shape], out: Shape,
           image: tuple[int, ...]) -> Field | None:
    op = node.op
    if any(f is None for f in ins) or not ins:
        return None
    f = ins[0]
    if isinstance(op, ir.Add | ir.Concat):
        lo = tuple(min(v) for v in zip(*(g.lo for g in ins), strict=True))
        hi = tuple(max(v) for v in zip(*((a + r for a, r in zip(g.lo, g.rf, strict=True))
                                         for g in ins), strict=True))
        jump = tuple(max(v) for v in zip(*(g.jump for g in ins), strict=True))
        if any(g.vector for g in ins):
            return Field(tuple(h - a for a, h in zip(lo, hi, strict=True)), jump, lo, f.count,
                          f.first, f.last, True)
        first = tuple(tuple(_pick(list(v), min) for v in zip(*(g.first[ax] for g in ins),
                                                               strict=True))
                      for ax in range(len(lo)))
        last = tuple(tuple(_pick(list(v), max) for v in zip(*(g.last[ax] for g in ins),
                                                            strict=True))
                     for ax in range(len(lo)))
        return Field(tuple(h - a for a, h in zip(lo, hi, strict=True)), jump, lo, f.count,
                      first, last)
    if isinstance(op, ir.Unsupported):
        return None
    if f.vector:
        return f
    if isinstance(op, ir.Conv | ir.Pool):
        w = window_params(node, in_shapes[0])
        per_axis = list(zip(out[1:], w.kernel, w.stride, w.dilation, w.pads, strict=True))
        first = tuple(_window_reach(r, c, k, s, d, p, min)
                      for r, (c, k, s, d, (p, _)) in zip(f.first, per_axis, strict=True))
        last = tuple(_window_reach(r, c, k, s, d, p, max)
                     for r, (c, k, s, d, (p, _)) in zip(f.last, per_axis, strict=True))
        rf = tuple(r + (sp - 1) * j for r, sp, j in zip(f.rf, w.span, f.jump, strict=True))
        jump = tuple(j * s for j, s in zip(f.jump, w.stride, strict=True))
        lo = tuple(lo - p * j for lo, (p, _), j in zip(f.lo, w.pads, f.jump, strict=True))
        return Field(rf, jump, lo, out[1:], first, last)
    if isinstance(op, ir.Flatten | ir.Linear | ir.GlobalPool):
        a = [_pick(list(v), min) for v in f.first]
        b = [_pick(list(v), max) for v in f.last]
        extent = tuple(0 if x is None else y - x + 1 for x, y in zip(a, b, strict=True))
        return Field(extent, f.jump, tuple(x or 0 for x in a), (1,) * len(image),
                      tuple((x,) for x in a), tuple((y,) for y in b), True)
    return f

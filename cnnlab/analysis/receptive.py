"""Receptive field and jump of every unit, per image axis, through an IR graph.

A unit's *field* along an image axis is the bounding box of the input positions whose value can
change it (the gradient footprint). Per axis, with ``k' = d(k-1)+1`` the dilated kernel span::

    jump_out = jump_in * s          rf_out = rf_in + (k' - 1) * jump_in

That recurrence is the special case ``period = 1`` of the representation used here, which also
covers the ops that change resolution upward: the field of unit ``u`` is periodic,
``field(u + P) = field(u) + Q`` (``P`` units move the field ``Q`` input positions; jump = Q/P).
Per axis we keep ``P``, ``Q`` and the unclipped fields of units ``0..P-1``; every op is a
``reads(u)`` rule (which input units unit ``u`` reads) applied to them:

  * conv/pool: ``u*s - pad + t*d``; transposed conv: every ``i`` with ``i*s + t*d - pad = u``
    (period ``P*s``, jump ``jump_in/s``); nearest/linear/cubic upsampling: the source pixels
    with a non-zero interpolation weight (torch's formulas); adaptive pooling: torch's windows.
  * For ops whose field depends on the phase of ``u`` (upsampling), **RF is the largest field
    over the phases** and the jump is a fraction (1/2 after a 2x upsample).

A *global* part (a global pool or an instance/group norm feeding a multiply, an SE gate) makes
every unit see the span of everything read: the field is then "whole input", said as such.
Layouts are tracked per tensor axis (``axes``: image axis or None for a feature axis), so a
permute to channels-last, a view that splits channels (channel shuffle) and token inputs keep
their fields. Vector layers (flatten/fc/global pool) see the span of image positions their
inputs actually read (padding excluded). Used by :mod:`cnnlab.analysis.analyze`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from operator import is_, itemgetter

from cnnlab.analysis.field import Field, Periodic, hull
from cnnlab.analysis.reach import gather, merge_once, pick, shift, window_reach
from cnnlab.analysis.receptive_mix import mix_field
from cnnlab.analysis.resample import op_reads
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Shape, Window, window_params

#: Bound on the receptive-field pass's work: the unit positions it visits, summed over the
#: nodes and their position axes. ``conv3x3x8(padding=same)*100 --input 1x1048576x1048576``
#: visits 211,812,352: 19 s of CPU and 169 MB peak RSS (the 2-core test machine); memory does
#: not grow with the layer count (a field is dropped after its last reader).
MAX_FIELD_WORK = 1 << 28


def check_field_work(shapes: dict[str, Shape], image_axes: int) -> None:
    """Refuse, before any work, a network whose field pass would visit more than
    :data:`MAX_FIELD_WORK` unit positions (layers x input length)."""
    from cnnlab.common.errors import CnnlabError

    work = sum(sum(s[-image_axes:]) for s in shapes.values() if image_axes and len(s) > 1)
    if work > MAX_FIELD_WORK:
        raise CnnlabError(
            f"the analysis would visit {work:,} unit positions ({len(shapes) - 1} layers x the "
            f"input's length), over the limit of {MAX_FIELD_WORK:,}; give a smaller --input "
            "(fields and jumps do not depend on the input size once it is larger than the "
            "receptive field) or fewer layers")


def _join(node: ir.Node, ins: list[Field], in_shapes: list[Shape], out: Shape,
          memo: dict | None = None) -> Field | str:
    """Union of the fields of element-wise/concat inputs (broadcast axes become global).
    ``memo``: see :func:`_plain_join`."""
    plain = _plain_join(ins, in_shapes, out, memo)
    if plain is not None:
        return plain
    rank = len(out)
    axes: list[int | None] = [None] * rank
    fields = []
    for f, shp in zip(ins, in_shapes, strict=True):
        pad = rank - len(shp)
        spread = [a for t, a in enumerate(f.axes) if a is not None and shp[t] != out[t + pad]]
        g = f.collapse(spread) if spread else f
        for t, a in enumerate(g.axes):
            if a is None:
                continue
            if axes[t + pad] not in (None, a):
                return f"{node.name} joins tensors whose axes are laid out differently"
            axes[t + pad] = a
        fields.append(g)
    n_img = len(ins[0].per)
    per, first, last, glob = [], [], [], []
    memo: dict = {}  # a square map's axes merge the same tuples (see merge_once)
    for a in range(n_img):
        mapped = [g for g in fields if g.mapped(a)]
        ps = [g.per[a] for g in mapped]
        if any(not p.same_jump(ps[0]) for p in ps[1:]):
            # no common period (a decoder resampled by 14/13 next to its skip): the fields
            # of this input's units, as they are; RF is the largest of them
            first.append(merge_once(memo, [g.first[a] for g in mapped], min))
            last.append(merge_once(memo, [g.last[a] for g in mapped], max))
            jump = max(p.jump for p in ps)
            per.append(Periodic(len(first[-1]), math.ceil(len(first[-1]) * jump), first[-1],
                                last[-1]))
        elif ps:
            period = math.lcm(*(p.period for p in ps))
            boxes = [[p.at(u) for p in ps] for u in range(period)]
            lo = tuple(pick([b[0] for b in bs if b], min) for bs in boxes)
            hi = tuple(pick([b[1] for b in bs if b], max) for bs in boxes)
            per.append(Periodic(period, ps[0].shift * period // ps[0].period, lo, hi))
            first.append(merge_once(memo, [g.first[a] for g in mapped], min))
            last.append(merge_once(memo, [g.last[a] for g in mapped], max))
        else:
            per.append(fields[0].per[a])
            first.append(())
            last.append(())
        span = None
        for g in fields:
            span = hull(span, g.glob[a] if g.mapped(a) else g.span(a))
        glob.append(span if any(g.glob[a] is not None or not g.mapped(a) for g in fields)
                    else None)
    return Field(tuple(axes), tuple(per), tuple(first), tuple(last), tuple(glob))


def _plain_join(ins: list[Field], in_shapes: list[Shape], out: Shape,
                memo: dict | None = None) -> Field | None:
    """:func:`_join` of the usual inputs (a skip connection, DenseNet's concat): one layout,
    every image axis mapped at the output's size, one jump, period 1, nothing global. None
    for anything else.

    ``memo`` (one analysis's) remembers the last such join's inputs and result: DenseNet's
    next concat takes the same inputs and one more, so it merges that result with the new
    inputs only (min and max are associative) instead of every input again."""
    f0 = ins[0]
    axes, n_img, key = f0.axes, len(f0.per), f0.plain
    if key is None or len(axes) != len(out) or not all(a in axes for a in range(n_img)):
        return None
    # the sizes of the mapped axes, which every input must have (channels may differ)
    mapped = [t for t, a in enumerate(axes) if a is not None]
    if not mapped:  # vectors only (an MLP's skip): nothing to compare, every size may differ
        return None
    sizes = itemgetter(*mapped)
    want, rank = sizes(out), len(out)
    for f, shp in zip(ins, in_shapes, strict=True):
        if f.plain != key or len(shp) != rank or sizes(shp) != want:
            return None
    parts: list = ins
    before = memo.get("plain join") if memo is not None else None
    if before is not None and len(before[0]) < len(ins) and all(map(is_, before[0], ins)):
        parts = [before[1], *ins[len(before[0]):]]  # the last join's result stands for its inputs
    per, first, last = [], [], []
    merged: dict = {}  # a square map's axes merge the same tuples (see merge_once)
    for a in range(n_img):
        known = [p for f in parts if (p := f.per[a]).lo[0] is not None]
        per.append(Periodic(1, f0.per[a].shift, (pick([p.lo[0] for p in known], min),),
                            (pick([p.hi[0] for p in known], max),)))
        first.append(merge_once(merged, [f.first[a] for f in parts], min))
        last.append(merge_once(merged, [f.last[a] for f in parts], max))
    result = Field(axes, tuple(per), tuple(first), tuple(last), (None,) * n_img)
    if memo is not None:
        memo["plain join"] = (tuple(ins), result)
    return result


def _spatial(f: Field, op: ir.Op, node: ir.Node, x: Shape, out: Shape) -> Field | str:
    """Conv, pool, transposed conv, upsample, adaptive pool, pad: a reads rule per axis."""
    kind = type(op)
    w = window_params(node, x) if kind in _WINDOWED else None
    if kind is ir.Pad:
        taxes = range(len(x) - len(op.pads), len(x))
    else:
        if f.axes[0] is not None and kind in (ir.Conv, ir.ConvTranspose):
            # the op mixes every channel: a position axis used as channels becomes global
            f = f.collapse([f.axes[0]])
        taxes = range(1, len(x))
    per, first, last = list(f.per), list(f.first), list(f.last)
    done: list[tuple[int, tuple, int]] = []  # the axes changed whose rule is a tuple
    changed = False
    for t in taxes:
        a = f.axes[t]
        if a is None:
            continue
        how = _how(op, w, x, t)
        if how == (1, 1, 1, 0) and out[t] == x[t]:
            continue  # a 1x1 window at stride 1: every unit reads itself, the field is kept
        changed = True
        twin = _twin(f, a, how, out[t], done)
        if twin is not None:  # a square map under a square window: the same work, done
            per[a], first[a], last[a] = per[twin], first[twin], last[twin]
            continue
        if how is not None:
            done.append((a, how, out[t]))
        reads, period_of, clipped, window = op_reads(op, x, out, t, w)
        p = per[a]
        period, step = period_of(p.period)
        per[a] = p.remap(reads, period, step)
        if window is not None:  # conv/pool: the fast path over the clipped reach
            k, s, d, pad = window
            first[a] = window_reach(f.first[a], out[t], k, s, d, pad, min)
            last[a] = window_reach(f.last[a], out[t], k, s, d, pad, max)
        elif how is not None:  # a constant pad: a shift
            first[a] = shift(f.first[a], how[1], x[t], out[t])
            last[a] = shift(f.last[a], how[1], x[t], out[t])
        else:
            first[a] = gather(f.first[a], clipped, out[t], min)
            last[a] = gather(f.last[a], clipped, out[t], max)
    if not changed:  # 1x1 windows, or no image axis: the same field (its row values kept)
        return f
    return Field(f.axes, tuple(per), tuple(first), tuple(last), f.glob)


#: the ops whose geometry is a resolved window (:func:`window_params`)
_WINDOWED = frozenset((ir.Conv, ir.Pool, ir.ConvTranspose))


def _how(op: ir.Op, w: Window | None, x: Shape, t: int) -> tuple | None:
    """The whole rule of tensor axis ``t`` as a tuple, when one says it: a conv/pool's window
    ``(k, s, d, low pad)`` (as :func:`op_reads` gives it), a constant pad's ``("shift", low
    pad, length)``; None for a rule given by a function (transposed conv, upsample, adaptive
    pool, reflecting pad)."""
    kind = type(op)
    if kind is ir.Conv or kind is ir.Pool:
        i = t - 1
        return w.kernel[i], w.stride[i], w.dilation[i], w.pads[i][0]
    if kind is ir.Pad and op.mode == "constant":
        return "shift", op.pads[t - len(x) + len(op.pads)][0], x[t]
    return None


def _twin(f: Field, a: int, how: tuple | None, count: int,
          done: list[tuple[int, tuple, int]]) -> int | None:
    """An image axis done before whose result image axis ``a`` shares: the same rule ``how``
    and output length over the same field (the same reach tuples, as objects: an input's axes
    of one length share theirs, and a twin's results are shared, so a square map stays so)."""
    if how is None:
        return None
    for b, w, m in done:
        if w == how and m == count and f.first[a] is f.first[b] and \
                f.last[a] is f.last[b] and f.per[a] == f.per[b]:
            return b
    return None


def _reshape(f: Field, x: Shape, out: Shape) -> Field:
    k = 0
    while k < min(len(x), len(out)) and x[len(x) - 1 - k] == out[len(out) - 1 - k]:
        k += 1
    moved = [a for a in f.axes[:len(x) - k] if a is not None]
    g = f.collapse(moved) if moved else f
    return replace(g, axes=(None,) * (len(out) - k) + (g.axes[len(x) - k:] if k else ()))


#: ops whose units see what the same unit of their input sees (a norm with running statistics
#: is element-wise too, but :class:`ir.Norm` needs the check below)
_ELEMENTWISE = frozenset((ir.Act, ir.BatchNorm, ir.Dropout, ir.Scale, ir.PReLU))
#: ops with a reads rule per axis (:func:`_spatial`)
_SPATIAL = frozenset((ir.Conv, ir.Pool, ir.ConvTranspose, ir.Upsample, ir.AdaptivePool, ir.Pad))


def node_field(node: ir.Node, ins: list[Field | str], in_shapes: list[Shape], out: Shape,
               image: tuple[int, ...], memo: dict | None = None) -> Field | str:
    """The field of ``node``'s units, or a one-line reason why it is not defined. ``memo``:
    an empty dict for one analysis's calls, which the joins use (:func:`_plain_join`)."""
    op = node.op
    if isinstance(op, ir.Unsupported):
        return f"{node.name} is not modelled ({op.target})"
    for f in ins:
        if isinstance(f, str):
            return f if f.startswith("after ") else f"after {f}"
    if not ins:
        return f"{node.name} has no input"
    f, x = ins[0], in_shapes[0]
    kind = type(op)  # the ops are final classes: the exact type picks the rule
    if kind in _ELEMENTWISE:  # most rows of a CNN: at once, without the chain below
        return f
    if kind in _SPATIAL:
        return _spatial(f, op, node, x, out)
    mixed = mix_field(node, ins, in_shapes, out, _join)
    if mixed is not None:
        return mixed
    if isinstance(op, ir.Add | ir.Binary) or isinstance(op, ir.Concat) and \
            f.axes[op.axis % len(x)] is None:
        return _join(node, ins, in_shapes, out, memo)
    if isinstance(op, ir.Concat):
        return f"{node.name} concatenates along a position axis"
    if isinstance(op, ir.Stack):
        g = _join(node, ins, in_shapes, x)
        if isinstance(g, str):
            return g
        ax = op.axis % (len(x) + 1)
        return replace(g, axes=g.axes[:ax] + (None,) + g.axes[ax:])
    if isinstance(op, ir.Flatten) or isinstance(op, ir.Linear) and not op.last:
        return replace(f.collapse(range(len(image))), axes=(None,))
    if isinstance(op, ir.GlobalPool):
        g = f.collapse([a for a in f.axes[1:] if a is not None])
        return replace(g, axes=g.axes if op.keepdim else g.axes[:1])
    if isinstance(op, ir.Linear):  # on the last axis
        return f.collapse([f.axes[-1]]) if f.axes[-1] is not None else f
    if isinstance(op, ir.Softmax):
        ax = f.axes[op.axis % len(x)]
        return f.collapse([ax], keep=True) if ax is not None else f
    if isinstance(op, ir.Norm) and not op.running:
        if op.norm in ("layer", "rms"):
            return f.collapse([a for a in f.axes[len(x) - len(op.shape):] if a is not None],
                              keep=True)
        return f.collapse([a for a in f.axes[1:] if a is not None], keep=True)
    if isinstance(op, ir.Reshape):
        return _reshape(f, x, out)
    if isinstance(op, ir.Expand):
        return _join(node, ins, in_shapes, out)
    if isinstance(op, ir.Reduce):
        axes = {a % len(x) for a in op.axes}
        g = f.collapse([f.axes[i] for i in axes if f.axes[i] is not None])
        return g if op.keepdim else replace(g, axes=tuple(
            a for i, a in enumerate(g.axes) if i not in axes))
    if isinstance(op, ir.Permute):
        return replace(f, axes=tuple(f.axes[i] for i in op.perm))
    if isinstance(op, ir.Slice):
        ax = op.axis % len(x)
        a = f.axes[ax]
        if a is None:
            return f
        p = f.per[a]
        start, step = op.start, op.step
        per = list(f.per)
        period = p.period // math.gcd(p.period, step)
        per[a] = p.remap(lambda u: (start + u * step,), period, period * step)
        first, last = list(f.first), list(f.last)
        first[a] = f.first[a][op.start:op.stop:step]
        last[a] = f.last[a][op.start:op.stop:step]
        return Field(f.axes, tuple(per), tuple(first), tuple(last), f.glob)
    if isinstance(op, ir.Embedding):
        return replace(f, axes=(*f.axes, None))
    return f  # element-wise: act, prelu, batchnorm, dropout, scale, running norm

"""The receptive field of one tensor: :class:`Field` (per tensor axis, which image axis it
maps) and :class:`Periodic` (per image axis, the unclipped fields of one period of units).

A unit's field along an image axis is the bounding box of the input positions whose value can
change it; unit ``u`` of an axis with period ``P`` and shift ``Q`` sees
``[lo[r] + q*Q, hi[r] + q*Q]`` with ``q, r = divmod(u, P)``, so the jump is ``Q/P``. ``first``
and ``last`` keep, per unit, the first and last position read once clipped to the image (what
a vector layer's span is made of), and ``glob`` the span that a global part (global pool, SE
gate) makes every unit see. The rules that carry fields through ops are in
:mod:`cnnlab.analysis.receptive`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction


class _once:  # a decorator, named like functools.cached_property
    """``functools.cached_property`` without its lock (Python 3.11 takes one on every first
    read; a field is made and read by one analysis): the value lands in the instance's
    ``__dict__``, which shadows this descriptor from then on."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.name = fn, fn.__name__

    def __get__(self, obj: object, owner: type | None = None) -> object:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


Reach = tuple[tuple[int | None, ...], ...]  # per image axis, one value per unit
Span = tuple[int, int] | None


@dataclass(frozen=True)
class Periodic:
    """The unclipped fields of one image axis: unit ``u`` sees ``[lo[r] + q*shift, hi[r] +
    q*shift]`` with ``q, r = divmod(u, period)`` (None: the unit reads nothing)."""

    period: int
    shift: int
    lo: tuple[int | None, ...]
    hi: tuple[int | None, ...]

    def at(self, u: int) -> tuple[int, int] | None:
        q, r = divmod(u, self.period)
        if self.lo[r] is None:
            return None
        return self.lo[r] + q * self.shift, self.hi[r] + q * self.shift

    @property
    def rf(self) -> int:
        if self.period == 1:  # the usual case
            return 0 if self.lo[0] is None else self.hi[0] - self.lo[0] + 1
        return max((h - lo + 1 for lo, h in zip(self.lo, self.hi, strict=True)
                    if lo is not None), default=0)

    @property
    def jump(self) -> Fraction:
        return Fraction(self.shift, self.period)

    @property
    def step(self) -> int | Fraction:
        """The jump as an int when it is whole (without building a Fraction), else a Fraction."""
        if self.shift % self.period == 0:
            return self.shift // self.period
        return Fraction(self.shift, self.period)

    def same_jump(self, other: Periodic) -> bool:
        return self.shift * other.period == other.shift * self.period

    def remap(self, reads: Callable[[int], Iterable[int]], period: int, step: int) -> Periodic:
        """Apply an op whose unit ``u + period`` reads the units of ``u`` moved by ``step``."""
        lo, hi = [], []
        for u in range(period):
            boxes = [b for v in reads(u) if (b := self.at(v)) is not None]
            lo.append(min(b[0] for b in boxes) if boxes else None)
            hi.append(max(b[1] for b in boxes) if boxes else None)
        return Periodic(period, self.shift * step // self.period, tuple(lo), tuple(hi))


@dataclass(frozen=True)
class Field:
    axes: tuple[int | None, ...]  # per tensor axis (no batch): image axis, None: feature
    per: tuple[Periodic, ...]  # per image axis
    first: Reach  # per image axis, per unit of its tensor axis: first position read (clipped)
    last: Reach
    glob: tuple[Span, ...]  # per image axis: span read by a global part of every unit

    def mapped(self, a: int) -> bool:
        return a in self.axes

    @_once  # a field is immutable; rows share it along element-wise ops
    def vector(self) -> bool:
        return not all(self.mapped(a) for a in range(len(self.per)))

    @_once
    def plain(self) -> tuple | None:
        """(axes, shift per image axis) when every image axis has period 1 and nothing is
        global (what :func:`_plain_join` needs of each input); None otherwise."""
        if any(g is not None for g in self.glob) or any(p.period != 1 for p in self.per):
            return None
        return self.axes, tuple(p.shift for p in self.per)

    @_once
    def whole(self) -> bool:
        return bool(self.per) and all(g is not None for g in self.glob)

    def span(self, a: int) -> Span:
        """Hull of every position read along image axis ``a`` (clipped to the image)."""
        first, last = self.first[a], self.last[a]
        if first and None not in first and None not in last:  # the usual case, no copies
            return hull((min(first), max(last)), self.glob[a])
        vals = [v for v in first if v is not None]
        ends = [v for v in last if v is not None]
        box = (min(vals), max(ends)) if vals else None
        return hull(box, self.glob[a])

    @_once
    def rf(self) -> tuple[int, ...]:
        out = []
        for a, p in enumerate(self.per):
            if self.glob[a] is not None or not self.mapped(a):
                s = self.span(a)
                out.append(0 if s is None else s[1] - s[0] + 1)
            else:
                out.append(p.rf)
        return tuple(out)

    @_once
    def jump(self) -> tuple[int | Fraction, ...]:
        return tuple(p.step for p in self.per)

    @property
    def lo(self) -> tuple[int | None, ...]:
        return tuple(p.lo[0] for p in self.per)

    def collapse(self, axes: Iterable[int], keep: bool = False) -> Field:
        """Every unit now sees all positions read along the image axes ``axes``; unless
        ``keep``, the tensor axes mapped to them become feature axes."""
        axes = set(axes)
        glob = tuple(self.span(a) if a in axes else g for a, g in enumerate(self.glob))
        if keep:
            return replace(self, glob=glob)
        first = tuple(() if a in axes else v for a, v in enumerate(self.first))
        last = tuple(() if a in axes else v for a, v in enumerate(self.last))
        return Field(tuple(None if a in axes else a for a in self.axes), self.per, first, last,
                     glob)


def hull(a: Span, b: Span) -> Span:
    """The smallest span holding both (None: a side that reads nothing)."""
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


def input_field(image: tuple[int, ...], tokens: bool) -> Field:
    """The input's field: unit ``u`` sees position ``u`` (rf 1, jump 1) on every image axis;
    ``tokens``: the input has no channel axis (every tensor axis is an image axis)."""
    ranges = {n: tuple(range(n)) for n in image}  # axes of one length share (see receptive._twin)
    reach = tuple(ranges[n] for n in image)
    dims = len(image)
    axes = tuple(range(dims)) if tokens else (None, *range(dims))
    return Field(axes, tuple(Periodic(1, 1, (0,), (0,)) for _ in image), reach, reach,
                 (None,) * dims)

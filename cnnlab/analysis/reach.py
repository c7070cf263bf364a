"""Per-unit reach along one axis of a concrete input: for each unit of a tensor axis, the
first (or last) input position it reads, None where it reads only padding.

:mod:`cnnlab.analysis.receptive` keeps two such tuples per image axis (``Field.first`` and
``Field.last``) and carries them through each op with these rules; the fast paths (one slice
for the windows inside the block of known positions, a shift for a constant pad,
``map(min/max)`` for a join) give what the one-unit-at-a-time rule gives
(``tests/test_receptive_fast.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import repeat
from operator import contains


def pick(values: list[int | None], fn) -> int | None:
    """``fn`` (min or max) of the known values, None when there are none."""
    if None not in values:  # the usual case, without a copy
        return fn(values) if values else None
    known = [v for v in values if v is not None]
    return fn(known) if known else None


def merge(seqs: list[tuple[int | None, ...]], fn) -> tuple[int | None, ...]:
    """Per unit, ``fn`` of the known values of ``seqs`` (each one value per unit)."""
    n = len(seqs[0])  # the usual case (one length, no None), checked by loops in C:
    if all(map(n.__eq__, map(len, seqs))) and not any(map(contains, seqs, repeat(None))):
        return tuple(seqs[0]) if len(seqs) == 1 else tuple(map(fn, *seqs))
    return tuple(pick(list(v), fn) for v in zip(*seqs, strict=True))


def merge_once(memo: dict, seqs: list[tuple[int | None, ...]], fn
               ) -> tuple[int | None, ...]:
    """:func:`merge`, remembered in ``memo`` by the identity of ``seqs`` (and ``fn``): the
    axes of a square map hold the same tuples (shared, not copies), so a join merges them
    once and its axes share the result. ``memo`` lives for one join only, while the tuples
    it names by ``id`` are held by its inputs."""
    key = (fn, *map(id, seqs))
    found = memo.get(key)
    if found is None:
        found = memo[key] = merge(seqs, fn)
    return found


def window_reach(reach: tuple[int | None, ...], count: int, k: int, s: int, d: int,
                 pad: int, fn) -> tuple[int | None, ...]:
    """The reach of ``count`` output units of a window (kernel ``k``, stride ``s``, dilation
    ``d``, ``pad`` before) over ``reach``: ``fn`` of the positions each window's taps read."""
    n, span = len(reach), (k - 1) * d

    def unit(u: int) -> int | None:
        a, b = u * s - pad, min(u * s - pad + span, n - 1)
        if a < 0:
            a += -(a // d) * d  # the first tap inside the input
        return pick(list(reach[a:b + 1:d]), fn) if a <= b else None

    # the usual case: reach grows with the unit index over one block of known values (None
    # only outside it: positions that read nothing but padding), so a window lying wholly
    # inside the block has its min at its first tap and its max at its last: one slice
    lo, hi = 0, n - 1
    while lo <= hi and reach[lo] is None:
        lo += 1
    while hi >= lo and reach[hi] is None:
        hi -= 1
    block = reach[lo:hi + 1]
    first, last = -(-(pad + lo) // s), min(count - 1, (hi - span + pad) // s)
    if first > last or None in block or block != tuple(sorted(block)):
        return tuple(unit(u) for u in range(count))
    off = first * s - pad + (0 if fn is min else span)
    return (*(unit(u) for u in range(first)), *reach[off:off + (last - first) * s + 1:s],
            *(unit(u) for u in range(last + 1, count)))


def gather(reach: tuple[int | None, ...], reads: Callable[[int], Iterable[int]],
           count: int, fn) -> tuple[int | None, ...]:
    """The reach of ``count`` output units, unit ``u`` reading the input units ``reads(u)``."""
    return tuple(pick([reach[v] for v in reads(u)], fn) for u in range(count))


def shift(reach: tuple[int | None, ...], lo: int, n: int, count: int
          ) -> tuple[int | None, ...]:
    """:func:`gather` through a constant pad of ``lo`` before an axis of ``n`` units: unit
    ``u`` reads unit ``u - lo`` where there is one, nothing elsewhere."""
    a, b = max(lo, 0), min(count, n + lo)
    if a >= b:
        return (None,) * count
    return (None,) * a + tuple(reach[a - lo:b - lo]) + (None,) * (count - b)

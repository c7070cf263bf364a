"""The receptive-field pass's fast paths against their one-unit-at-a-time definitions.

``window_reach`` reads one slice for the windows inside the block of known positions,
``shift`` slices through a constant pad and ``merge`` joins per-unit values with
``map(min/max)``; each must give exactly what the per-unit rule gives, None (a unit that
reads only padding) included.
"""

from __future__ import annotations

import random

import pytest

from cnnlab.analysis.reach import gather, merge, pick, shift, window_reach


def _slow_window(reach, count, k, s, d, pad, fn):
    out = []
    for u in range(count):
        taps = [reach[v] for v in range(u * s - pad, u * s - pad + (k - 1) * d + 1, d)
                if 0 <= v < len(reach)]
        out.append(pick(taps, fn))
    return tuple(out)


def _reaches(rng: random.Random):
    """Sorted reaches, with None runs at either end (padding), sometimes unsorted or holed."""
    n = rng.randint(1, 30)
    vals = sorted(rng.randint(-5, 40) for _ in range(n))
    lead, tail = rng.randint(0, 3), rng.randint(0, 3)
    reach = [None] * lead + vals + [None] * tail
    if rng.random() < 0.2:
        rng.shuffle(reach)
    if rng.random() < 0.1:
        reach[rng.randrange(len(reach))] = None
    return tuple(reach)


@pytest.mark.parametrize("seed", range(8))
def test_window_reach_equals_the_per_unit_rule(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        reach = _reaches(rng)
        k, s, d = rng.randint(1, 5), rng.randint(1, 3), rng.randint(1, 2)
        pad = rng.randint(0, (k - 1) * d)
        count = (len(reach) + 2 * pad - (k - 1) * d - 1) // s + 1
        if count <= 0:
            continue
        for fn in (min, max):
            assert window_reach(reach, count, k, s, d, pad, fn) == \
                _slow_window(reach, count, k, s, d, pad, fn)


@pytest.mark.parametrize("seed", range(4))
def test_constant_pad_shift_equals_the_gather(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        reach = _reaches(rng)
        n = len(reach)
        lo, hi = rng.randint(-3, 4), rng.randint(-3, 4)
        count = n + lo + hi
        if count <= 0:
            continue

        def clipped(o: int, lo: int = lo, n: int = n) -> list[int]:
            return [o - lo] if 0 <= o - lo < n else []

        for fn in (min, max):
            assert shift(reach, lo, n, count) == gather(reach, clipped, count, fn)


@pytest.mark.parametrize("seed", range(4))
def test_merge_equals_picking_per_unit(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        n = rng.randint(1, 20)
        seqs = [tuple(None if rng.random() < 0.1 else rng.randint(0, 50) for _ in range(n))
                for _ in range(rng.randint(1, 3))]
        for fn in (min, max):
            assert merge(seqs, fn) == tuple(pick(list(v), fn)
                                            for v in zip(*seqs, strict=True))


def _field(rng: random.Random, n: int, shift: int, period: int = 1):
    from cnnlab.analysis.receptive import Field, Periodic

    def per() -> Periodic:
        lo = tuple(None if rng.random() < 0.1 else rng.randint(-3, 3) for _ in range(period))
        return Periodic(period, shift, lo, tuple(None if v is None else v + rng.randint(0, 9)
                                                 for v in lo))

    reach = [tuple(None if rng.random() < 0.1 else rng.randint(0, 60) for _ in range(n))
             for _ in range(2)]
    glob = tuple((0, 5) if rng.random() < 0.1 else None for _ in range(2))
    return Field((None, 0, 1), (per(), per()), tuple(reach), tuple(reach), glob)


@pytest.mark.parametrize("seed", range(4))
def test_plain_join_equals_the_general_join(seed: int, monkeypatch) -> None:
    from cnnlab.analysis import receptive
    from cnnlab.ir import graph as ir

    rng = random.Random(seed)
    node = ir.Node("cat", ir.Concat(0), ())
    for _ in range(200):
        n = rng.randint(1, 12)
        ins = [_field(rng, n, rng.choice((2, 2, 2, 4)), rng.choice((1, 1, 1, 2)))
               for _ in range(rng.randint(1, 5))]
        shapes = [(rng.randint(1, 8), n, n) for _ in ins]
        out = (sum(s[0] for s in shapes), n, n)
        fast = receptive._join(node, ins, shapes, out)
        with monkeypatch.context() as m:
            m.setattr(receptive, "_plain_join", lambda *a: None)
            assert fast == receptive._join(node, ins, shapes, out)

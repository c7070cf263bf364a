"""The receptive-field pass's fast paths against their one-unit-at-a-time definitions.

``window_reach`` reads one slice for the windows inside the block of known positions,
``shift`` slices through a constant pad and ``merge`` joins per-unit values with
``map(min/max)``; each must give exactly what the per-unit rule gives, None (a unit that
reads only padding) included.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

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
    from cnnlab.analysis.field import Field, Periodic

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


def test_plain_join_of_vectors_is_left_to_the_general_join() -> None:
    """An MLP's skip connection (a vector input, no image axis): no tensor axis is mapped, so
    there are no sizes to compare (itemgetter of nothing is an error); the general join
    answers."""
    from cnnlab.analysis.field import Field
    from cnnlab.analysis.receptive import _join, _plain_join
    from cnnlab.ir import graph as ir

    f = Field((None,), (), (), (), ())
    assert _plain_join([f, f], [(16,), (16,)], (16,)) is None
    joined = _join(ir.Node("add", ir.Add(), ()), [f, f], [(16,), (16,)], (16,))
    assert joined == f


class _Net(nn.Module):
    """A random small net of the shapes the sharing of square axes and of joins meets:
    constant and asymmetric pads, strided/dilated convs and pools, DenseNet's concats, a
    residual add, an SE gate."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        k = rng.choice((1, 3, 5)), rng.choice((1, 3, 5))
        s = rng.choice(((1, 1), (2, 2), (1, 2)))
        d = rng.choice((1, 2))
        lo, hi = rng.randint(0, 2), rng.randint(0, 2)  # the same length, maybe not the same
        self.pad = nn.ZeroPad2d(rng.choice(((lo, hi, lo, hi), (lo, hi, hi, lo))))  # shift
        self.conv = nn.Conv2d(3, 8, k, s, dilation=d, padding=rng.choice((0, "same"))
                              if s == (1, 1) else 0)
        self.branch = nn.Conv2d(8, 4, rng.choice((1, 3)), padding="same")
        self.branch2 = nn.Conv2d(12, 4, rng.choice((1, 3, 5)), padding="same",
                                 dilation=rng.choice((1, 2)))
        self.pool = nn.MaxPool2d(rng.choice((2, 3)), rng.choice((1, 2)),
                                 ceil_mode=rng.random() < 0.5)
        self.gate = rng.random() < 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pad(x))
        y1 = self.branch(y)
        y2 = self.branch2(torch.cat([y, y1], 1))  # DenseNet's concats: one more input each
        y = torch.cat([y, y1, y2], 1)
        if self.gate:
            y = y * torch.sigmoid(y.mean((2, 3), keepdim=True))
        y = y + torch.relu(y)
        return self.pool(y)


def _unshared(m) -> None:
    """Turn off the sharing of twin axes and of the last join's result: every axis and every
    join worked out on its own."""
    from cnnlab.analysis import reach, receptive

    plain = receptive._plain_join
    m.setattr(receptive, "_twin", lambda *a: None)
    m.setattr(receptive, "merge_once", lambda memo, seqs, fn: reach.merge(seqs, fn))
    m.setattr(receptive, "_plain_join", lambda ins, shapes, out, memo=None: plain(ins, shapes,
                                                                                  out))


@pytest.mark.parametrize("seed", range(10))
def test_twin_axes_give_the_axis_by_axis_analysis(seed: int, monkeypatch) -> None:
    """A square map's axes share their reach tuples and results (``_twin``, ``merge_once``),
    a join starts from the last one's result when it takes the same inputs and more
    (``_plain_join``): the analysis is the one that works out every axis and every join on
    its own, square or not."""
    import cnnlab

    rng = random.Random(seed)
    net = _Net(rng).eval()
    for side in ((20, 20), (20, 17), (13, 13)):
        shape = (3, *side)
        fast = cnnlab.analyze(net, shape).to_dict()
        with monkeypatch.context() as m:
            _unshared(m)
            assert cnnlab.analyze(net, shape).to_dict() == fast


def test_twin_axes_on_the_benchmark_nets(monkeypatch) -> None:
    from zoo_nets import DenseNet121, EfficientNetB0

    import cnnlab

    for net in (EfficientNetB0().eval(), DenseNet121().eval()):
        fast = cnnlab.analyze(net, (3, 64, 64)).to_dict()
        with monkeypatch.context() as m:
            _unshared(m)
            assert cnnlab.analyze(net, (3, 64, 64)).to_dict() == fast

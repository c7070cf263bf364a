"""``Tensor.var`` / ``torch.std`` as IR reductions (EvoNorm's group standard deviation,
timm's ``regnetz_*_evos``): the correction is kept, the cost follows docs/analyze.md's rule
and the builder computes exactly what the module computes."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir.fximport import from_module
from cnnlab.models.build import build


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


CASES = [
    ("var spatial, biased", lambda x: x.var(dim=(2, 3), unbiased=False, keepdim=True),
     (3, 5, 4)),
    ("std of channels", lambda x: torch.std(x, 1), (3, 5, 4)),
    ("var correction 2", lambda x: x.var(-1, correction=2), (6, 7)),
    ("std keepdim of a group", lambda x: x.reshape(x.shape[0], 2, -1).std(
        2, keepdim=True), (4, 3, 3)),
]


@pytest.mark.parametrize("what,fn,shape", CASES, ids=[c[0] for c in CASES])
def test_built_reduction_equals_the_module(what, fn, shape) -> None:
    net = Fn(fn).eval()
    built = build(from_module(net, shape), shape, seed=0).eval()
    x = torch.randn(2, *shape, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(built.double()(x), net(x)), what


@pytest.mark.parametrize("fn,extra", [("var", 0), ("std", 1)])
def test_var_and_std_cost(fn: str, extra: int) -> None:
    """mean (sum, scale), subtract, square, sum, scale (and a root per output for std):
    MACs = elements read + 2 per output, FLOPs = 4 per element read (+ 1 per output)."""
    shape = (4, 6, 5)
    net = Fn(lambda x: getattr(x, fn)(dim=(2, 3)))
    row = analyze_graph(from_module(net, shape), shape).layers[-1]
    reads, outs = math.prod(shape), shape[0]
    assert (row.kind, row.output_shape, row.macs, row.flops) == (
        "reduce", (4,), reads + 2 * outs, 4 * reads + extra * outs)

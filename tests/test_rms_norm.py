"""RMS norm (``nn.RMSNorm``, ``F.rms_norm``) in the IR: its parameters, the cost rule of
docs/analyze.md, and a builder that computes what the module computes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport import from_module
from cnnlab.models.build import build


class Tokens(nn.Module):
    def __init__(self, norm: nn.Module | None, weight: bool = True, eps: float | None = None):
        super().__init__()
        self.norm, self.eps = norm, eps
        self.w = nn.Parameter(torch.rand(4) + 0.5) if weight else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            return self.norm(x)
        return F.rms_norm(x, (x.shape[-1],), self.w, self.eps)


CASES = [
    ("module", lambda: Tokens(nn.RMSNorm(4), False),
     ir.Norm("rms", shape=(4,), bias=False, eps=None)),
    ("module eps, no affine", lambda: Tokens(nn.RMSNorm([3, 4], eps=1e-3,
                                                        elementwise_affine=False), False),
     ir.Norm("rms", shape=(3, 4), affine=False, bias=False, eps=1e-3)),
    ("function with weight", lambda: Tokens(None, eps=1e-6),
     ir.Norm("rms", shape=(4,), bias=False, eps=1e-6)),
    ("function without weight", lambda: Tokens(None, weight=False),
     ir.Norm("rms", shape=(4,), affine=False, bias=False, eps=None)),
]


@pytest.mark.parametrize("what,make,op", CASES, ids=[c[0] for c in CASES])
def test_rms_norm_maps_builds_and_costs(what, make, op) -> None:
    shape = (3, 4)
    net = make().eval()
    graph = from_module(net, shape)
    assert graph.nodes[-1].op == op, what
    row = analyze_graph(graph, shape).layers[-1]
    n, affine = math.prod(shape), int(op.affine)
    # square, sum, (a root per group), multiply; the weight: one more multiply
    assert (row.weights, row.biases, row.macs, row.flops) == (
        affine * math.prod(op.shape), 0, n * (2 + affine), n * (3 + affine)), what
    torch.manual_seed(0)
    built = build(graph, shape, seed=0).eval()
    built.load_state_dict({k: v for k, v in zip(built.state_dict(), net.state_dict().values(),
                                                strict=True)})
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.allclose(built(x), net(x), atol=1e-6), what

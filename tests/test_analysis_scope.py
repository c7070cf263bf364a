"""The scope of one import or one analysis (``cnnlab.ir.scope.analysis_scope``): the garbage
collector is paused inside and left as it was found after, on success and on error; the
windows it remembers are dropped at its end (nothing carries over to the next analysis)."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.common.errors import CnnlabError
from cnnlab.ir import scope, shapes


class _ReadsValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # needs data: neither fx nor the meta run can capture it
            return self.conv(x)
        return x


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        seen = []
        with scope.analysis_scope():
            seen.append(gc.isenabled())
            with scope.analysis_scope():  # nested: the outer scope decides
                seen.append(gc.isenabled())
            seen.append(gc.isenabled())
        assert seen == [False, False, False]
        assert gc.isenabled() is enabled
        a = cnnlab.analyze(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()), (1, 8, 8))
        assert a.total.params == 40
        assert gc.isenabled() is enabled
        with pytest.raises(CnnlabError):
            cnnlab.analyze(_ReadsValues(), (1, 8, 8))
        assert gc.isenabled() is enabled
        assert scope.windows is None
    finally:
        gc.enable() if was else gc.disable()


def test_windows_are_remembered_inside_one_scope_only() -> None:
    from cnnlab.ir import graph as ir

    node = ir.Node("c", ir.Conv(4, (3,), padding="same"))
    with scope.analysis_scope():
        first = shapes.window_params(node, (1, 8, 8))
        assert shapes.window_params(node, (1, 8, 8)) is first
        assert shapes.window_params(node, (1, 9, 9)) is not first
    assert scope.windows is None
    again = shapes.window_params(node, (1, 8, 8))
    assert again == first and again is not first
    assert again.pads == ((1, 1), (1, 1))

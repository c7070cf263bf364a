"""Windows folded into the batch axis (cnnlab/ir/fximport_fold.py): what the IR cannot run on
folded windows is one unsupported row naming the op, the rest of the table is computed, and
unfolding gives torch's shapes back (checked against a real forward pass)."""

from __future__ import annotations

import torch
from torch import nn

import cnnlab


class ConvPerWindow(nn.Module):
    """A conv applied to each 4x4 window of the map, the windows folded into the batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.head = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, 4, 4)
        t = self.conv(t)
        y = t.view(b, h // 4, w // 4, 3, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h, w)
        return self.head(y)


def test_an_op_on_folded_windows_is_one_unsupported_row() -> None:
    net = ConvPerWindow().eval()
    a = cnnlab.analyze(net, input=(2, 8, 8))
    assert a.unsupported == ["conv"]
    assert a.layer("conv").desc == \
        "unsupported: Conv2d (Conv2d on a value folded into the batch axis)"
    with torch.no_grad():
        y = net(torch.rand(2, 2, 8, 8))
    assert (2, *a.layers[-1].output_shape) == tuple(y.shape)
    assert a.total.params == sum(p.numel() for p in net.parameters())

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


class Rolled(nn.Module):
    """Swin's shifted windows: ``torch.roll`` of the map, and of its channels."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.conv, self.conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 3)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.roll(self.conv(x), shifts=(1,) * len(self.dims), dims=self.dims)
        return self.conv2(y.roll(-1, 1))


def test_roll_moves_data_only_and_its_field_is_said_unknown_on_positions() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    on_map = cnnlab.analyze(Rolled((2, 3)).eval(), input=(2, 9, 9))
    on_channels = cnnlab.analyze(Rolled((1,)).eval(), input=(2, 9, 9))
    for a in (on_map, on_channels):
        assert a.unsupported == [] and a.total.params == 54 + 3 + 54 + 2
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            Rolled((2, 3))(torch.rand(1, 2, 9, 9))
        assert 2 * a.total.macs == counter.get_total_flops()
        assert a.layers[-1].output_shape == (2, 5, 5)
    assert on_map.layer("roll").desc == "roll axis1 by 1,axis2 by 1"
    assert on_map.layer("conv2").rf is None and "rolls a position axis" in \
        on_map.layer("conv2").rf_note
    assert on_channels.layer("conv2").rf == (5, 5)  # a roll of channels moves no position



def test_a_roll_of_a_field_that_already_covers_the_map_keeps_it() -> None:
    """The oracle (gradient footprints, numel, FlopCounterMode) is the idiom registry's
    ``roll-after-global`` (tests/coverage_idioms.py); here the row that the rule changes."""
    from coverage_idioms import RolledAfterGlobal

    a = cnnlab.analyze(RolledAfterGlobal().eval(), input=(2, 9, 9))
    assert a.unsupported == [] and a.layer("conv2").rf == (9, 9)

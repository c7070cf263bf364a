"""The analyzer's stated rules on traced modules: shared parameters, token inputs, reasons
for what is not modelled, the upsampling RF definition, whole-input fields, long specs."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from coverage_nets import ConvNeXt, GroupNormNet, MBConv, MobileNetV2, SharedConv, TextCNN, UNet
from torch import nn

import cnnlab
from cnnlab.analysis.render import table, to_json
from cnnlab.ir.shapes import parse_input
from cnnlab.models.zoo import resolve


def test_a_module_called_twice_is_listed_twice_and_counted_once() -> None:
    net = SharedConv()
    a = cnnlab.analyze(net, input=(3, 12, 12))
    first, second = a.layer("conv"), a.layer("conv#2")
    assert (first.params, second.params) == (84, 0)  # 3*3*3*3 + 3, measured below
    assert second.shared == sum(p.numel() for p in net.conv.parameters()) == 84
    assert second.shared_with == "conv"
    tied = a.layer("tied_b")
    assert (tied.shared, tied.shared_with, tied.params) == (9, "tied_a", 3)
    assert a.total.params == sum(p.numel() for p in net.parameters())
    text = table(a)
    assert "shared parameters: conv#2 reuses 84 values of conv (counted once, there)" in text


def test_token_inputs_have_fields_in_tokens() -> None:
    net = TextCNN(sizes=(2, 3))
    a = cnnlab.analyze(net, input="12:int64")
    assert a.layer("input").output_shape == (12,)
    assert a.layer("embed").output_shape == (12, 6)
    # the gradient footprint over token positions, through the embedding's output
    emb: list[torch.Tensor] = []
    handle = net.embed.register_forward_hook(
        lambda _m, _i, o: emb.append(o.detach().requires_grad_(True)) or emb[-1])
    out: dict[str, torch.Tensor] = {}
    hooks = [net.convs[i].register_forward_hook(
        lambda _m, _i, o, i=i: out.__setitem__(f"convs.{i}", o)) for i in range(2)]
    net.eval()(torch.randint(0, 50, (1, 12)))
    handle.remove()
    for h in hooks:
        h.remove()
    for name in ("convs.0", "convs.1"):
        y = out[name]
        (g,) = torch.autograd.grad(y[0, :, 4].sum(), emb[0], retain_graph=True)
        hit = torch.nonzero((g[0] != 0).any(1)).flatten()
        assert (int(hit[-1] - hit[0] + 1),) == a.layer(name).rf
        assert a.layer(name).jump == (1,)


def test_parse_input_reads_a_dtype() -> None:
    assert parse_input("50:int64") == ((50,), "int64")
    assert parse_input("3x8x8") == ((3, 8, 8), "float32")


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.shuffle = nn.PixelShuffle(2)
        self.head = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.shuffle(self.conv(x)))


def test_an_unmapped_op_has_a_one_line_reason_and_the_rest_is_computed() -> None:
    a = cnnlab.analyze(Odd(), input=(1, 8, 8))
    assert a.unsupported == ["shuffle"]
    row = a.layer("shuffle")
    assert row.desc == "unsupported: PixelShuffle (no IR op for this module)"
    assert a.layer("head").output_shape == (2, 10, 10)
    assert a.layer("head").macs == 2 * 10 * 10 * 9
    assert a.layer("head").rf is None and a.layer("head").rf_note.startswith("after shuffle")
    assert "not modelled: shuffle: PixelShuffle (no IR op for this module)" in table(a)


class Up(nn.Module):
    def __init__(self, mode: str):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


def test_upsampling_fields_are_the_largest_over_phases_with_a_fractional_jump() -> None:
    # nearest x2: output units 2i and 2i+1 read input i; a 3x3 conv after it reads 3 upsampled
    # units, i.e. 2 input pixels for an even start and 2 for an odd one: at most 2
    a = cnnlab.analyze(Up("nearest"), input=(1, 16, 16))
    assert a.layer("up").rf == (1, 1) and a.layer("up").jump == (Fraction(1, 2),) * 2
    assert a.layer("conv").rf == (2, 2)
    # bilinear: each output reads two input pixels
    b = cnnlab.analyze(Up("bilinear"), input=(1, 16, 16))
    assert b.layer("up").rf == (2, 2) and b.layer("conv").rf == (3, 3)
    assert '"jump": [\n' in to_json(b) and '"1/2"' in to_json(b)


def test_an_se_gate_makes_the_field_whole_input() -> None:
    a = cnnlab.analyze(MBConv(), input=(6, 10, 10))
    row = a.layer("mul")
    assert row.rf_note == "whole input" and row.rf == (10, 10)
    assert row.jump == (1, 1)
    assert "RF whole input" in table(a)


def test_a_long_spec_is_not_a_file_name() -> None:
    spec = " ".join(["conv3x4(padding=same) relu"] * 30) + " gap fc10"
    assert len(spec) > 255
    assert resolve(spec).spec == spec
    a = cnnlab.analyze(spec, input="3x8x8")
    assert a.layer("fc1").output_shape == (10,)


@pytest.mark.parametrize(("factory", "shape"), [
    (MobileNetV2, (3, 32, 32)), (UNet, (1, 20, 22)), (ConvNeXt, (3, 32, 32)),
    (GroupNormNet, (2, 9, 9))], ids=["mobilenetv2", "unet", "convnext", "groupnorm"])
def test_parameters_and_conv_macs_equal_torchinfo(factory, shape) -> None:
    """Where the conventions match: the total parameters, and the mult-adds of the conv
    layers (torchinfo counts a conv's MACs as ours; transposed convs and N-D Linear differ)."""
    torchinfo = pytest.importorskip("torchinfo")
    torch.manual_seed(0)
    net = factory().eval()
    a = cnnlab.analyze(net, input=shape)
    info = torchinfo.summary(net, input_size=(1, *shape), verbose=0)
    assert a.total.params == info.total_params
    convs = {r.name: r.macs for r in a.layers if r.kind == "conv"}
    seen = {}
    for layer in info.summary_list:
        if isinstance(layer.module, nn.Conv2d):
            name = next(n for n, m in net.named_modules() if m is layer.module)
            seen[name] = layer.macs
    assert len(seen) == len(convs)
    for name, macs in seen.items():
        # torchinfo adds one per output for the bias
        bias = net.get_submodule(name).bias is not None
        assert macs == convs[name] + (a.layer(name).activations if bias else 0), name

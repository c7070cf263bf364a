"""The meta-tensor capture (cnnlab.ir.capture) and the zoo of full-size hand-written CNNs.

  * on every coverage net, the run-capture gives the same rows as the torch.fx trace (names
    aside: ``x / y`` is ``div`` when run, ``truediv`` when traced), so either may be used;
  * shape-dependent Python (TF "same" padding, a size check) analyzes, where fx refuses;
  * value-dependent control flow is a one-line error naming the model's file and line;
  * ResNet-50, EfficientNet-B0, DenseNet-121, a ConvNeXt and a hybrid attention CNN are fully
    analyzed: no unsupported row, every RF known, parameters = numel, output shape and
    conv/linear/matmul/attention MACs equal a real forward under FlopCounterMode.
"""

from __future__ import annotations

import pytest
import torch
from coverage_idioms import TFSamePad
from coverage_nets import NETS
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from zoo_nets import ZOO

from cnnlab import analyze
from cnnlab.analysis.analyze import analyze_graph
from cnnlab.common.errors import CnnlabError
from cnnlab.ir.fximport import from_module


def _rows(net, shape, dtype, capture):
    a = analyze_graph(from_module(net, shape, dtype, capture=capture), shape, batch=2)
    return [(r.name.replace("truediv", "div"), r.desc, r.output_shape, r.rf, r.jump,
             r.params, r.macs, r.flops) for r in a.layers]


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=[n[0] for n in NETS])
def test_the_run_capture_equals_the_fx_trace(name, factory, shape, dtype) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    assert _rows(net, shape, dtype, "run") == _rows(net, shape, dtype, "fx")


def test_shape_dependent_python_is_captured_by_running() -> None:
    net = TFSamePad().eval()
    with pytest.raises(CnnlabError, match="cannot trace TFSamePad with torch.fx"):
        from_module(net, (3, 11, 13), capture="fx")
    a = analyze(net, (3, 12, 13))
    assert a.unsupported == [] and a.layers[1].desc == "pad constant 0:1,1"
    with torch.no_grad():
        assert (1, *a.layers[-1].output_shape) == tuple(net(torch.rand(1, 3, 12, 13)).shape)
    with pytest.raises(CnnlabError, match="expected 3 channels"):
        analyze(net, (2, 11, 13))


class ValueBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > 0:  # LINE: reads a value
            return y
        return -y


def test_value_dependent_control_flow_names_the_line() -> None:
    line = next(i for i, t in enumerate(open(__file__).read().splitlines(), 1)
                if "# LINE" in t and "next(" not in t)
    with pytest.raises(CnnlabError) as e:
        analyze(ValueBranch(), (1, 5, 5))
    text = str(e.value)
    assert "\n" not in text
    assert f"test_capture.py:{line}" in text and "meta" in text


class SplitTooFar(nn.Module):
    """A model bug: a split of 4 channels into parts of 2, unpacked into three names."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q, r = self.c(x).split(2, 1)  # SPLIT
        return p + q + r


@pytest.mark.parametrize("capture", ["auto", "fx", "run"])
def test_a_model_bug_under_fx_is_one_line_never_a_traceback(capture: str) -> None:
    """fx traces the unpacking as a third getitem that the graph cannot give; every capture
    says so in one line (auto and run: the module's own error at its line)."""
    line = next(i for i, t in enumerate(open(__file__).read().splitlines(), 1)
                if "# SPLIT" in t and "next(" not in t)
    with pytest.raises(CnnlabError) as e:
        from_module(SplitTooFar(), (1, 8, 8), capture=capture)
    text = str(e.value)
    assert "\n" not in text
    if capture == "fx":
        assert text.startswith("cannot map the traced SplitTooFar to cnnlab's layers")
    else:
        assert f"test_capture.py:{line}" in text and "not enough values to unpack" in text


def test_unknown_capture_is_an_error() -> None:
    with pytest.raises(CnnlabError, match="capture 'jit' is not one of auto, fx, run"):
        from_module(nn.Conv2d(1, 1, 1), (1, 3, 3), capture="jit")


@pytest.mark.parametrize(("name", "factory"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_nets_are_fully_analyzed(name, factory) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    shape = (3, 8, 8) if name == "hybrid-attention" else (3, 64, 64)
    a = analyze(net, shape, batch=2)
    assert a.unsupported == [] and a.total.complete and a.unused == ()
    assert [r.name for r in a.layers if r.rf is None] == []
    assert a.total.params == sum(p.numel() for p in net.parameters())
    x = torch.rand(2, *shape)
    counter = FlopCounterMode(display=False)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            y = net(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    assert (2, *a.layers[-1].output_shape) == tuple(y.shape)
    counted = ("conv", "linear", "matmul", "attention")
    assert sum(2 * r.macs for r in a.layers if r.kind in counted) == counter.get_total_flops()


class ExcludePadStrided(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)[:, :, ::2, 1:]


def test_the_builder_rebuilds_excluded_padding_and_strided_slices() -> None:
    from cnnlab.models.build import build

    net = ExcludePadStrided().eval()
    built = build(from_module(net, (2, 7, 7)), (2, 7, 7), seed=0).eval()
    x = torch.rand(2, 2, 7, 7)
    with torch.no_grad():
        assert torch.allclose(built(x), net(x))

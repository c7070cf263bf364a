"""torch.fx import: how each module, function and method maps to the IR, names, errors."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport import from_module
from cnnlab.models.resolve import analyze


class Wrap(nn.Module):
    """``fn(self, x)`` as a module; submodules given as keywords are registered."""

    def __init__(self, fn: Callable, **mods: nn.Module):
        super().__init__()
        self.fn = fn
        for name, m in mods.items():
            self.add_module(name, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def layer(m: nn.Module) -> Wrap:
    return Wrap(lambda s, x: s.layer(x), layer=m)


def ops(module: nn.Module, shape: tuple[int, ...]) -> list[ir.Op]:
    """The ops of the imported graph; an unsupported op's reason is checked elsewhere."""
    return [replace(n.op, reason="") if isinstance(n.op, ir.Unsupported) else n.op
            for n in from_module(module, shape).nodes[1:]]


def unsupported(target: str, shape: tuple[int, ...], params: int = 0) -> ir.Unsupported:
    return ir.Unsupported(target, shape, params)


P1 = ((1, 1),)
P2 = ((1, 1), (1, 1))

MODULES = [
    (nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), (3, 8, 8),
     ir.Conv(4, (3, 3), (2, 2), P2, (1, 1), 1, False)),
    (nn.Conv2d(3, 4, 4, padding="same"), (3, 8, 8),
     ir.Conv(4, (4, 4), (1, 1), "same", (1, 1), 1, True)),
    (nn.Conv1d(2, 4, 3, padding="valid", dilation=2, groups=2), (2, 9),
     ir.Conv(4, (3,), (1,), "valid", (2,), 2, True)),
    (nn.Conv3d(2, 4, (1, 3, 3), padding=(0, 1, 1)), (2, 3, 5, 5),
     ir.Conv(4, (1, 3, 3), (1, 1, 1), ((0, 0), (1, 1), (1, 1)), (1, 1, 1), 1, True)),
    (nn.MaxPool2d(2), (1, 6, 6), ir.Pool("max", (2, 2), (2, 2), "valid")),
    (nn.AvgPool1d(3, 2, 1), (1, 9), ir.Pool("avg", (3,), (2,), P1)),
    (nn.MaxPool3d(2, 1), (1, 3, 3, 3), ir.Pool("max", (2, 2, 2), (1, 1, 1), "valid")),
    (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 8, 8),
     ir.Pool("max", (3, 3), (2, 2), "valid", True)),
    (nn.AvgPool2d(3, 1, 1, count_include_pad=False), (1, 5, 5),
     ir.Pool("avg", (3, 3), (1, 1), ((1, 1), (1, 1)), exclude_pad=True)),
    (nn.AvgPool2d(3, 1, 0, count_include_pad=False), (1, 5, 5),
     ir.Pool("avg", (3, 3), (1, 1), "valid")),
    (nn.AvgPool2d(2, divisor_override=1), (1, 4, 4), unsupported("AvgPool2d", (1, 2, 2))),
    (nn.MaxPool1d(2, dilation=2), (1, 8), unsupported("MaxPool1d", (1, 3))),
    (nn.AdaptiveAvgPool2d(1), (3, 5, 5), ir.GlobalPool("avg", keepdim=True)),
    (nn.AdaptiveMaxPool1d(1), (3, 5), ir.GlobalPool("max", keepdim=True)),
    (nn.AdaptiveAvgPool2d((2, 3)), (1, 6, 6), ir.AdaptivePool("avg", (2, 3))),
    (nn.AdaptiveAvgPool2d(4), (1, 6, 6), ir.AdaptivePool("avg", (4, 4))),
    (nn.BatchNorm2d(3, eps=1e-3), (3, 4, 4), ir.BatchNorm(1e-3, 0.1)),
    (nn.BatchNorm1d(3, affine=False), (3, 4), unsupported("BatchNorm1d", (3, 4))),
    (nn.Dropout2d(0.2), (3, 4, 4), ir.Dropout(0.2)),
    (nn.Flatten(), (3, 4, 4), ir.Flatten()),
    (nn.Flatten(2), (3, 4, 4), ir.Reshape((3, 16))),
    (nn.Linear(4, 5), (4,), ir.Linear(5, True)),
    (nn.Linear(4, 5, bias=False), (3, 4), ir.Linear(5, False, last=True)),
    (nn.Softmax(dim=1), (4,), ir.Softmax()),
    (nn.Upsample(scale_factor=2), (1, 3, 3), ir.Upsample("nearest", None, (2.0, 2.0))),
    (nn.ConvTranspose2d(1, 2, 2), (1, 3, 3),
     ir.ConvTranspose(2, (2, 2), (1, 1), (0, 0), (0, 0), (1, 1), 1, True)),
    (nn.LSTM(4, 5), (3, 4), unsupported("LSTM", (3, 5), 4 * 20 + 5 * 20 + 2 * 20)),
]


# torch warns that an even kernel with padding='same' needs a padded copy; that is the point
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(("module", "shape", "op"), MODULES, ids=lambda v: repr(v)[:40])
def test_module_maps_to_op(module: nn.Module, shape: tuple[int, ...], op: ir.Op) -> None:
    assert ops(layer(module), shape) == [op]


@pytest.mark.parametrize(("cls", "fn"), [
    (nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"), (nn.GELU, "gelu"),
    (nn.ELU, "elu"), (nn.LeakyReLU, "leakyrelu"), (nn.Softplus, "softplus"),
    (nn.Identity, "identity"),
])
def test_activation_modules(cls: type, fn: str) -> None:
    assert ops(layer(cls()), (2, 3)) == [ir.Act(fn)]


ACT_CALLS = [F.relu, torch.relu, torch.tanh, torch.sigmoid, F.gelu, F.elu, F.leaky_relu,
             F.softplus, lambda x: x.relu(), lambda x: x.tanh(), lambda x: x.sigmoid()]
ACT_NAMES = ["relu", "relu", "tanh", "sigmoid", "gelu", "elu", "leakyrelu", "softplus",
             "relu", "tanh", "sigmoid"]


@pytest.mark.parametrize(("fn", "name"), list(zip(ACT_CALLS, ACT_NAMES, strict=True)))
def test_activation_functions_and_methods(fn: Callable, name: str) -> None:
    assert ops(Wrap(lambda s, x: fn(x)), (2, 3)) == [ir.Act(name)]


CALLS = [
    (lambda x: x * 0.5, (2, 3), [ir.Scale(0.5)]),
    (lambda x: 2 * x, (2, 3), [ir.Scale(2.0)]),
    (lambda x: x / 4, (2, 3), [ir.Scale(0.25)]),
    (lambda x: 4 / x, (2, 3), [ir.Binary("div", (), True)]),
    (lambda x: x + 1, (2, 3), [ir.Binary("add", ())]),
    (lambda x: 0.5 * (x + x.tanh()), (2, 3), [ir.Act("tanh"), ir.Add(), ir.Scale(0.5)]),
    (lambda x: torch.add(x, x), (2, 3), [ir.Add()]),
    (lambda x: torch.cat([x, x.relu()], 1), (2, 3), [ir.Act("relu"), ir.Concat()]),
    (lambda x: torch.cat([x, x.relu()], dim=-1), (2, 3),
     [ir.Act("relu"), ir.Concat(1)]),
    (lambda x: torch.cat([x, x.relu()], dim=0), (2, 3),
     [ir.Act("relu"), unsupported("torch.cat", (2, 3))]),
    (lambda x: x.mean((2, 3)), (3, 4, 4), [ir.GlobalPool("avg")]),
    (lambda x: x.mean(1), (3, 4, 4), [ir.Reduce("mean", (0,), False)]),
    (lambda x: x.var(dim=(2, 3), unbiased=False, keepdim=True), (3, 4, 4),
     [ir.Reduce("var", (1, 2), True, 0)]),
    (lambda x: torch.std(x, 1), (2, 5), [ir.Reduce("std", (0,), False, 1)]),
    (lambda x: x.var(1, correction=2), (2, 5), [ir.Reduce("var", (0,), False, 2)]),
    (lambda x: x.var(), (2, 5), [unsupported("Tensor.var", ())]),
    (lambda x: torch.flatten(x, 1), (3, 4, 4), [ir.Flatten()]),
    (lambda x: x.flatten(1), (3, 4, 4), [ir.Flatten()]),
    (lambda x: x.view(x.size(0), -1), (3, 4, 4), [ir.Flatten()]),
    (lambda x: x.reshape(-1, 48), (3, 4, 4), [ir.Flatten()]),
    (lambda x: x.view(1, -1), (3, 4, 4), [unsupported("Tensor.view", (96,))]),
    (lambda x: F.softmax(x, dim=1), (5,), [ir.Softmax()]),
    (lambda x: x.softmax(-1), (2, 5), [ir.Softmax(1)]),
    (lambda x: x.softmax(0), (2, 5), [unsupported("Tensor.softmax", (2, 5))]),
    (lambda x: F.dropout(x, 0.3), (5,), [ir.Dropout(0.3)]),
    (lambda x: F.max_pool2d(x, 2), (1, 4, 4), [ir.Pool("max", (2, 2), (2, 2), "valid")]),
    (lambda x: F.avg_pool2d(x, 3, stride=1, padding=1), (1, 4, 4),
     [ir.Pool("avg", (3, 3), (1, 1), P2)]),
    (lambda x: F.adaptive_avg_pool2d(x, 1), (2, 4, 4), [ir.GlobalPool("avg", keepdim=True)]),
    (lambda x: x.contiguous().relu(), (2, 3), [ir.Act("relu")]),
    (lambda x: x @ x.transpose(1, 2), (2, 3), [ir.Permute((1, 0)),
                                               ir.MatMul("iz,zj->ij")]),
]


@pytest.mark.parametrize(("fn", "shape", "expected"), CALLS)
def test_calls_map_to_ops(fn: Callable, shape: tuple[int, ...], expected: list[ir.Op]) -> None:
    assert ops(Wrap(lambda s, x: fn(x)), shape) == expected


def test_padding_mode_is_noted_and_counted_as_zero_padding() -> None:
    g = from_module(layer(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), (1, 5, 5))
    assert g.nodes[1].op == ir.Conv(2, (3, 3), (1, 1), P2, (1, 1), 1, True)
    assert g.nodes[1].origin == "layer (padding_mode=reflect, counted as zero padding)"


def test_names_are_qualified_module_paths() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2))
    g = from_module(Wrap(lambda s, x: s.features(x), features=net), (1, 5, 5))
    assert [n.name for n in g.nodes] == ["input", "features.0", "features.1", "features.2",
                                         "features.3"]
    assert g.out == "features.3"


def test_a_module_called_twice_gives_one_node_per_call() -> None:
    g = from_module(Wrap(lambda s, x: s.act(s.act(x) + x), act=nn.ReLU()), (2, 3))
    assert [(n.name, n.inputs) for n in g.nodes] == [
        ("input", ()), ("act", ("input",)), ("add", ("act", "input")), ("act#2", ("add",))]


def test_multiple_uses_of_a_value_branch_the_graph() -> None:
    def fn(s: Wrap, x: torch.Tensor) -> torch.Tensor:
        y = s.conv(x)
        return torch.cat([y, y.relu(), y * 2.0], 1)

    g = from_module(Wrap(fn, conv=nn.Conv2d(1, 2, 1)), (1, 3, 3))
    assert g.node("cat").inputs == ("conv", "relu", "mul")
    assert g.consumers("conv") == [g.node("relu"), g.node("mul"), g.node("cat")]


def test_a_parameter_used_in_forward_is_counted() -> None:
    m = Wrap(lambda s, x: s.conv(x) * s.gain, conv=nn.Conv2d(1, 3, 3))
    m.gain = nn.Parameter(torch.ones(1, 3, 1, 1))
    a = analyze(m, input=(1, 5, 5))
    assert a.layer("mul").params == 3
    assert a.total.params == sum(p.numel() for p in m.parameters()) == 33
    assert a.unsupported == []


def test_tuple_output_analyzes_the_first_tensor() -> None:
    g = from_module(Wrap(lambda s, x: (x.relu(), x.tanh())), (2, 3))
    assert g.out == "relu"


def test_train_and_eval_modes_are_restored() -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    m.train()
    m[2].eval()
    before = m[1].running_mean.clone()
    from_module(m, (1, 5, 5))
    assert [x.training for x in m.modules()] == [True, True, True, False]
    assert torch.equal(m[1].running_mean, before)  # shape propagation ran in eval mode


def _one_line_error(fn: Callable[[], object], *words: str) -> None:
    with pytest.raises(CnnlabError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_data_dependent_control_flow_is_a_one_line_error() -> None:
    def fn(s: Wrap, x: torch.Tensor) -> torch.Tensor:
        return x.relu() if x.sum() > 0 else x

    _one_line_error(lambda: from_module(Wrap(fn), (2, 3)), "cannot run Wrap",
                    "test_fximport.py:", "x.sum() > 0", "spec")


class Pair(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


@pytest.mark.parametrize(("module", "shape", "words"), [
    (nn.Conv2d(3, 4, 3), (1, 8, 8), ("Conv2d expects 3 input channels but gets 1",
                                     "check --input")),
    (nn.Linear(3, 4), (5,), ("Linear expects 3 input features (last axis) but gets 5",)),
    (nn.Conv2d(3, 4, 3), (3, 0, 8), ("must be positive",)),
    (Pair(), (3, 8), ("Pair.forward takes 2 tensors",)),
])
def test_bad_inputs_are_one_line_errors(module: nn.Module, shape: tuple[int, ...],
                                        words: tuple[str, ...]) -> None:
    _one_line_error(lambda: from_module(module, shape), *words)


@pytest.mark.parametrize("capture", ["auto", "fx", "run"])
@pytest.mark.parametrize(("layer", "shape", "words"), [
    (nn.Conv2d(3, 8, 3), (3, 2, 2), "layer body.0: kernel 3 (axis 0) is larger than its "
                                    "padded input 2"),
    (nn.MaxPool2d(4), (3, 8, 3), "layer body.0: kernel 4 (axis 1) is larger than its padded "
                                 "input 3"),
    (nn.Conv1d(2, 2, 5, dilation=2), (2, 8), "layer body.0: kernel 9"),
])
def test_a_window_larger_than_the_input_is_the_ir_s_error(capture: str, layer: nn.Module,
                                                          shape: tuple[int, ...],
                                                          words: str) -> None:
    """The module path says what the spec path says (the IR's shape rule), not torch's
    message about a 'calculated padded input size per channel'."""
    net = Wrap(lambda s, x: s.body(x), body=nn.Sequential(layer))
    _one_line_error(lambda: from_module(net, shape, capture=capture), words)


@pytest.mark.parametrize("capture", ["auto", "fx", "run"])
@pytest.mark.parametrize(("layer", "shape", "words"), [
    (nn.Conv2d(3, 8, 3), (3, 8), "Conv2d body.0 expects a channels x height x width input "
                                 "(3 axes) but gets 3x8 (2 axes); check --input"),
    (nn.MaxPool1d(2), (2, 3, 8), "MaxPool1d body.0 expects a channels x length input (2 axes) "
                                 "but gets 2x3x8 (3 axes)"),
    (nn.BatchNorm3d(3), (3, 8, 8), "BatchNorm3d body.0 expects a channels x depth x height x "
                                   "width input (4 axes) but gets 3x8x8 (3 axes)"),
])
def test_a_layer_given_the_wrong_number_of_axes_says_which(capture: str, layer: nn.Module,
                                                           shape: tuple[int, ...],
                                                           words: str) -> None:
    """torch reads a 3-D input to a Conv2d as unbatched and complains about the channels of a
    shape the user never wrote; the error names the layer and the axes it wants instead."""
    body = nn.Sequential(layer, nn.ReLU())
    net = Wrap(lambda s, x: s.body(x), body=body)
    _one_line_error(lambda: from_module(net, shape, capture=capture), words)


@pytest.mark.parametrize(("shape", "words"), [
    ((4, 8, 8), "Conv2d conv expects 3 input channels but gets 4; check --input"),
    ((3, 8), "Conv2d conv expects a channels x height x width input (3 axes)"),
])
def test_a_wrong_input_is_said_before_a_value_dependent_forward(shape, words) -> None:
    """Under a forward that reads tensor values (fx refuses it, the run would stop there),
    a wrong --input is the error, not the hint about tensor values."""
    def fn(s: Wrap, x: torch.Tensor) -> torch.Tensor:
        y = s.conv(x)
        return y.relu() if y.sum() > 0 else y

    net = Wrap(fn, conv=nn.Conv2d(3, 4, 3))
    _one_line_error(lambda: from_module(net, shape), words)


def test_an_empty_adaptive_pool_is_an_unsupported_row_with_its_reason() -> None:
    """torch allows an adaptive pool to size 0 (an empty tensor); its row says why it has no
    numbers, in the IR's words (not "layer ?", the shape rule's nameless node)."""
    g = from_module(nn.Sequential(nn.AdaptiveAvgPool2d((3, 0))), (3, 8, 8))
    op = g.nodes[-1].op
    assert isinstance(op, ir.Unsupported)
    assert op.reason == ("adaptive pool to (3, 0): every output size must be >= 1 (a 0 leaves "
                         "an empty tensor)")


def test_analyze_needs_an_input_shape_for_a_module() -> None:
    _one_line_error(lambda: analyze(nn.ReLU()), "needs input=(C, H, W)")


@pytest.mark.parametrize("capture", ["auto", "fx", "run"])
def test_iadd_and_operator_targets_are_joins(capture: str) -> None:
    """Both captures name the joins alike: the run records ``y += x`` as ``add_`` and names
    it ``add``, as fx does."""
    def fn(s: Wrap, x: torch.Tensor) -> torch.Tensor:
        y = s.conv(x)
        y += x
        return operator.add(y, y)

    g = from_module(Wrap(fn, conv=nn.Conv2d(2, 2, 3, padding=1)), (2, 4, 4), capture=capture)
    assert [n.name for n in g.nodes] == ["input", "conv", "add", "add_1"]
    assert [type(n.op) for n in g.nodes[1:]] == [ir.Conv, ir.Add, ir.Add]
    a = analyze_graph(g, (2, 4, 4))
    assert (a.layer("add_1").rf, a.layer("add_1").jump) == ((3, 3), (1, 1))

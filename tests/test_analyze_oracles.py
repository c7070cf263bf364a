"""The analyzer's numbers against independent oracles, over random architectures.

Hypothesis writes random valid specs (1D/2D/3D convs with every padding mode, dilation,
groups, pools, residual and concat blocks, fc heads); each is built with torch and:
  (a) params equal ``p.numel()`` summed over the built module, per layer and in total;
  (b) output shapes equal a real forward pass (forward hooks);
  (c) conv/linear MACs equal a count from the hooked module's weight and output tensor;
  (d) receptive field and jump equal the gradient footprint of one output unit in a
      linearised copy (max pools -> avg pools, activations -> identity, weights 1, biases 0,
      float64), where no gradient can be masked or cancel.
The same oracles run on live modules imported by torch.fx.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from arch_strategies import specs
from hypothesis import HealthCheck, given, settings
from torch import nn
from torch.nn import functional as F

from cnnlab.analysis.analyze import Analysis, analyze_graph
from cnnlab.analysis.steps import param_steps
from cnnlab.ir.fximport import from_module
from cnnlab.ir.spec import parse
from cnnlab.models import build as build_mod

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
MAXPOOLS = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU, nn.Softplus,
               nn.Dropout, nn.Softmax)
# the layers that change a field; element-wise layers repeat their input's
FIELD_KINDS = ("conv", "pool", "add", "concat", "flatten", "linear", "globalpool")
SETTINGS = settings(max_examples=35, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# ------------------------------------------------------------------ oracle helpers


def _hook_outputs(modules: dict[str, nn.Module]) -> tuple[dict[str, torch.Tensor], list]:
    outs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, n=name: outs.__setitem__(n, o))
               for name, m in modules.items()]
    return outs, handles


def _weighted(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, CONVS + (nn.Linear,))]


def _mac_oracle(m: nn.Module, out: torch.Tensor) -> int:
    """Multiplications for the whole batch, from the module's weight and its output tensor."""
    if isinstance(m, nn.Linear):
        return m.in_features * out.numel()
    return out.numel() * m.weight.shape[1] * math.prod(m.weight.shape[2:])


def _linearise(net: nn.Module) -> nn.Module:
    """A float64 copy whose gradient is positive exactly on each unit's receptive field."""
    net = copy.deepcopy(net).double().eval()
    for name, m in list(net.named_modules()):
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        attr = name.rpartition(".")[2]
        if type(m) in MAXPOOLS:
            setattr(parent, attr, MAXPOOLS[type(m)](m.kernel_size, m.stride, m.padding,
                                                    count_include_pad=True))
        elif isinstance(m, ELEMENTWISE):
            setattr(parent, attr, nn.Identity())
        elif isinstance(m, build_mod.Pad):
            m.value = 0.0
        elif isinstance(m, build_mod.GlobalPoolModule):
            m.op = "avg"
        elif isinstance(m, CONVS + (nn.Linear,)):
            with torch.no_grad():
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # mean 0, var 1, gamma 1, beta 0
    return net


def _box(grad: torch.Tensor) -> list[tuple[int, int]]:
    """Per spatial axis, (first, last) index where the gradient is non-zero."""
    mask = (grad != 0).flatten(0, 1).any(0)
    box = []
    for ax in range(mask.dim()):
        other = tuple(a for a in range(mask.dim()) if a != ax)
        idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
        box.append((int(idx[0]), int(idx[-1])) if len(idx) else (0, -1))
    return box


def _extent(box: list[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(b - a + 1 for a, b in box)


def _check_numbers(a: Analysis, modules: dict[str, nn.Module], run, batch: int) -> None:
    """Oracles (b) and (c); ``run`` does one forward pass with the hooks in place."""
    weighted = {f"{name}/{i}": m for name, mod in modules.items()
                for i, m in enumerate(_weighted(mod))}
    outs, handles = _hook_outputs({**modules, **weighted})
    run()
    for h in handles:
        h.remove()
    for name in modules:
        row = a.layer(name)
        out = outs[name][0] if isinstance(outs[name], tuple) else outs[name]  # nn.LSTM
        seen = tuple(out.shape)
        assert seen[0] == batch
        if row.kind == "globalpool" and len(row.output_shape) == 1:
            # a spec's (C,) is torch's (C, 1, ...) before flatten
            assert seen[1:2] == row.output_shape and set(seen[2:]) <= {1}, name
        else:
            assert seen[1:] == row.output_shape, name
    for key, m in weighted.items():
        name = key.rpartition("/")[0]
        assert a.layer(name).macs == _mac_oracle(m, outs[key]), name


def _check_field(a: Analysis, modules: dict[str, nn.Module], net: nn.Module,
                 shape: tuple[int, ...], names: list[str]) -> None:
    """Oracle (d) on ``names``: footprint of a central unit and its neighbour per axis."""
    outs, handles = _hook_outputs({n: modules[n] for n in names})
    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    net(x)
    for h in handles:
        h.remove()
    for name in names:
        row, y = a.layer(name), outs[name]
        if row.jump is None:
            # a vector layer's field is the union over its units (a flatten or global-pool
            # unit sees one value or channel); each fc unit sees all of it
            units = [y.sum()] + ([y[0, 0]] if row.kind == "linear" else [])
            for unit in units:
                (g,) = torch.autograd.grad(unit, x, retain_graph=True)
                assert _extent(_box(g)) == row.rf, name
            continue
        # all channels at one position: a concat's channels come from different branches
        u = tuple(max(n // 2 - 1, 0) for n in y.shape[2:])
        (g,) = torch.autograd.grad(y[(0, slice(None), *u)].sum(), x, retain_graph=True)
        box = _box(g)
        assert _extent(box) == row.rf, name
        for ax, n in enumerate(y.shape[2:]):
            if u[ax] + 1 < n:
                v = tuple(p + (i == ax) for i, p in enumerate(u))
                (g2,) = torch.autograd.grad(y[(0, slice(None), *v)].sum(), x,
                                            retain_graph=True)
                box2 = _box(g2)
                assert _extent(box2) == row.rf, name
                assert box2[ax][0] - box[ax][0] == row.jump[ax], name


# ------------------------------------------------------------------ spec oracles


@SETTINGS
@given(specs())
def test_params_shapes_and_macs_match_torch(case: tuple[str, tuple[int, ...]]) -> None:
    text, shape = case
    graph = parse(text)
    batch = 2
    a = analyze_graph(graph, shape, batch=batch)
    net = build_mod.build(graph, shape, seed=0).eval()
    for name, layer in net.layers.items():
        assert a.layer(name).params == sum(p.numel() for p in layer.parameters()), name
    assert a.total.params == sum(p.numel() for p in net.parameters())
    assert a.layer("input").output_shape == shape
    with torch.no_grad():
        _check_numbers(a, dict(net.layers), lambda: net(torch.randn(batch, *shape)), batch)


@settings(SETTINGS, max_examples=40)
@given(specs())
def test_parameter_steps_are_the_modules_tensors(case: tuple[str, tuple[int, ...]]) -> None:
    """Each step's product equals the layer's ``numel()`` sum, and the steps add to the total."""
    text, shape = case
    graph = parse(text)
    a = analyze_graph(graph, shape)
    net = build_mod.build(graph, shape, seed=0)
    steps = param_steps(a)
    for st in steps:
        numel = sum(p.numel() for p in net.layers[st.layer].parameters())
        assert st.params == numel, st
        assert st.formula.endswith(f"= {numel:,}") or st.formula.startswith(f"{numel:,} "), st
    assert sum(st.params for st in steps) == sum(p.numel() for p in net.parameters())


@settings(SETTINGS, max_examples=25)
@given(specs())
def test_receptive_field_is_the_gradient_footprint(case: tuple[str, tuple[int, ...]]) -> None:
    text, shape = case
    graph = parse(text)
    small = analyze_graph(graph, shape)
    spatial = [r for r in small.layers[1:] if r.jump is not None]
    checked = [r.name for r in spatial if r.kind in FIELD_KINDS]
    # rf and jump do not depend on the input size; a larger input puts a central unit's
    # whole field inside the image, so its footprint is not clipped
    big = tuple(max([n, *(r.rf[i] + 6 * r.jump[i] + 4 for r in spatial)])
                for i, n in enumerate(shape[1:]))
    a = analyze_graph(graph, (shape[0], *big))
    for r in spatial:
        assert (a.layer(r.name).rf, a.layer(r.name).jump) == (r.rf, r.jump)
    net = _linearise(build_mod.build(graph, (shape[0], *big)))
    _check_field(a, dict(net.layers), net, (shape[0], *big), checked)
    # vector layers: the union of every field, clipped to the (original) image
    vectors = [r.name for r in small.layers[1:] if r.jump is None and r.rf is not None]
    if vectors:
        net = _linearise(build_mod.build(graph, shape))
        _check_field(small, dict(net.layers), net, shape, vectors)


# ------------------------------------------------------------------ live modules (torch.fx)


class Block(nn.Module):
    """A ResNet basic block; a 1x1 strided conv projects the shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + shortcut)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Inception(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2)
        self.mixed = Inception(8)
        self.head = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.head(self.mixed(F.relu(self.stem(x)))))
        return self.fc(x.mean((2, 3)))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(1, 6, 5), nn.MaxPool2d(2)
        self.conv2, self.pool2 = nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 120), nn.Linear(120, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


LIVE = [(TinyResNet, (3, 32, 32)), (InceptionNet, (3, 33, 33)), (LeNet, (1, 28, 28))]


def _live(cls: type, shape: tuple[int, ...]) -> tuple[nn.Module, Analysis, dict[str, nn.Module]]:
    torch.manual_seed(0)
    module = cls().eval()
    a = analyze_graph(from_module(module, shape), shape, batch=2)
    owned = {r.name: module.get_submodule(r.name) for r in a.layers[1:]
             if r.name in dict(module.named_modules())}
    return module, a, owned


@pytest.mark.parametrize(("cls", "shape"), LIVE, ids=lambda v: getattr(v, "__name__", ""))
def test_live_module_params_shapes_and_macs(cls: type, shape: tuple[int, ...]) -> None:
    module, a, owned = _live(cls, shape)
    assert a.total.complete
    assert a.total.params == sum(p.numel() for p in module.parameters())
    for row in a.layers[1:]:
        expected = sum(p.numel() for p in owned[row.name].parameters()) if row.name in owned \
            else 0
        assert row.params == expected, row.name
    with torch.no_grad():
        _check_numbers(a, owned, lambda: module(torch.randn(2, *shape)), 2)


@pytest.mark.parametrize(("cls", "shape"), LIVE, ids=lambda v: getattr(v, "__name__", ""))
def test_live_module_receptive_fields(cls: type, shape: tuple[int, ...]) -> None:
    _, a, owned = _live(cls, shape)
    net = _linearise(cls())
    copies = {name: net.get_submodule(name) for name in owned}
    names = [n for n in owned if a.layer(n).rf is not None and a.layer(n).kind in FIELD_KINDS]
    assert any(a.layer(n).kind == "conv" for n in names)
    # the input is all ones and every weight 1, so F.relu passes every gradient
    _check_field(a, copies, net, shape, names)


def test_joins_are_traced_as_add_and_concat() -> None:
    kinds = {r.name: r.kind for r in _live(TinyResNet, (3, 32, 32))[1].layers}
    assert kinds["layer2.0.downsample.0"] == "conv"
    assert [k for k in kinds.values() if k == "add"] == ["add", "add"]
    a = _live(InceptionNet, (3, 33, 33))[1]
    cat = next(r for r in a.layers if r.kind == "concat")
    assert cat.inputs == ("mixed.b1", "mixed.b2.2", "mixed.b3.1", "mixed.b4.1")
    assert cat.output_shape == (16, 16, 16)


class Upsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.up = nn.PixelShuffle(2)
        self.conv2 = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.up(self.conv1(x)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class Spectral(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.fft.rfft(x).abs())


@pytest.mark.parametrize(("cls", "shape", "unsupported"), [
    (Upsampler, (1, 8, 8), ["up"]),
    (Recurrent, (6, 4), ["lstm"]),
    (Spectral, (2, 16), ["fft_rfft"]),
], ids=["upsample", "lstm", "fft"])
def test_unsupported_ops_are_unknown_not_zero(cls: type, shape: tuple[int, ...],
                                              unsupported: list[str]) -> None:
    module, a, owned = _live(cls, shape)
    assert a.unsupported == unsupported
    assert not a.total.complete
    for name in unsupported:
        assert (a.layer(name).macs, a.layer(name).flops) == (None, None)
    assert a.total.macs == sum(r.macs for r in a.layers if r.macs is not None)
    assert a.total.params == sum(p.numel() for p in module.parameters())
    with torch.no_grad():  # the layers after an unsupported one still get exact numbers
        _check_numbers(a, owned, lambda: module(torch.randn(2, *shape)), 2)

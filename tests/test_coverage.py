"""Every number of ``cnnlab analyze`` on 33 hand-written architectures against oracles.

For each net in :data:`coverage_nets.NETS`, imported by torch.fx (no forward pass):
  (a) parameters: the total equals ``numel`` of the distinct parameter tensors that get a
      gradient in an eval forward (shared tensors once, unused training-only ones not at all);
  (b) shapes: every row equals the tensor a real forward pass produces at that fx node
      (``fx.Interpreter`` on a separate trace);
  (c) FLOPs: conv, transposed-conv and linear rows add up to ``FlopCounterMode``;
  (d) receptive field and jump: the gradient footprint of central units in a float64 copy
      whose activations are identities, max pools average pools and weights positive; a unit
      whose footprint touches the border may be clipped, so it must be at most the RF there.
No row is unsupported and every RF is defined.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from coverage_nets import NETS
from torch import fx, nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.analysis.analyze import Analysis, analyze_graph
from cnnlab.ir.fximport import from_module
from cnnlab.ir.fximport_ops import ACT_FUNCS, ACT_METHODS, ACT_MODULES

BATCH = 2
_MAXPOOLS = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
_SOFT = (nn.Dropout, nn.Softmax, nn.PReLU, *ACT_MODULES)


def _net(factory, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return factory().eval()


def _input(shape: tuple[int, ...], dtype: str, batch: int = BATCH,
           kind: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if dtype.startswith("int"):
        return torch.randint(0, 50, (batch, *shape), generator=g)
    return (torch.rand((batch, *shape), generator=g) + 0.5).to(kind)


def _analysis(factory, shape, dtype) -> tuple[nn.Module, Analysis]:
    net = _net(factory)
    return net, analyze_graph(from_module(net, shape, dtype), shape, batch=BATCH)


IDS = [n[0] for n in NETS]


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_every_row_is_modelled(name, factory, shape, dtype) -> None:
    _, a = _analysis(factory, shape, dtype)
    assert a.unsupported == []
    assert a.total.complete
    assert [r.name for r in a.layers if r.rf is None] == []


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_parameters_are_the_tensors_used_once_each(name, factory, shape, dtype) -> None:
    net, a = _analysis(factory, shape, dtype)
    net.zero_grad(set_to_none=True)
    out = net(_input(shape, dtype))
    out.float().sum().backward()
    used = sum(p.numel() for p in net.parameters() if p.grad is not None)
    assert a.total.params == used
    assert sum(r.params for r in a.layers) == used


def _fx_shapes(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Real output shape of every fx node, keyed as the importer names rows."""
    gm = fx.symbolic_trace(net)
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    class Record(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor) and n.op in ("call_module", "call_function",
                                                          "call_method"):
                base = n.target if n.op == "call_module" else n.name
                k = calls[base] = calls.get(base, 0) + 1
                shapes[base if k == 1 else f"{base}#{k}"] = tuple(out.shape)
            return out

    with torch.no_grad():
        Record(gm).run(x)
    return shapes


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_shapes_and_memory_match_a_real_forward(name, factory, shape, dtype) -> None:
    net, a = _analysis(factory, shape, dtype)
    seen = _fx_shapes(net, _input(shape, dtype))
    checked = 0
    for row in a.layers[1:]:
        if row.name in seen:
            assert (BATCH, *row.output_shape) == seen[row.name], row.name
            assert row.activations == math.prod(seen[row.name])
            assert row.memory("fp32") == 4 * math.prod(seen[row.name])
            checked += 1
    assert checked >= len(a.layers) // 2


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_flops_match_flop_counter_mode(name, factory, shape, dtype) -> None:
    net, a = _analysis(factory, shape, dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(_input(shape, dtype))
    ours = sum(r.flops for r in a.layers if r.kind in ("conv", "deconv", "linear"))
    assert ours == counter.get_total_flops()
    assert all(r.macs * 2 == r.flops for r in a.layers if r.kind in ("conv", "deconv", "linear"))


def _linearise(net: nn.Module) -> nn.Module:
    """A float64 copy where every gradient path is positive (no masking, no cancelling)."""
    net = copy.deepcopy(net).double().eval()
    g = torch.Generator().manual_seed(2)
    for name, m in list(net.named_modules()):
        if not name:
            continue
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        attr = name.rpartition(".")[2]
        if type(m) in _MAXPOOLS:
            setattr(parent, attr, _MAXPOOLS[type(m)](m.kernel_size, m.stride, m.padding,
                                                     ceil_mode=m.ceil_mode,
                                                     count_include_pad=True))
        elif isinstance(m, nn.AdaptiveMaxPool2d):
            setattr(parent, attr, nn.AdaptiveAvgPool2d(m.output_size))
        elif isinstance(m, _SOFT):
            setattr(parent, attr, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
    return net


def _box(grad: torch.Tensor, spatial: int) -> list[tuple[int, int]]:
    mask = (grad != 0).reshape(grad.shape[0], -1, *grad.shape[grad.dim() - spatial:]).any(1)
    mask = mask.any(0)
    box = []
    for ax in range(mask.dim()):
        other = tuple(a for a in range(mask.dim()) if a != ax)
        idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
        box.append((int(idx[0]), int(idx[-1])) if len(idx) else (0, -1))
    return box


def _identity(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return x


def _avg(dims: int):
    avg = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]

    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
        return avg(x, kernel_size, stride, padding, ceil_mode, True)

    return pool


_SOFTMAX = (F.softmax, F.log_softmax, torch.softmax)  # the sum of a softmax is constant
_MAX_FUNCS = {F.max_pool1d: _avg(1), F.max_pool2d: _avg(2), F.max_pool3d: _avg(3)}


def _rf_outputs(net: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named rows; functional activations become identities and functional
    max pools average pools (the module ones are replaced by :func:`_linearise`)."""
    gm = fx.symbolic_trace(net)
    for n in gm.graph.nodes:
        if n.op == "call_function" and (n.target in ACT_FUNCS or n.target in _SOFTMAX) or \
                n.op == "call_method" and n.target in ACT_METHODS:
            n.op, n.target = "call_function", _identity
        elif n.op == "call_function" and n.target in _MAX_FUNCS:
            n.target = _MAX_FUNCS[n.target]
    gm.recompile()
    outs: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    class Record(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor) and n.op != "placeholder":
                base = n.target if n.op == "call_module" else n.name
                k = calls[base] = calls.get(base, 0) + 1
                key = base if k == 1 else f"{base}#{k}"
                if key in names:
                    outs[key] = out
            return out

    Record(gm).run(x)
    return outs


def _positions(row, sizes: list[int]) -> list[tuple[int, ...]]:
    """Central unit and the next ones along each image axis, over one period of the jump."""
    centre = tuple(n // 2 for n in sizes)
    units = [centre]
    for ax, j in enumerate(row.jump):
        steps = getattr(j, "denominator", 1)
        for i in range(1, steps + 1):
            u = list(centre)
            u[ax] += i
            if u[ax] < sizes[ax]:
                units.append(tuple(u))
    return units


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_receptive_fields_are_gradient_footprints(name, factory, shape, dtype) -> None:
    net, a = _analysis(factory, shape, dtype)
    if dtype.startswith("int"):  # token ids have no gradient: start at the embedding
        pytest.skip("covered by test_text_cnn_field_counts_tokens")
    lin = _linearise(net)
    x = _input(shape, dtype, batch=1, kind=torch.float64).requires_grad_(True)
    spatial = len(shape) - 1
    # the first and last row of every kind keeps the many backward passes few
    firsts = {r.kind: r for r in reversed(a.layers[1:]) if r.rf is not None}
    lasts = {r.kind: r for r in a.layers[1:] if r.rf is not None}
    rows = [r for r in a.layers[1:] if r in firsts.values() or r in lasts.values()]
    outs = _rf_outputs(lin, x, [r.name for r in rows])
    exact = 0
    for row in rows:
        if row.name not in outs:
            continue
        y = outs[row.name]
        if row.jump is None:
            # a vector row: the union of every unit's field
            (g,) = torch.autograd.grad(y.sum(), x, retain_graph=True)
            box = _box(g, spatial)
            assert tuple(b - a + 1 for a, b in box) == row.rf, row.name
            continue
        boxes = []
        sizes = [0] * spatial
        for t, img in enumerate(row.layout):
            if img is not None:
                sizes[img] = row.output_shape[t]
        for u in _positions(row, sizes):
            # all feature values at one position (a concat's come from several branches)
            idx = tuple(slice(None) if img is None else u[img] for img in row.layout)
            (g,) = torch.autograd.grad(y[(0, *idx)].sum(), x, retain_graph=True)
            boxes.append((u, _box(g, spatial)))
        if row.rf_note == "whole input":
            assert tuple(b - a + 1 for a, b in boxes[0][1]) == row.rf, row.name
        for ax in range(spatial):
            n = shape[1 + ax]
            inner = [bx[ax] for _, bx in boxes if bx[ax][0] > 0 and bx[ax][1] < n - 1]
            widths = [b - a + 1 for _, bx in boxes for a, b in [bx[ax]]]
            assert max(widths) <= row.rf[ax], (row.name, ax)
            if len(inner) == len(boxes):
                if row.rf_note != "whole input":
                    assert max(widths) == row.rf[ax], (row.name, ax)
                    exact += 1
                j = row.jump[ax]
                steps = getattr(j, "denominator", 1)
                along = [bx[ax][0] for u, bx in boxes
                         if all(u[i] == boxes[0][0][i] for i in range(spatial) if i != ax)]
                if len(along) == steps + 1:
                    assert along[-1] - along[0] == j * steps, (row.name, ax)
    assert exact > 0 or all(r.jump is None or r.rf_note for r in rows)


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), NETS, ids=IDS)
def test_the_builder_rebuilds_every_imported_graph(name, factory, shape, dtype) -> None:
    """IR -> nn.Module: per node, the built module's numel is the row's parameters (plus the
    values it shares) and a real forward pass gives the row's shape."""
    from cnnlab.models.build import build

    net = _net(factory)
    graph = from_module(net, shape, dtype)
    a = analyze_graph(graph, shape, batch=BATCH)
    built = build(graph, shape, seed=0).eval()
    outs: dict[str, tuple[int, ...]] = {}
    hooks = [built.layer(r.name).register_forward_hook(
        lambda _m, _i, o, n=r.name: outs.__setitem__(n, tuple(o.shape))) for r in a.layers[1:]]
    with torch.no_grad():
        built(_input(shape, dtype))
    for h in hooks:
        h.remove()
    for row in a.layers[1:]:
        numel = sum(p.numel() for p in built.layer(row.name).parameters())
        assert row.params + row.shared == numel, row.name
        assert outs[row.name] == (BATCH, *row.output_shape), row.name

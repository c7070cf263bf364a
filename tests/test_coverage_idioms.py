"""Every number of ``cnnlab analyze`` on the idioms of tests/coverage_idioms.py, by oracle.

For each module in :data:`coverage_idioms.IDIOMS` (captured as ``cnnlab.analyze`` does:
torch.fx, then the meta-tensor run where fx refuses or leaves a row unsupported):
  (a) no row is unsupported and every receptive field is defined;
  (b) parameters: the total equals ``numel`` of the distinct tensors that get a gradient in
      an eval forward; the rest is listed as not used in forward, with its size;
  (c) MACs: conv, linear, matmul and attention rows add up to ``FlopCounterMode`` / 2;
  (d) shapes: every row named after a module equals the tensor a forward hook sees there,
      and the last row the real output;
  (e) receptive fields: at rows named after modules, the gradient footprint of central units
      in a float64 copy with positive weights (tests/test_coverage.py's ``_linearise``) is at
      most the RF, equal to it away from the border, and the whole RF at a whole-input row.
"""

from __future__ import annotations

import pytest
import torch
from coverage_idioms import IDIOMS
from test_coverage import _box, _linearise, _positions
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.analysis.analyze import Analysis, analyze_graph
from cnnlab.ir.fximport import from_module

BATCH = 2
IDS = [n[0] for n in IDIOMS]
_COUNTED = ("conv", "deconv", "linear", "matmul", "attention")
# the relative-position MLP runs on a constant table: the same for every input, so no row
CONSTANT_WORK = {"swinv2-relpos": (lambda net: net.mlp(net.table),),
                 "fourier-position": (lambda net: net.proj(net.pos(8, 8, "cpu")),)}
NO_MODULE_ROWS = ("functional-norms", "fixed-filters")  # all functional: the output checks


def _analysis(factory, shape) -> tuple[torch.nn.Module, Analysis]:
    torch.manual_seed(0)
    net = factory().eval()
    return net, analyze_graph(from_module(net, shape), shape, batch=BATCH)


def _input(shape, batch=BATCH, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand((batch, *shape), generator=g) + 0.5).to(dtype)


def _module_outputs(net: torch.nn.Module, x: torch.Tensor, names: set[str]
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    outs: dict[str, torch.Tensor] = {}
    hooks = []
    for path, m in net.named_modules():
        if path in names:
            def keep(_m, _i, o, p=path):
                if isinstance(o, tuple):
                    o = o[0]
                outs.setdefault(p, o)
            hooks.append(m.register_forward_hook(keep))
    try:
        y = net(x)
    finally:
        for h in hooks:
            h.remove()
    return outs, y


@pytest.mark.parametrize(("name", "factory", "shape"), IDIOMS, ids=IDS)
def test_every_row_is_modelled(name, factory, shape) -> None:
    _, a = _analysis(factory, shape)
    assert a.unsupported == []
    assert [r.name for r in a.layers if r.rf is None] == []


@pytest.mark.parametrize(("name", "factory", "shape"), IDIOMS, ids=IDS)
def test_parameters_are_counted_or_listed_unused(name, factory, shape) -> None:
    net, a = _analysis(factory, shape)
    net.zero_grad(set_to_none=True)
    net(_input(shape)).sum().backward()
    used = sum(p.numel() for p in net.parameters() if p.grad is not None)
    unused = {n: p.numel() for n, p in net.named_parameters() if p.grad is None}
    assert a.total.params == used
    assert dict(a.unused) == unused
    assert "not used in forward" in str(a) if unused else "not used" not in str(a)


@pytest.mark.parametrize(("name", "factory", "shape"), IDIOMS, ids=IDS)
def test_macs_match_flop_counter_mode(name, factory, shape) -> None:
    net, a = _analysis(factory, shape)
    counter = FlopCounterMode(display=False)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused path is not counted
    try:
        # the math kernel of scaled dot-product attention: its two bmm are counted
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            net(_input(shape))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    constant = FlopCounterMode(display=False)
    with torch.no_grad(), constant:  # work on constants only: no row, not per sample
        for fn in CONSTANT_WORK.get(name, ()):
            fn(net)
    ours = [r for r in a.layers if r.kind in _COUNTED]
    assert sum(2 * r.macs for r in ours) == counter.get_total_flops() - \
        constant.get_total_flops()
    assert all(r.flops == 2 * r.macs for r in ours)


@pytest.mark.parametrize(("name", "factory", "shape"), IDIOMS, ids=IDS)
def test_shapes_match_forward_hooks(name, factory, shape) -> None:
    net, a = _analysis(factory, shape)
    names = {r.name for r in a.layers}
    with torch.no_grad():
        outs, y = _module_outputs(net, _input(shape), names)
    assert outs or name in NO_MODULE_ROWS
    for path, out in outs.items():
        want = tuple(out.shape)
        if want[0] != BATCH:  # windows or heads folded into the batch axis: per sample
            want = (BATCH, want[0] // BATCH, *want[1:])
        assert (BATCH, *a.layer(path).output_shape) == want, path
    assert (BATCH, *a.layer(a.layers[-1].name).output_shape) == tuple(y.shape)


@pytest.mark.parametrize(("name", "factory", "shape"), IDIOMS, ids=IDS)
def test_receptive_fields_are_gradient_footprints(name, factory, shape) -> None:
    net, a = _analysis(factory, shape)
    lin = _linearise(net)
    with torch.no_grad():  # small logits: a saturated softmax would hide keys' gradients
        for p in lin.parameters():
            p.mul_(0.1)
    x = _input(shape, batch=1, dtype=torch.float64).requires_grad_(True)
    spatial = len(shape) - 1
    rows = {r.name: r for r in a.layers[1:] if r.rf is not None}
    outs, y = _module_outputs(lin, x, set(rows))
    outs[a.layers[-1].name] = y
    checked = 0
    for key, out in outs.items():
        row = rows.get(key)
        if row is None or tuple(out.shape[1:]) != row.output_shape:
            continue
        if row.jump is None:  # a vector row: the union of every unit's field
            (g,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
            assert tuple(b - a_ + 1 for a_, b in _box(g, spatial)) == row.rf, key
            checked += 1
            continue
        sizes = [0] * spatial
        for t, img in enumerate(row.layout):
            if img is not None:
                sizes[img] = row.output_shape[t]
        for u in _positions(row, sizes):
            idx = tuple(slice(None) if img is None else u[img] for img in row.layout)
            (g,) = torch.autograd.grad(out[(0, *idx)].sum(), x, retain_graph=True)
            box = _box(g, spatial)
            widths = tuple(b - a_ + 1 for a_, b in box)
            if row.rf_note == "whole input":
                assert widths == row.rf, key
            for ax in range(spatial):
                assert widths[ax] <= row.rf[ax], (key, ax)
                if 0 < box[ax][0] and box[ax][1] < shape[1 + ax] - 1 and not row.rf_note:
                    assert widths[ax] == row.rf[ax], (key, ax)
            checked += 1
    assert checked > 0

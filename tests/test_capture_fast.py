"""Each shortcut of the meta-tensor capture (``cnnlab.ir.capture_fast.shortcut``) against the
meta kernel it skips: the same shape, dtype and strides, or None where it must not apply."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from cnnlab.ir.capture_fast import meta_copy, module_shortcut, shortcut


def _m(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


_BN = (_m(8), _m(8), _m(8), _m(8))
CASES = [
    ("relu", F.relu, lambda: (_m(2, 8, 5, 5),), {}),
    ("silu", F.silu, lambda: (_m(2, 8, 5, 5),), {}),
    ("sigmoid", torch.sigmoid, lambda: (_m(2, 8, 1, 1),), {}),
    ("relu of a permuted input", F.relu, lambda: (_m(2, 8, 5, 6).permute(0, 2, 3, 1),), {}),
    ("batch norm", F.batch_norm, lambda: (_m(2, 8, 5, 5), *_BN), {"training": False}),
    ("rms norm", F.rms_norm, lambda: (_m(2, 7, 8), (8,), _m(8)), {"eps": 1e-6}),
    ("conv", F.conv2d, lambda: (_m(2, 8, 9, 9), _m(4, 8, 3, 3), _m(4), 2, 1), {}),
    ("depthwise conv", F.conv2d, lambda: (_m(2, 8, 9, 9), _m(8, 1, 5, 5), None, 1, 2, 1, 8), {}),
    ("dilated conv", F.conv2d, lambda: (_m(2, 8, 9, 9), _m(4, 8, 3, 3)), {"dilation": 2}),
    ("adaptive avg 1", F.adaptive_avg_pool2d, lambda: (_m(2, 8, 7, 7), 1), {}),
    ("adaptive avg (3, None)", F.adaptive_avg_pool2d, lambda: (_m(2, 8, 7, 6), (3, None)), {}),
    ("adaptive avg unbatched", F.adaptive_avg_pool2d, lambda: (_m(8, 7, 7), 2), {}),
    ("adaptive avg 1d", F.adaptive_avg_pool1d, lambda: (_m(2, 8, 10), 3), {}),
    ("adaptive avg 3d", F.adaptive_avg_pool3d, lambda: (_m(2, 8, 4, 6, 6), (2, None, 3)), {}),
    ("pad", F.pad, lambda: (_m(2, 8, 9, 9), [0, 1, 0, 1]), {}),
    ("pad crop", F.pad, lambda: (_m(2, 8, 9, 9), [-1, 0, 2, 0]), {}),
    ("pad 1d value", F.pad, lambda: (_m(2, 3, 10), [2, 3]), {"value": 1.0}),
    ("pad one channel", F.pad, lambda: (_m(2, 1, 1, 1), [0, 1, 0, 1]), {}),
    ("cat", torch.cat, lambda: ([_m(2, 3, 4, 4), _m(2, 5, 4, 4)], 1), {}),
    ("cat dim=-1", torch.cat, lambda: ([_m(2, 3, 4, 4), _m(2, 3, 4, 2)],), {"dim": -1}),
    ("add broadcast", torch.add, lambda: (_m(2, 8, 5, 5), _m(8, 1, 1)), {}),
    ("mul method", torch.Tensor.mul, lambda: (_m(2, 8, 5, 5), _m(2, 8, 1, 1)), {}),
    ("add scalar", torch.Tensor.__add__, lambda: (_m(2, 8, 5, 5), 1.0), {}),
]


@pytest.mark.parametrize("what,func,make,kwargs", CASES, ids=[c[0] for c in CASES])
def test_shortcut_equals_the_meta_kernel(what, func, make, kwargs) -> None:
    args = make()
    got = shortcut(func, args, kwargs)
    assert got is not None, what
    want = func(*args, **kwargs)
    assert (tuple(got.shape), got.dtype, got.stride(), got.device.type) == \
        (tuple(want.shape), want.dtype, want.stride(), "meta")


def test_in_place_methods_return_their_input() -> None:
    x = _m(2, 8, 5, 5)
    assert shortcut(torch.Tensor.add_, (x, _m(8, 1, 1)), {}) is x
    assert shortcut(torch.Tensor.add_, (x, _m(2, 8, 5, 6)), {}) is None  # does not fit x


FALLBACKS = [
    ("reflect pad", F.pad, lambda: (_m(2, 8, 9, 9), [1, 1, 1, 1]), {"mode": "reflect"}),
    ("zero pad", F.pad, lambda: (_m(2, 8, 9, 9), [0, 0, 0, 0]), {}),
    ("pad to nothing", F.pad, lambda: (_m(2, 8, 9, 9), [-5, -5]), {}),
    ("cat of two dtypes", torch.cat, lambda: ([_m(2, 3, 4), _m(2, 3, 4, dtype=torch.half)],),
     {}),
    ("cat of other sizes", torch.cat, lambda: ([_m(2, 3, 4), _m(2, 3, 5)], 1), {}),
    ("adaptive to 0", F.adaptive_avg_pool2d, lambda: (_m(2, 8, 7, 7), 0), {}),
    ("adaptive of a permuted input", F.adaptive_avg_pool2d,
     lambda: (_m(2, 8, 7, 7).permute(0, 2, 3, 1), 1), {}),
    ("conv with padding='same'", F.conv2d, lambda: (_m(2, 8, 9, 9), _m(4, 8, 3, 3)),
     {"padding": "same"}),
    ("add of two dtypes", torch.add, lambda: (_m(2, 8), _m(2, 8, dtype=torch.half)), {}),
    ("add that does not broadcast", torch.add, lambda: (_m(2, 8), _m(2, 7)), {}),
]


@pytest.mark.parametrize("what,func,make,kwargs", FALLBACKS, ids=[c[0] for c in FALLBACKS])
def test_other_calls_run_their_meta_kernel(what, func, make, kwargs) -> None:
    assert shortcut(func, make(), kwargs) is None, what


COPIES = [
    ("conv weight", lambda: torch.nn.Parameter(torch.rand(4, 3, 3, 3))),
    ("meta parameter", lambda: torch.nn.Parameter(torch.empty(8, device="meta"))),
    ("counter buffer", lambda: torch.tensor(0, dtype=torch.long)),
    ("size-1 dims, odd strides", lambda: torch.rand(4, 1, 3)[:, :, :].as_strided(
        (4, 1, 3), (3, 7, 1))),
    ("channels last", lambda: torch.rand(2, 3, 4, 5).to(memory_format=torch.channels_last)),
    ("transposed", lambda: torch.rand(3, 5).t()),
    ("strided slice", lambda: torch.rand(10)[::2]),
    ("empty", lambda: torch.rand(0, 3)),
    ("half", lambda: torch.rand(2, 3).half()),
]
COPIES += [(f"{what} on meta", lambda make=make: make().to("meta")) for what, make in COPIES]


@pytest.mark.parametrize("what,make", COPIES, ids=[c[0] for c in COPIES])
def test_meta_copy_equals_empty_like(what, make) -> None:
    t = make()
    got, want = meta_copy(t), torch.empty_like(t, device="meta")
    assert (type(got), tuple(got.shape), got.stride(), got.dtype, got.device.type,
            got.requires_grad) == (type(want), tuple(want.shape), want.stride(), want.dtype,
                                   "meta", want.requires_grad), what


def _on_meta(m: nn.Module) -> nn.Module:
    return m.to("meta").eval()  # as a capture runs it: eval, meta parameters and buffers


MODULES = [
    ("relu", lambda: nn.ReLU(), (2, 8, 5, 5)),
    ("relu in place", lambda: nn.ReLU(inplace=True), (2, 8, 5, 5)),
    ("silu", lambda: nn.SiLU(), (2, 8, 5, 5)),
    ("silu in place", lambda: nn.SiLU(inplace=True), (2, 8, 5, 5)),
    ("gelu", lambda: nn.GELU(), (2, 7, 16)),
    ("hardswish in place", lambda: nn.Hardswish(inplace=True), (2, 8, 3, 3)),
    ("leaky relu", lambda: nn.LeakyReLU(0.1), (4, 10)),
    ("sigmoid", lambda: nn.Sigmoid(), (2, 8, 1, 1)),
    ("identity", lambda: nn.Identity(), (2, 8, 5, 5)),
    ("dropout", lambda: nn.Dropout(0.3), (2, 8)),
    ("dropout2d", lambda: nn.Dropout2d(0.3), (2, 8, 5, 5)),
    ("dropout1d", lambda: nn.Dropout1d(0.3), (2, 8, 5)),
    ("dropout3d", lambda: nn.Dropout3d(0.3), (2, 8, 3, 5, 5)),
    ("conv2d", lambda: nn.Conv2d(8, 4, 3, 2, 1), (2, 8, 9, 9)),
    ("conv2d depthwise dilated", lambda: nn.Conv2d(8, 8, 3, 1, 2, 2, groups=8), (2, 8, 9, 7)),
    ("conv2d no bias", lambda: nn.Conv2d(8, 4, (1, 3), (1, 2), bias=False), (1, 8, 4, 9)),
    ("conv1d", lambda: nn.Conv1d(3, 5, 4, 2), (2, 3, 11)),
    ("conv3d", lambda: nn.Conv3d(2, 3, 3, padding=1), (1, 2, 4, 5, 6)),
    ("batch norm 2d", lambda: nn.BatchNorm2d(8), (2, 8, 5, 5)),
    ("batch norm 1d of vectors", lambda: nn.BatchNorm1d(8), (2, 8)),
    ("batch norm 1d of sequences", lambda: nn.BatchNorm1d(8), (2, 8, 7)),
    ("batch norm 3d", lambda: nn.BatchNorm3d(3), (1, 3, 2, 4, 4)),
    ("linear", lambda: nn.Linear(10, 4), (2, 10)),
    ("linear on tokens", lambda: nn.Linear(10, 4, bias=False), (2, 7, 10)),
]


@pytest.mark.parametrize("what,make,shape", MODULES, ids=[c[0] for c in MODULES])
def test_module_shortcut_equals_the_module_s_run(what, make, shape) -> None:
    """The output a capture builds for a leaf without running it: the shape, dtype and
    strides of the real call, and the input itself exactly where the real call returns it."""
    m, x = _on_meta(make()), _m(*shape)
    got = module_shortcut(m, x)
    assert got is not None, what
    want = m(x)
    assert (tuple(got.shape), got.dtype, got.stride(), got.device.type, got is x) == \
        (tuple(want.shape), want.dtype, want.stride(), "meta", want is x), what


@settings(max_examples=60, deadline=None)
@given(dims=st.integers(1, 3), cin=st.integers(1, 4), mult=st.integers(1, 3),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       depthwise=st.booleans(), size=st.integers(1, 12))
def test_conv_module_shortcut_equals_the_conv_on_any_geometry(dims, cin, mult, k, s, p, d,
                                                              depthwise, size) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    groups = cin if depthwise else 1
    m = _on_meta(conv(cin, cin * mult, k, s, p, d, groups=groups))
    x = _m(2, cin, *(size,) * dims)
    try:
        want = m(x)
    except RuntimeError:  # the window does not fit: the shortcut leaves it to the module
        assert module_shortcut(m, x) is None
        return
    got = module_shortcut(m, x)
    assert got is not None
    assert (tuple(got.shape), got.stride()) == (tuple(want.shape), want.stride())


class SubConv(nn.Conv2d):
    """Not exactly nn.Conv2d: its forward may do anything."""


def _own_forward(m: nn.Module) -> nn.Module:
    m.forward = lambda x: x * 2  # as some libraries patch one instance
    return m


MODULE_FALLBACKS = [
    ("wrong channels", lambda: _on_meta(nn.Conv2d(3, 4, 3)), lambda: _m(2, 4, 9, 9)),
    ("wrong rank", lambda: _on_meta(nn.Conv2d(3, 4, 3)), lambda: _m(3, 9, 9)),
    ("padding='same'", lambda: _on_meta(nn.Conv2d(3, 4, 3, padding="same")),
     lambda: _m(2, 3, 9, 9)),
    ("reflect padding", lambda: _on_meta(nn.Conv2d(3, 4, 3, padding=1,
                                                   padding_mode="reflect")),
     lambda: _m(2, 3, 9, 9)),
    ("window too big", lambda: _on_meta(nn.Conv2d(3, 4, 5)), lambda: _m(2, 3, 3, 3)),
    ("weights on the CPU", lambda: nn.Conv2d(3, 4, 3).eval(), lambda: _m(2, 3, 9, 9)),
    ("half input", lambda: _on_meta(nn.Conv2d(3, 4, 3)),
     lambda: _m(2, 3, 9, 9, dtype=torch.half)),
    ("a subclass", lambda: _on_meta(SubConv(3, 4, 3)), lambda: _m(2, 3, 9, 9)),
    ("training mode", lambda: nn.BatchNorm2d(3).to("meta"), lambda: _m(2, 3, 4, 4)),
    ("batch norm without running stats",
     lambda: _on_meta(nn.BatchNorm2d(3, track_running_stats=False)), lambda: _m(2, 3, 4, 4)),
    ("batch norm 2d of a 3-D input", lambda: _on_meta(nn.BatchNorm2d(3)), lambda: _m(2, 3, 4)),
    ("permuted input", lambda: _on_meta(nn.ReLU()), lambda: _m(2, 3, 4, 5).permute(0, 2, 3, 1)),
    ("integer input", lambda: _on_meta(nn.ReLU()), lambda: _m(2, 3, dtype=torch.long)),
    ("empty input", lambda: _on_meta(nn.ReLU()), lambda: _m(0, 3)),
    ("CPU input", lambda: nn.ReLU(), lambda: torch.zeros(2, 3)),
    ("linear of other features", lambda: _on_meta(nn.Linear(4, 2)), lambda: _m(2, 5)),
    ("a forward set on the instance", lambda: _own_forward(_on_meta(nn.ReLU())),
     lambda: _m(2, 3)),
    ("max pool (not shortcut)", lambda: _on_meta(nn.MaxPool2d(2)), lambda: _m(2, 3, 4, 4)),
]


def test_a_patched_class_forward_runs(monkeypatch) -> None:
    """A library that wraps ``nn.ReLU.forward`` after cnnlab was imported gets its forward
    run, not the shortcut's idea of a ReLU."""
    m, x = _on_meta(nn.ReLU()), _m(2, 3)
    assert module_shortcut(m, x) is not None
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, x: x * 2)
    assert module_shortcut(m, x) is None


@pytest.mark.parametrize("what,make,make_x", MODULE_FALLBACKS,
                         ids=[c[0] for c in MODULE_FALLBACKS])
def test_other_leaves_run_their_forward(what, make, make_x) -> None:
    assert module_shortcut(make(), make_x()) is None, what

"""Each shortcut of the meta-tensor capture (``cnnlab.ir.capture_fast.shortcut``) against the
meta kernel it skips: the same shape, dtype and strides, or None where it must not apply."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cnnlab.ir.capture_fast import meta_copy, shortcut


def _m(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


_BN = (_m(8), _m(8), _m(8), _m(8))
CASES = [
    ("relu", F.relu, lambda: (_m(2, 8, 5, 5),), {}),
    ("silu", F.silu, lambda: (_m(2, 8, 5, 5),), {}),
    ("sigmoid", torch.sigmoid, lambda: (_m(2, 8, 1, 1),), {}),
    ("relu of a permuted input", F.relu, lambda: (_m(2, 8, 5, 6).permute(0, 2, 3, 1),), {}),
    ("batch norm", F.batch_norm, lambda: (_m(2, 8, 5, 5), *_BN), {"training": False}),
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

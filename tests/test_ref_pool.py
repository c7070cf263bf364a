"""cnnlab.ref.pool against torch's pools (forward and autograd) and its naive loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.ref.padding import explicit_pads
from cnnlab.ref.pool import (
    avg_pool,
    max_pool,
    pool_backward,
    pool_backward_naive,
    pool_forward,
    pool_forward_naive,
)

SETTINGS = settings(max_examples=30, deadline=None)
TORCH_POOL = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("max", 3): F.max_pool3d,
              ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d, ("avg", 3): F.avg_pool3d}


@st.composite
def pool_case(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims)))
    stride = draw(st.one_of(st.none(), st.lists(st.integers(1, 3), min_size=dims,
                                                 max_size=dims).map(tuple)))
    padding = draw(st.sampled_from(["valid", "same", "full", "explicit"]))
    if padding == "explicit":
        padding = tuple(draw(st.tuples(st.integers(0, 1), st.integers(0, 1)))
                        for _ in range(dims))
    cap = 6 if dims < 3 else 4
    size = tuple(k + draw(st.integers(0, cap - 1)) for k in kernel)
    op = draw(st.sampled_from(["max", "avg"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size))
    return x, op, kernel, stride, padding, rng


def torch_pool(xt, op, kernel, stride, pads):
    flat = tuple(v for lo_hi in reversed(pads) for v in lo_hi)
    xp = F.pad(xt, flat, value=float("-inf") if op == "max" else 0.0)
    return TORCH_POOL[op, xt.dim() - 2](xp, kernel, stride if stride is not None else kernel)


@SETTINGS
@given(pool_case())
def test_fast_equals_naive(case):
    x, op, kernel, stride, padding, rng = case
    out, cache = pool_forward(x, op, kernel, stride, padding)
    ref, rcache = pool_forward_naive(x, op, kernel, stride, padding)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-13)
    d = rng.standard_normal(out.shape)
    np.testing.assert_allclose(pool_backward(d, cache), pool_backward_naive(d, rcache),
                               rtol=1e-13, atol=1e-13)


@SETTINGS
@given(pool_case())
def test_matches_torch_forward_and_autograd(case):
    x, op, kernel, stride, padding, rng = case
    out, cache = pool_forward(x, op, kernel, stride, padding)
    pads = explicit_pads(padding, x.shape[2:], kernel, stride or kernel, (1,) * len(kernel))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_pool(xt, op, kernel, stride, pads)
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(out.shape)
    yt.backward(torch.tensor(d))
    np.testing.assert_allclose(pool_backward(d, cache), xt.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


def test_torch_native_padding_agrees():
    """Symmetric padding inside torch's own pooling (count_include_pad=True) gives the same."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 7))
    xt = torch.tensor(x)
    np.testing.assert_allclose(avg_pool(x, 3, stride=2, padding=1),
                               F.avg_pool2d(xt, 3, 2, padding=1).numpy(), atol=1e-12)
    np.testing.assert_allclose(max_pool(x, 3, stride=2, padding=1),
                               F.max_pool2d(xt, 3, 2, padding=1).numpy(), atol=1e-12)


def test_exact_values_and_tie_rule():
    x = np.array([[[[1.0, 2, 5, 5], [3, 4, 5, 1], [0, 0, -1, -2], [0, 0, -3, -4]]]])
    out, cache = pool_forward(x, "max", 2)
    assert out[0, 0].tolist() == [[4, 5], [0, -1]]
    dx = pool_backward(np.ones_like(out), cache)
    # ties (5, 5, 5 and the four zeros) send the gradient to the first maximum, like torch
    assert dx[0, 0].tolist() == [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert avg_pool(x, 2)[0, 0].tolist() == [[2.5, 4], [0, -2.5]]


def test_numeric_gradient_of_avg_and_max():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 5, 4))
    for op in ("max", "avg"):
        out, cache = pool_forward(x, op, (2, 3), (1, 1), "same")
        d = rng.standard_normal(out.shape)
        dx = pool_backward(d, cache)
        num = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            e = np.zeros_like(x)
            e[idx] = 1e-6
            num[idx] = (np.sum(pool_forward(x + e, op, (2, 3), (1, 1), "same")[0] * d)
                        - np.sum(pool_forward(x - e, op, (2, 3), (1, 1), "same")[0] * d)) / 2e-6
        np.testing.assert_allclose(dx, num, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(CnnlabError, match="op must be"):
        pool_forward(np.zeros((1, 1, 4, 4)), "median", 2)
    with pytest.raises(CnnlabError, match="larger than the padded input"):
        pool_forward(np.zeros((1, 1, 2, 2)), "max", 3)
    with pytest.raises(CnnlabError, match=r"\(N, C, \*spatial\)"):
        pool_forward(np.zeros((4, 4)), "max", 2)

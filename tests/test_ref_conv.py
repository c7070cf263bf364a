"""cnnlab.ref.padding and cnnlab.ref.conv against numpy, torch, scipy and their own naive loops."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sig
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.ref import padding as P
from cnnlab.ref.conv import (
    conv_backward,
    conv_backward_naive,
    conv_forward,
    conv_forward_naive,
    convolve,
    correlate,
)

SETTINGS = settings(max_examples=30, deadline=None)
NUMPY_NAME = {"zero": "constant", "reflect": "reflect", "symmetric": "symmetric",
              "replicate": "edge", "circular": "wrap"}
TORCH_NAME = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}
NDIMAGE_NAME = {"zero": "constant", "reflect": "mirror", "symmetric": "reflect",
                "replicate": "nearest", "circular": "wrap"}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def torch_pads(pads):
    return tuple(v for lo_hi in reversed(pads) for v in lo_hi)


# ---------------------------------------------------------------------------- padding


@SETTINGS
@given(st.data())
def test_pad_matches_numpy_and_its_adjoint(data):
    dims = data.draw(st.integers(1, 3))
    shape = (2, *data.draw(st.lists(st.integers(1, 5), min_size=dims, max_size=dims)))
    pads = tuple(data.draw(st.tuples(st.integers(0, 7), st.integers(0, 7))) for _ in range(dims))
    mode = data.draw(st.sampled_from(P.FILL_MODES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal(shape)
    got = P.pad(x, pads, mode)
    padded_unit = any(n == 1 and (lo or hi) for n, (lo, hi) in zip(shape[1:], pads, strict=True))
    if mode == "reflect" and padded_unit:
        # numpy cannot reflect a length-1 axis (no neighbour); the periodic map repeats it
        assert np.all(np.isfinite(got))
    else:
        np.testing.assert_array_equal(got, np.pad(x, [(0, 0), *pads], NUMPY_NAME[mode]))
    g = rng.standard_normal(got.shape)
    # adjoint: <pad(x), g> = <x, pad_backward(g)>
    assert np.isclose(np.sum(got * g), np.sum(x * P.pad_backward(g, pads, mode)))


@SETTINGS
@given(st.data())
def test_pad_and_backward_match_torch(data):
    mode = data.draw(st.sampled_from(sorted(TORCH_NAME)))
    dims = data.draw(st.integers(1, 3))
    size = data.draw(st.lists(st.integers(2, 5), min_size=dims, max_size=dims))
    # torch: reflect needs pad < n, circular pad <= n
    limit = [n - 1 if mode == "reflect" else n for n in size]
    pads = tuple(data.draw(st.tuples(st.integers(0, m), st.integers(0, m))) for m in limit)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal((1, 2, *size))
    xt = torch.tensor(x, requires_grad=True)
    yt = F.pad(xt, torch_pads(pads), mode=TORCH_NAME[mode])
    np.testing.assert_array_equal(P.pad(x, pads, mode), yt.detach().numpy())
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(P.pad_backward(g, pads, mode), xt.grad.numpy(), atol=1e-12)


def test_padding_names_and_the_mirror_ambiguity():
    assert P.fill_mode("wrap") == "circular"
    assert P.fill_mode("edge") == P.fill_mode("nearest") == "replicate"
    assert P.fill_mode("constant") == "zero"
    with pytest.raises(CnnlabError, match="ambiguous"):
        P.fill_mode("mirror")
    with pytest.raises(CnnlabError, match="unknown padding"):
        P.fill_mode("bogus")
    row = np.array([1.0, 2, 3, 4])
    assert P.pad(row, ((2, 2),), "reflect").tolist() == [3, 2, 1, 2, 3, 4, 3, 2]
    assert P.pad(row, ((2, 2),), "symmetric").tolist() == [2, 1, 1, 2, 3, 4, 4, 3]


# ------------------------------------------------------------------------ conv configs


@st.composite
def conv_case(draw, max_dims=3, groups=True):
    dims = draw(st.integers(1, max_dims))
    g = draw(st.sampled_from([1, 2])) if groups else 1
    cin = g * draw(st.integers(1, 2))
    f = g * draw(st.integers(1, 2))
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims)))
    stride = tuple(draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims)))
    dil = tuple(draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims)))
    padding = draw(st.sampled_from(["valid", "same", "full", "explicit"]))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dil, strict=True)]
    cap = 6 if dims < 3 else 4
    size = tuple(sp + draw(st.integers(0, cap - 1)) for sp in span)
    if padding == "explicit":
        padding = tuple(draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
                        for _ in range(dims))
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size))
    w = rng.standard_normal((f, cin // g, *kernel))
    b = rng.standard_normal(f) if draw(st.booleans()) else None
    kw = dict(stride=stride, padding=padding, dilation=dil, groups=g)
    return x, w, b, kw, rng


@SETTINGS
@given(conv_case(), st.sampled_from(P.FILL_MODES), st.sampled_from(["corr", "conv"]))
def test_fast_equals_naive(case, mode, op):
    x, w, b, kw, rng = case
    out, cache = conv_forward(x, w, b, pad_mode=mode, op=op, **kw)
    ref, rcache = conv_forward_naive(x, w, b, pad_mode=mode, op=op, **kw)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    grads = zip(conv_backward(dout, cache), conv_backward_naive(dout, rcache), strict=True)
    for got, want in grads:
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_case())
def test_forward_and_backward_match_torch_autograd(case):
    x, w, b, kw, rng = case
    out, cache = conv_forward(x, w, b, **kw)
    dims = x.ndim - 2
    pads = P.explicit_pads(kw["padding"] if isinstance(kw["padding"], str) else kw["padding"],
                           x.shape[2:], w.shape[2:], kw["stride"], kw["dilation"])
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    yt = TORCH_CONV[dims](F.pad(xt, torch_pads(pads)), wt, bt, stride=kw["stride"],
                          dilation=kw["dilation"], groups=kw["groups"])
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    yt.backward(torch.tensor(dout))
    dx, dw, db = conv_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    if b is not None:
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(conv_case(max_dims=3, groups=False), st.sampled_from(sorted(TORCH_NAME)))
def test_non_zero_fill_matches_torch_pad_then_conv(case, mode):
    x, w, b, kw, rng = case
    pads = P.explicit_pads(kw["padding"], x.shape[2:], w.shape[2:], kw["stride"],
                           kw["dilation"])
    widest = max(max(lo, hi) - n for n, (lo, hi) in zip(x.shape[2:], pads, strict=True))
    assume(widest < (0 if mode == "reflect" else 1))  # torch: reflect pad < n, circular <= n
    out, cache = conv_forward(x, w, b, pad_mode=mode, **kw)
    xt = torch.tensor(x, requires_grad=True)
    xp = F.pad(xt, torch_pads(pads), mode=TORCH_NAME[mode]) if any(map(any, pads)) else xt
    yt = TORCH_CONV[x.ndim - 2](xp, torch.tensor(w), None if b is None else torch.tensor(b),
                                stride=kw["stride"], dilation=kw["dilation"])
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(conv_backward(dout, cache)[0], xt.grad.numpy(), atol=1e-10)


# ------------------------------------------------------------------------------ scipy


@SETTINGS
@given(st.data())
def test_single_channel_matches_scipy_signal(data):
    dims = data.draw(st.integers(1, 3))
    size = data.draw(st.lists(st.integers(3, 6), min_size=dims, max_size=dims))
    kern = data.draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    f, k = rng.standard_normal(size), rng.standard_normal(kern)
    for mode in ("valid", "full"):
        np.testing.assert_allclose(convolve(f[None, None], k[None, None], padding=mode)[0, 0],
                                   sig.convolve(f, k, mode=mode, method="direct"), atol=1e-12)
        np.testing.assert_allclose(correlate(f[None, None], k[None, None], padding=mode)[0, 0],
                                   sig.correlate(f, k, mode=mode, method="direct"), atol=1e-12)


@SETTINGS
@given(st.data())
def test_same_padding_matches_scipy_ndimage_in_every_mode(data):
    dims = data.draw(st.integers(1, 3))
    size = data.draw(st.lists(st.integers(3, 6), min_size=dims, max_size=dims))
    # odd kernels: then ndimage's centre and the 'same' split agree
    kern = [2 * v + 1 for v in data.draw(st.lists(st.integers(0, 1), min_size=dims,
                                                  max_size=dims))]
    mode = data.draw(st.sampled_from(P.FILL_MODES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    f, k = rng.standard_normal(size), rng.standard_normal(kern)
    got_conv = convolve(f[None, None], k[None, None], padding="same", pad_mode=mode)[0, 0]
    got_corr = correlate(f[None, None], k[None, None], padding="same", pad_mode=mode)[0, 0]
    np.testing.assert_allclose(got_conv, ndi.convolve(f, k, mode=NDIMAGE_NAME[mode]),
                               atol=1e-12)
    np.testing.assert_allclose(got_corr, ndi.correlate(f, k, mode=NDIMAGE_NAME[mode]),
                               atol=1e-12)


def test_true_convolution_is_eth_problem_1_formula():
    """(f*k)(x,y) = sum_{u=-p..p} sum_{v=-q..q} f(x-u, y-v) k(u,v), valid positions only."""
    rng = np.random.default_rng(5)
    f = rng.integers(-5, 6, size=(6, 7)).astype(float)
    kc = rng.integers(-3, 4, size=(3, 5)).astype(float)  # p = 1, q = 2
    p, q = 1, 2
    k = {(u, v): kc[u + p, v + q] for u in range(-p, p + 1) for v in range(-q, q + 1)}
    want = np.array([[sum(f[x - u, y - v] * k[u, v] for (u, v) in k)
                      for y in range(q, 7 - q)] for x in range(p, 6 - p)])
    got = convolve(f[None, None], kc[None, None])[0, 0]
    np.testing.assert_array_equal(got, want)  # integers: exact
    assert got.shape == (6 - 2 * p, 7 - 2 * q)
    # correlation is convolution with the kernel flipped
    np.testing.assert_array_equal(correlate(f[None, None], kc[::-1, ::-1][None, None])[0, 0],
                                  want)


# ------------------------------------------------------------------- numeric gradients


def numeric_grad(fn, arr, eps=1e-6):
    g = np.zeros_like(arr)
    for idx in np.ndindex(*arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        hi = fn()
        arr[idx] = old - eps
        lo = fn()
        arr[idx] = old
        g[idx] = (hi - lo) / (2 * eps)
    return g


@settings(max_examples=10, deadline=None)
@given(conv_case(max_dims=2), st.sampled_from(P.FILL_MODES), st.sampled_from(["corr", "conv"]))
def test_numeric_gradient_float64(case, mode, op):
    x, w, b, kw, rng = case
    out, cache = conv_forward(x, w, b, pad_mode=mode, op=op, **kw)
    dout = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(conv_forward(x, w, b, pad_mode=mode, op=op, **kw)[0] * dout))

    dx, dw, db = conv_backward(dout, cache)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), atol=1e-6)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), atol=1e-6)
    if b is not None:
        np.testing.assert_allclose(db, numeric_grad(loss, b), atol=1e-6)


def test_backward_twice_on_one_cache_and_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out, cache = conv_forward(x, w, padding="same")
    assert out.dtype == np.float32
    d = rng.standard_normal(out.shape).astype(np.float32)
    first, second = conv_backward(d, cache), conv_backward(d, cache)
    for a, b in zip(first, second, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_bad_shapes_raise_cnnlab_error():
    x = np.zeros((1, 3, 5, 5))
    with pytest.raises(CnnlabError, match="groups"):
        conv_forward(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(CnnlabError, match="larger than the padded input"):
        conv_forward(x, np.zeros((4, 3, 7, 7)))
    with pytest.raises(CnnlabError, match="spatial axes"):
        conv_forward(x, np.zeros((4, 3, 3)))
    with pytest.raises(CnnlabError, match="op must be"):
        conv_forward(x, np.zeros((4, 3, 3, 3)), op="xcorr")

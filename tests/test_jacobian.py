"""HUJI theory 3 and Problem Sheet 3, 2(b): explicit Jacobians against autograd and ref.conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.ref import jacobian as J
from cnnlab.ref.conv import conv_backward, conv_forward

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def signal_filter(draw):
    n = draw(st.integers(1, 9))
    k = draw(st.integers(1, n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return rng.standard_normal(n), rng.standard_normal(k), rng.standard_normal(n - k + 1)


def torch_y(op):
    def y(sig, f):
        x = sig[None, None]
        w = (f.flip(0) if op == "conv" else f)[None, None]
        return torch.nn.functional.conv1d(x, w)[0, 0]
    return y


@SETTINGS
@given(signal_filter(), st.sampled_from(["conv", "corr"]))
def test_jacobians_equal_autograd_and_the_efficient_products(case, op):
    sig, f, g = case
    n, k = sig.size, f.size
    jf = J.conv1d_filter_jacobian(sig, k, op)
    jx = J.conv1d_input_jacobian(f, n, op)
    assert jf.shape == (n - k + 1, k) and jx.shape == (n - k + 1, n)
    y = J.conv1d_valid(sig, f, op)
    np.testing.assert_allclose(jf @ f, y, atol=1e-12)  # y is linear in f: y = J f
    np.testing.assert_allclose(jx @ sig, y, atol=1e-12)
    auto_f, auto_x = torch.autograd.functional.jacobian(
        lambda a, b: torch_y(op)(a, b), (torch.tensor(sig), torch.tensor(f)))[::-1]
    np.testing.assert_allclose(jf, auto_f.numpy(), atol=1e-12)
    np.testing.assert_allclose(jx, auto_x.numpy(), atol=1e-12)
    # 3.2: the product with the upstream gradient without the big matrix
    np.testing.assert_allclose(J.filter_grad(sig, g, op), jf.T @ g, atol=1e-12)
    np.testing.assert_allclose(J.input_grad(f, g, op), jx.T @ g, atol=1e-12)
    # and it is what the NumPy conv layer's backward computes
    out, cache = conv_forward(sig[None, None], f[None, None], op=op)
    dx, dw, _ = conv_backward(g[None, None], cache)
    np.testing.assert_allclose(dw[0, 0], jf.T @ g, atol=1e-12)
    np.testing.assert_allclose(dx[0, 0], jx.T @ g, atol=1e-12)


def test_filter_jacobian_exact_small_case():
    sig = np.array([1.0, 2, 3, 4, 5])
    # true convolution, k = 3: row i = (I[i+2], I[i+1], I[i])
    assert J.conv1d_filter_jacobian(sig, 3, "conv").tolist() == [[3, 2, 1], [4, 3, 2],
                                                                 [5, 4, 3]]
    assert J.conv1d_filter_jacobian(sig, 3, "corr").tolist() == [[1, 2, 3], [2, 3, 4],
                                                                 [3, 4, 5]]
    # n = k: one output pixel (HUJI 1.2.2)
    assert J.conv1d_filter_jacobian(sig, 5, "corr").shape == (1, 5)


@SETTINGS
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=6))
def test_softmax_jacobian_is_p_delta_minus_p(c):
    c = np.array(c)
    jac = J.softmax_jacobian(c)
    p = np.exp(c - c.max()) / np.exp(c - c.max()).sum()
    for i in range(c.size):
        for j in range(c.size):
            assert jac[i, j] == pytest.approx(p[i] * ((i == j) - p[j]), abs=1e-15)
    auto = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, 0), torch.tensor(c))
    np.testing.assert_allclose(jac, auto.numpy(), atol=1e-12)
    np.testing.assert_allclose(jac.sum(axis=0), 0.0, atol=1e-12)  # p sums to 1 for every c


def test_errors():
    with pytest.raises(CnnlabError, match="1 <= k <= n"):
        J.conv1d_filter_jacobian(np.ones(3), 4)
    with pytest.raises(CnnlabError, match="op must be"):
        J.conv1d_input_jacobian(np.ones(2), 4, op="xcorr")
    with pytest.raises(CnnlabError, match="one score vector"):
        J.softmax_jacobian(np.ones((2, 2)))

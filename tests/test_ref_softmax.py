"""Softmax, log-softmax and cross-entropy: naive == fast == torch, gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnlab.common.errors import CnnlabError
from cnnlab.ref import softmax as S

SETTINGS = settings(max_examples=40, deadline=None)
logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
                    elements=st.floats(-30, 30))


@SETTINGS
@given(logits, st.integers(0, 2**31))
def test_softmax_and_log_softmax(x, seed):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    for fwd, bwd, fwd_n, bwd_n, tf in (
        (S.softmax_forward, S.softmax_backward, S.softmax_forward_naive,
         S.softmax_backward_naive, F.softmax),
        (S.log_softmax_forward, S.log_softmax_backward, S.log_softmax_forward_naive,
         S.log_softmax_backward_naive, F.log_softmax),
    ):
        y, c = fwd(x)
        yn, cn = fwd_n(x)
        np.testing.assert_allclose(y, yn, rtol=1e-12, atol=1e-12)
        xt.grad = None
        yt = tf(xt, dim=1)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        yt.backward(torch.tensor(d))
        np.testing.assert_allclose(bwd(d, c), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bwd_n(d, cn), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    p, _ = S.softmax_forward(x)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-13)


@SETTINGS
@given(logits, st.integers(0, 2**31))
def test_cross_entropy(x, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, x.shape[1], size=x.shape[0])
    loss, c = S.cross_entropy_forward(x, y)
    loss_n, cn = S.cross_entropy_forward_naive(x, y)
    xt = torch.tensor(x, requires_grad=True)
    lt = F.cross_entropy(xt, torch.tensor(y))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12, abs=1e-12)
    assert loss_n == pytest.approx(lt.item(), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(S.cross_entropy_backward(1.0, c), xt.grad.numpy(), atol=1e-13)
    np.testing.assert_allclose(S.cross_entropy_backward_naive(1.0, cn), xt.grad.numpy(),
                               atol=1e-13)


def test_softmax_over_channels_of_a_feature_map_and_numeric_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2))
    d = rng.standard_normal(x.shape)
    p, c = S.softmax_forward(x, axis=1)
    np.testing.assert_allclose(p, F.softmax(torch.tensor(x), dim=1).numpy(), atol=1e-14)
    dx = S.softmax_backward(d, c)
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = 1e-6
        num[idx] = (np.sum(S.softmax_forward(x + e)[0] * d)
                    - np.sum(S.softmax_forward(x - e)[0] * d)) / 2e-6
    np.testing.assert_allclose(dx, num, atol=1e-8)


def test_large_logits_do_not_overflow():
    p, _ = S.softmax_forward(np.array([[1000.0, 1000.0, -1000.0]]))
    assert p.tolist() == [[0.5, 0.5, 0.0]]
    loss, _ = S.cross_entropy_forward(np.array([[1000.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0)


def test_bad_labels():
    with pytest.raises(CnnlabError, match="labels must be integers"):
        S.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(CnnlabError, match=r"must be \(N, K\)"):
        S.cross_entropy_forward(np.zeros((2, 3, 1)), np.array([0, 1]))

"""Softmax, log-softmax and cross-entropy, forward and backward.

Problem Sheet 3, 2(a)-(b): ``p_i = exp(c_i) / sum_k exp(c_k)`` is positive and sums to 1, and
``dp_i/dc_j = p_i (delta_ij - p_j)``. Both are computed after subtracting ``max_k c_k``, which
changes nothing mathematically and keeps ``exp`` from overflowing.

Shapes: ``x`` is ``(N, K, ...)`` with classes on ``axis`` (default 1); cross-entropy takes
logits ``(N, K)`` and integer labels ``(N,)`` and returns the batch mean
``L = -(1/N) sum_n log p[n, y_n]`` with gradient ``(p - onehot(y)) / N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnlab.common.errors import CnnlabError


@dataclass
class SoftmaxCache:
    p: np.ndarray  # softmax probabilities, like x
    axis: int


def softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, SoftmaxCache]:
    """``p = softmax(x)`` along ``axis``; ``p`` has x's shape."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=axis, keepdims=True)
    return p, SoftmaxCache(p, axis)


def softmax_backward(dp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    """``dx_j = sum_i dp_i p_i (delta_ij - p_j) = p_j (dp_j - sum_i dp_i p_i)``."""
    p = cache.p
    return p * (dp - np.sum(dp * p, axis=cache.axis, keepdims=True))


def log_softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, SoftmaxCache]:
    """``log p = x - max - log sum exp(x - max)`` along ``axis``."""
    z = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    logp = z - lse
    return logp, SoftmaxCache(np.exp(logp), axis)


def log_softmax_backward(dlogp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    """``d log p_i / dx_j = delta_ij - p_j``, so ``dx = dlogp - p * sum(dlogp)``."""
    return dlogp - cache.p * np.sum(dlogp, axis=cache.axis, keepdims=True)


@dataclass
class CrossEntropyCache:
    p: np.ndarray  # (N, K)
    y: np.ndarray  # (N,)


def _check_ce(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if logits.ndim != 2 or y.shape != (logits.shape[0],):
        raise CnnlabError(f"cross-entropy: logits {logits.shape} must be (N, K) and labels "
                          f"{y.shape} must be (N,)")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= logits.shape[1]:
        raise CnnlabError(f"cross-entropy: labels must be integers in 0..{logits.shape[1] - 1}")
    return y


def cross_entropy_forward(logits: np.ndarray, y: np.ndarray
                          ) -> tuple[float, CrossEntropyCache]:
    """Mean negative log-likelihood of the labels under ``softmax(logits)``."""
    y = _check_ce(logits, y)
    logp, cache = log_softmax_forward(logits, axis=1)
    loss = -float(logp[np.arange(len(y)), y].mean())
    return loss, CrossEntropyCache(cache.p, y)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache) -> np.ndarray:
    """``dlogits = dloss * (p - onehot(y)) / N``, shape ``(N, K)``."""
    d = cache.p.copy()
    d[np.arange(len(cache.y)), cache.y] -= 1.0
    return d * (dloss / len(cache.y))


# ------------------------------------------------------------------------------ naive
# One row at a time with Python floats: the definitions of Problem Sheet 3, 2(a)-(b).


def _rows(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape  # (rows, K)


def _unrows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    return np.moveaxis(rows.reshape(shape), -1, axis)


def softmax_forward_naive(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, SoftmaxCache]:
    rows, shape = _rows(x, axis)
    out = np.empty(rows.shape)
    for r, c in enumerate(rows):
        m = max(float(v) for v in c)
        e = [math.exp(float(v) - m) for v in c]
        s = sum(e)
        out[r] = [v / s for v in e]
    p = _unrows(out, shape, axis)
    return p, SoftmaxCache(p, axis)


def softmax_backward_naive(dp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    """Builds each row's Jacobian ``J[i, j] = p_i (delta_ij - p_j)`` and applies ``J^T``."""
    prow, shape = _rows(cache.p, cache.axis)
    drow, _ = _rows(dp, cache.axis)
    out = np.empty(prow.shape)
    k = prow.shape[1]
    for r in range(prow.shape[0]):
        p = prow[r]
        for j in range(k):
            out[r, j] = sum(drow[r, i] * p[i] * ((i == j) - p[j]) for i in range(k))
    return _unrows(out, shape, cache.axis)


def log_softmax_forward_naive(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, SoftmaxCache]:
    p, cache = softmax_forward_naive(x, axis)
    return np.log(p), cache


def log_softmax_backward_naive(dlogp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    prow, shape = _rows(cache.p, cache.axis)
    drow, _ = _rows(dlogp, cache.axis)
    out = np.empty(prow.shape)
    k = prow.shape[1]
    for r in range(prow.shape[0]):
        for j in range(k):
            out[r, j] = sum(drow[r, i] * ((i == j) - prow[r, j]) for i in range(k))
    return _unrows(out, shape, cache.axis)


def cross_entropy_forward_naive(logits: np.ndarray, y: np.ndarray
                                ) -> tuple[float, CrossEntropyCache]:
    y = _check_ce(logits, y)
    p, _ = softmax_forward_naive(logits, axis=1)
    loss = sum(-math.log(p[n, y[n]]) for n in range(len(y))) / len(y)
    return loss, CrossEntropyCache(p, y)


def cross_entropy_backward_naive(dloss: float, cache: CrossEntropyCache) -> np.ndarray:
    n, k = cache.p.shape
    out = np.empty((n, k))
    for i in range(n):
        for j in range(k):
            out[i, j] = dloss * (cache.p[i, j] - (j == cache.y[i])) / n
    return out

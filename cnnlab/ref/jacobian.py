"""Explicit Jacobians of a 1D valid convolution and of softmax, and the efficient products.

HUJI Assignment 1, theory 3: for ``y = f * I`` (1D, valid: the filter lies fully inside the
signal, ``n - k + 1`` outputs, theory 1.2)

* 3.1 :func:`conv1d_filter_jacobian` is ``dy/df``: one row per output pixel, one column per
  filter tap. For true convolution ``y[i] = sum_j f[j] I[i + k - 1 - j]`` so
  ``J[i, j] = I[i + k - 1 - j]``; for cross-correlation ``J[i, j] = I[i + j]``. It is also
  the matrix of the linear map ``f -> y``: ``y = J f``.
* 3.2 :func:`filter_grad`: ``dL/df = J^T g`` never needs ``J``; it is the valid
  cross-correlation of the signal with the upstream gradient ``g = dL/dy`` (reversed for
  true convolution), ``O(k (n - k + 1))`` multiplications and ``O(k)`` memory instead of the
  ``(n - k + 1) x k`` matrix.

Likewise ``dy/dI`` (:func:`conv1d_input_jacobian`, a banded Toeplitz matrix) and
``dL/dI = J_I^T g``, the full convolution of ``g`` with the filter (:func:`input_grad`).

Problem Sheet 3, 2(b): :func:`softmax_jacobian` ``dp_i/dc_j = p_i (delta_ij - p_j)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cnnlab.common.errors import CnnlabError

Op = Literal["conv", "corr"]


def _check(n: int, k: int, op: str) -> None:
    if op not in ("conv", "corr"):
        raise CnnlabError(f"op must be 'conv' (true convolution) or 'corr', got {op!r}")
    if not 1 <= k <= n:
        raise CnnlabError(f"a valid 1D convolution needs 1 <= k <= n, got k={k}, n={n}")


def conv1d_valid(signal: np.ndarray, f: np.ndarray, op: Op = "conv") -> np.ndarray:
    """``y`` of length ``n - k + 1``: ``np.convolve``/``np.correlate`` in ``'valid'`` mode."""
    signal, f = np.asarray(signal, float), np.asarray(f, float)
    _check(signal.size, f.size, op)
    return np.convolve(signal, f, "valid") if op == "conv" else np.correlate(signal, f, "valid")


def conv1d_filter_jacobian(signal: np.ndarray, k: int, op: Op = "conv") -> np.ndarray:
    """``dy/df``, shape ``(n - k + 1, k)``: rows = output pixels, columns = filter taps."""
    signal = np.asarray(signal, float)
    n = signal.size
    _check(n, k, op)
    i = np.arange(n - k + 1)[:, None]  # output pixel
    j = np.arange(k)[None, :]  # filter tap
    return signal[i + k - 1 - j] if op == "conv" else signal[i + j]


def conv1d_input_jacobian(f: np.ndarray, n: int, op: Op = "conv") -> np.ndarray:
    """``dy/dI``, shape ``(n - k + 1, n)``: row ``i`` holds the (flipped) filter at ``i``."""
    f = np.asarray(f, float)
    k = f.size
    _check(n, k, op)
    taps = f[::-1] if op == "conv" else f
    jac = np.zeros((n - k + 1, n))
    for i in range(n - k + 1):
        jac[i, i:i + k] = taps
    return jac


def filter_grad(signal: np.ndarray, g: np.ndarray, op: Op = "conv") -> np.ndarray:
    """``dL/df = J^T g`` without forming ``J``: a valid correlation of the signal with ``g``.

    ``g`` has the output's length ``n - k + 1``; the result has the filter's length ``k``.
    """
    signal, g = np.asarray(signal, float), np.asarray(g, float)
    if not 1 <= g.size <= signal.size:
        raise CnnlabError(f"g has length {g.size}; it must be the output length n - k + 1 "
                          f"<= n = {signal.size}")
    # sum_i g[i] I[i + j] for corr; true convolution reads the taps backwards
    grad = np.correlate(signal, g, "valid")
    return grad[::-1] if op == "conv" else grad


def input_grad(f: np.ndarray, g: np.ndarray, op: Op = "conv") -> np.ndarray:
    """``dL/dI = J_I^T g``: the full convolution of ``g`` with the filter, length ``n``."""
    f, g = np.asarray(f, float), np.asarray(g, float)
    if op not in ("conv", "corr"):
        raise CnnlabError(f"op must be 'conv' or 'corr', got {op!r}")
    return np.convolve(g, f[::-1] if op == "conv" else f, "full")


def softmax_jacobian(c: np.ndarray) -> np.ndarray:
    """``J[i, j] = dp_i/dc_j = p_i (delta_ij - p_j)`` for a score vector ``c`` (``K x K``)."""
    c = np.asarray(c, float)
    if c.ndim != 1:
        raise CnnlabError(f"softmax_jacobian takes one score vector, got shape {c.shape}")
    e = np.exp(c - c.max())
    p = e / e.sum()
    return np.diag(p) - np.outer(p, p)

"""The remaining layers of the IR: activations, fully connected, flatten, dropout,
batch normalisation, global pooling, scale, add and concat; forward and backward.

Shapes are batch-first, channels second: ``(N, C, *spatial)`` or ``(N, features)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.common.errors import CnnlabError

# --------------------------------------------------------------------------- activations

# torch's defaults for the parameterised ones
LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
SOFTPLUS_THRESHOLD = 20.0  # torch: softplus(x) = x above it (differs by < exp(-20))
ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity", "leakyrelu", "elu", "softplus")


@dataclass
class ActCache:
    fn: str
    x: np.ndarray
    y: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def act_forward(x: np.ndarray, fn: str = "relu") -> tuple[np.ndarray, ActCache]:
    """Element-wise non-linearity; ``y`` has x's shape. ``fn`` in :data:`ACTIVATIONS`."""
    if fn == "relu":
        y = np.maximum(x, 0)
    elif fn == "tanh":
        y = np.tanh(x)
    elif fn == "sigmoid":
        y = _sigmoid(x)
    elif fn == "identity":
        y = x.copy()
    elif fn == "leakyrelu":
        y = np.where(x > 0, x, LEAKY_SLOPE * x)
    elif fn == "elu":
        y = np.where(x > 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0)))
    elif fn == "softplus":
        y = np.where(x > SOFTPLUS_THRESHOLD, x, np.logaddexp(0, x))
    else:
        raise CnnlabError(f"activation {fn!r} has no NumPy reference; use one of "
                          f"{', '.join(ACTIVATIONS)}")
    return y, ActCache(fn, x, y)


def act_backward(dy: np.ndarray, cache: ActCache) -> np.ndarray:
    """``dx = dy * f'(x)``; ReLU's derivative at 0 is taken as 0 (as torch does).

    HUJI theory 2: if every pre-activation is negative, ``f'`` is 0 everywhere and nothing
    reaches the filter or the bias below.
    """
    x, y, fn = cache.x, cache.y, cache.fn
    if fn == "relu":
        return dy * (x > 0)
    if fn == "tanh":
        return dy * (1 - y * y)
    if fn == "sigmoid":
        return dy * y * (1 - y)
    if fn == "identity":
        return dy.copy()
    if fn == "leakyrelu":
        return dy * np.where(x > 0, 1.0, LEAKY_SLOPE)
    if fn == "elu":
        return dy * np.where(x > 0, 1.0, y + ELU_ALPHA)
    return dy * np.where(x > SOFTPLUS_THRESHOLD, 1.0, _sigmoid(x))  # softplus


# ------------------------------------------------------------------------------- linear


@dataclass
class LinearCache:
    x_shape: tuple[int, ...]
    x2: np.ndarray  # (N, D) flattened input
    w: np.ndarray
    has_bias: bool


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
                   ) -> tuple[np.ndarray, LinearCache]:
    """``y = flatten(x) w^T + b``: x ``(N, *)`` with ``D = prod(*)``, w ``(F, D)``, y ``(N, F)``.

    A multi-axis input is flattened in channels-first order first (``torch.flatten``).
    """
    x2 = x.reshape(x.shape[0], -1)  # (N, D)
    if w.ndim != 2 or w.shape[1] != x2.shape[1]:
        raise CnnlabError(f"linear: input has {x2.shape[1]} features but weight is {w.shape}; "
                          "need (out_features, in_features)")
    y = x2 @ w.T  # (N, F)
    if b is not None:
        y = y + b
    return y, LinearCache(x.shape, x2, w, b is not None)


def linear_backward(dy: np.ndarray, cache: LinearCache
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(dx, dw, db)``: ``dx = dy w`` reshaped like x, ``dw = dy^T x``, ``db = sum dy``."""
    dx = (dy @ cache.w).reshape(cache.x_shape)
    dw = dy.T @ cache.x2  # (F, D)
    db = dy.sum(axis=0) if cache.has_bias else None
    return dx, dw, db


def linear_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
                         ) -> tuple[np.ndarray, LinearCache]:
    x2 = x.reshape(x.shape[0], -1)
    n, f = x2.shape[0], w.shape[0]
    y = np.zeros((n, f))
    for i in range(n):
        for j in range(f):
            y[i, j] = sum(x2[i, d] * w[j, d] for d in range(x2.shape[1]))
            y[i, j] += b[j] if b is not None else 0.0
    return y, LinearCache(x.shape, x2, w, b is not None)


def linear_backward_naive(dy: np.ndarray, cache: LinearCache
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x2, w = cache.x2, cache.w
    dx = np.zeros(x2.shape)
    dw = np.zeros(w.shape)
    for i in range(x2.shape[0]):
        for j in range(w.shape[0]):
            dx[i] += dy[i, j] * w[j]
            dw[j] += dy[i, j] * x2[i]
    db = dy.sum(axis=0) if cache.has_bias else None
    return dx.reshape(cache.x_shape), dw, db


# ------------------------------------------------------------------ shape-only and joins


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(N, C, *S) -> (N, C * prod(S))``, channels-first order."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    return dy.reshape(x_shape)


def dropout_forward(x: np.ndarray, p: float, train: bool = False,
                    rng: np.random.Generator | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout: train keeps each unit with probability ``1-p`` and scales by
    ``1/(1-p)``; eval is the identity (feed keep_prob 1.0 at test time, ETH Ex. 5 P4)."""
    if not train or p == 0.0:
        return x, None
    rng = rng if rng is not None else np.random.default_rng()
    mask = (rng.random(x.shape) >= p) / (1.0 - p)
    return x * mask, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return dy if mask is None else dy * mask


def scale_forward(xs: list[np.ndarray], factor: float) -> np.ndarray:
    return xs[0] * factor


def add_forward(xs: list[np.ndarray], gamma: float = 1.0) -> np.ndarray:
    """``gamma * sum(xs)`` (TTIC Problem 3(b)); every input gets ``gamma * dy`` back."""
    out = xs[0].copy()
    for x in xs[1:]:
        out += x
    return gamma * out if gamma != 1.0 else out


def concat_forward(xs: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Concatenate along channels; the cache is the channel counts, to split the gradient."""
    return np.concatenate(xs, axis=1), [x.shape[1] for x in xs]


def concat_backward(dy: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(dy, np.cumsum(sizes)[:-1], axis=1)


def global_pool_forward(x: np.ndarray, op: str = "avg") -> tuple[np.ndarray, tuple]:
    """``(N, C, *S) -> (N, C)``: mean or max over all spatial positions."""
    axes = tuple(range(2, x.ndim))
    if op == "avg":
        return x.mean(axis=axes), (op, x.shape, None)
    flat = x.reshape(*x.shape[:2], -1)  # (N, C, prod(S))
    # the first maximum takes the gradient; torch's amax splits it over exact ties instead
    arg = flat.argmax(axis=2)
    return flat.max(axis=2), (op, x.shape, arg)


def global_pool_backward(dy: np.ndarray, cache: tuple) -> np.ndarray:
    op, shape, arg = cache
    size = int(np.prod(shape[2:]))
    if op == "avg":
        return np.broadcast_to((dy / size)[(...,) + (None,) * (len(shape) - 2)], shape).copy()
    dx = np.zeros((*shape[:2], size), dtype=dy.dtype)
    np.put_along_axis(dx, arg[..., None], dy[..., None], axis=2)
    return dx.reshape(shape)


# -------------------------------------------------------------------------- batch norm


@dataclass
class BatchNormCache:
    xhat: np.ndarray
    inv_std: np.ndarray  # (C,)
    gamma: np.ndarray
    axes: tuple[int, ...]
    train: bool


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, eps: float = 1e-5,
                      momentum: float = 0.1, train: bool = False
                      ) -> tuple[np.ndarray, BatchNormCache]:
    """Normalise each channel of ``(N, C, *S)``. Train: batch statistics, and the running
    statistics are updated in place (torch's rule, unbiased variance); eval: running ones."""
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if train:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        count = x.size // x.shape[1]
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * count / max(count - 1, 1)
    else:
        mean, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    y = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return y, BatchNormCache(xhat, inv_std, gamma, axes, train)


def batchnorm_backward(dy: np.ndarray, cache: BatchNormCache
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)``. In train mode the mean and variance depend on x too:
    ``dx = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat))`` (means over N and space)."""
    shape = (1, -1) + (1,) * (dy.ndim - 2)
    xhat, axes = cache.xhat, cache.axes
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    scale = (cache.gamma * cache.inv_std).reshape(shape)
    if not cache.train:
        return dy * scale, dgamma, dbeta
    m = dy.mean(axis=axes, keepdims=True)
    mx = (dy * xhat).mean(axis=axes, keepdims=True)
    return scale * (dy - m - xhat * mx), dgamma, dbeta

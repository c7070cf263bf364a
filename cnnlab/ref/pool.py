"""N-d max and average pooling (1D, 2D, 3D), forward and backward.

Shapes (``D`` spatial axes)::

    x    (N, C, n_1, ..., n_D)
    out  (N, C, o_1, ..., o_D),  o_i = floor((n_i + lo_i + hi_i - k_i) / s_i) + 1

``stride`` defaults to the kernel (non-overlapping windows, as in the sheets' ``2x2`` pools).
Padding follows torch: max pooling pads with ``-inf`` (a padded cell never wins), average
pooling pads with zeros and divides by the full window ``prod(k)`` (``count_include_pad``).
Another ``pad_mode`` (reflect, ...) fills the border with image values instead.

Max pooling routes the gradient to the first maximum of each window (torch's tie rule);
overlapping windows add their contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir.shapes import Window

from ._window import IntOrAxes, PaddingArg, geometry
from .padding import fill_mode, pad, pad_backward

PoolOp = Literal["max", "avg"]


@dataclass
class PoolCache:
    x_shape: tuple[int, ...]
    geom: Window
    op: str
    pad_mode: str
    arg: np.ndarray | None = None  # max: flat tap index of the winner, (N, C, *out)
    xp: np.ndarray | None = None  # naive: the padded input


def _setup(x: np.ndarray, op: str, kernel: IntOrAxes, stride: IntOrAxes | None,
           padding: PaddingArg, pad_mode: str) -> tuple[Window, np.ndarray]:
    if x.ndim < 3:
        raise CnnlabError(f"pool: x {x.shape} must be (N, C, *spatial)")
    if op not in ("max", "avg"):
        raise CnnlabError(f"pool: op must be 'max' or 'avg', got {op!r}")
    if stride is None:
        stride = kernel
    geom = geometry(x.shape[2:], kernel, stride, padding, 1, f"{op}pool")
    mode = fill_mode(pad_mode)
    value = -np.inf if (op == "max" and mode == "zero") else 0.0
    xp = pad(x.astype(np.result_type(x, np.float32), copy=False), geom.pads, mode, value)
    return geom, xp


def pool_forward_naive(x: np.ndarray, op: PoolOp = "max", kernel: IntOrAxes = 2,
                       stride: IntOrAxes | None = None, padding: PaddingArg = "valid",
                       pad_mode: str = "zero") -> tuple[np.ndarray, PoolCache]:
    """Loop over every (sample, channel, output position); see the module docstring."""
    geom, xp = _setup(x, op, kernel, stride, padding, pad_mode)
    n, c = x.shape[:2]
    out = np.zeros((n, c, *geom.out), dtype=xp.dtype)
    for i in range(n):
        for j in range(c):
            for o in np.ndindex(*geom.out):
                win = xp[(i, j, *geom.window(o))]
                out[(i, j, *o)] = win.max() if op == "max" else win.sum() / win.size
    return out, PoolCache(x.shape, geom, op, fill_mode(pad_mode), xp=xp)


def pool_backward_naive(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """``dx`` (like x) by the loops of :func:`pool_forward_naive`."""
    xp, geom = cache.xp, cache.geom
    assert xp is not None
    dxp = np.zeros(xp.shape, dtype=np.result_type(dout, xp))
    ksize = int(np.prod(geom.kernel))
    for i, j in np.ndindex(*dout.shape[:2]):
        for o in np.ndindex(*geom.out):
            idx = (i, j, *geom.window(o))
            if cache.op == "max":
                win = xp[idx]
                first = np.unravel_index(int(np.argmax(win)), win.shape)  # first maximum
                sub = dxp[idx]  # a view: strided windows of a plain slice
                sub[first] += dout[(i, j, *o)]
            else:
                dxp[idx] += dout[(i, j, *o)] / ksize
    return pad_backward(dxp, geom.pads, cache.pad_mode)


def pool_forward(x: np.ndarray, op: PoolOp = "max", kernel: IntOrAxes = 2,
                 stride: IntOrAxes | None = None, padding: PaddingArg = "valid",
                 pad_mode: str = "zero") -> tuple[np.ndarray, PoolCache]:
    """Vectorized pooling: one strided slice per kernel tap, ``prod(k)`` array operations.

    ``kernel``/``stride``: an int or one per axis; ``padding``: ``'valid'|'same'|'full'``, an
    int, one int per axis or ``(lo, hi)`` per axis.
    """
    geom, xp = _setup(x, op, kernel, stride, padding, pad_mode)
    lead = (slice(None), slice(None))
    taps = list(np.ndindex(*geom.kernel))
    out = xp[(*lead, *geom.tap(taps[0]))].copy()  # (N, C, *out)
    arg = None
    if op == "max":
        arg = np.zeros(out.shape, dtype=np.intp)
        for flat, t in enumerate(taps[1:], start=1):
            v = xp[(*lead, *geom.tap(t))]
            better = v > out  # strict: ties keep the earlier tap, as torch does
            out[better] = v[better]
            arg[better] = flat
    else:
        for t in taps[1:]:
            out += xp[(*lead, *geom.tap(t))]
        out /= len(taps)
    return out, PoolCache(x.shape, geom, op, fill_mode(pad_mode), arg=arg)


def pool_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """``dx`` (like x): each tap's strided slice receives its share of ``dout``."""
    geom = cache.geom
    n, c = cache.x_shape[:2]
    dxp = np.zeros((n, c, *geom.padded), dtype=np.result_type(dout, np.float32))
    lead = (slice(None), slice(None))
    taps = list(np.ndindex(*geom.kernel))
    if cache.op == "max":
        assert cache.arg is not None
        for flat, t in enumerate(taps):
            dxp[(*lead, *geom.tap(t))] += np.where(cache.arg == flat, dout, 0)
    else:
        share = dout / len(taps)
        for t in taps:
            dxp[(*lead, *geom.tap(t))] += share
    return pad_backward(dxp, geom.pads, cache.pad_mode)


def max_pool(x: np.ndarray, kernel: IntOrAxes = 2, **kw) -> np.ndarray:
    return pool_forward(x, "max", kernel, **kw)[0]


def avg_pool(x: np.ndarray, kernel: IntOrAxes = 2, **kw) -> np.ndarray:
    return pool_forward(x, "avg", kernel, **kw)[0]

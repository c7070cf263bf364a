"""N-d convolution and cross-correlation (1D, 2D, 3D), forward and backward.

Shapes (``D`` spatial axes, ``G`` groups)::

    x    (N, C, n_1, ..., n_D)
    w    (F, C/G, k_1, ..., k_D)
    b    (F,) or None
    out  (N, F, o_1, ..., o_D),  o_i = floor((n_i + lo_i + hi_i - d_i(k_i - 1) - 1) / s_i) + 1

``op="corr"`` is cross-correlation, what every framework calls convolution::

    out[n, f, o] = b[f] + sum_{c, t} w[f, c, t] * xp[n, g*C/G + c, s*o + d*t]

``op="conv"`` is true convolution as ETH Exercise 5, Problem 1 defines it,
``(f * k)(x) = sum_{u=-p..p} f(x - u) k(u)``: the same sum with the kernel flipped on every
spatial axis. For an odd kernel with padding ``'same'`` the two definitions coincide exactly;
for ``'valid'`` the output covers the positions with full support, ``n - k + 1`` of them
(HUJI theory 1.2). ``xp`` is ``x`` padded by ``pads`` with the fill ``pad_mode``.

``conv_forward`` / ``conv_backward`` are the fast version (im2col by a strided view, one
matrix product per group, col2im by one strided add per kernel tap); ``*_naive`` loop over
every output position and are the oracle the fast version is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir.shapes import Window

from ._window import IntOrAxes, PaddingArg, geometry
from .padding import fill_mode, pad, pad_backward

ConvOp = Literal["corr", "conv"]


@dataclass
class ConvCache:
    x_shape: tuple[int, ...]
    w: np.ndarray  # the kernel actually correlated (already flipped for op="conv")
    geom: Window
    groups: int
    pad_mode: str
    op: str
    has_bias: bool
    cols: np.ndarray | None = None  # fast: (G, prod(k) * C/G, prod(out) * N)
    xp: np.ndarray | None = None  # padded input; naive: (N, C, *padded), fast: (C, *padded, N)


def _setup(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: IntOrAxes,
           padding: PaddingArg, dilation: IntOrAxes, groups: int, pad_mode: str,
           op: str) -> tuple[Window, np.ndarray]:
    if x.ndim < 3 or w.ndim != x.ndim:
        raise CnnlabError(f"conv: x {x.shape} must be (N, C, *spatial) and w {w.shape} "
                          "(F, C/groups, *kernel) with the same number of spatial axes")
    if op not in ("corr", "conv"):
        raise CnnlabError(f"conv: op must be 'corr' or 'conv', got {op!r}")
    f, cg = w.shape[:2]
    c = x.shape[1]
    if groups < 1 or c % groups or f % groups or cg * groups != c:
        raise CnnlabError(f"conv: {c} input channels, {f} filters of {cg} channels and "
                          f"groups={groups} do not fit; need C = groups * w.shape[1]")
    if b is not None and b.shape != (f,):
        raise CnnlabError(f"conv: bias shape {b.shape} must be ({f},)")
    fill_mode(pad_mode)
    geom = geometry(x.shape[2:], w.shape[2:], stride, padding, dilation, "conv")
    wk = np.flip(w, axis=tuple(range(2, w.ndim))) if op == "conv" else w
    return geom, wk


def _unflip(dw: np.ndarray, op: str) -> np.ndarray:
    return np.ascontiguousarray(np.flip(dw, axis=tuple(range(2, dw.ndim)))) if op == "conv" else dw


# ------------------------------------------------------------------------------ naive


def conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                       stride: IntOrAxes = 1, padding: PaddingArg = "valid",
                       dilation: IntOrAxes = 1, groups: int = 1, pad_mode: str = "zero",
                       op: ConvOp = "corr") -> tuple[np.ndarray, ConvCache]:
    """Loop over every (sample, filter, output position); see the module docstring."""
    geom, wk = _setup(x, w, b, stride, padding, dilation, groups, pad_mode, op)
    n, f = x.shape[0], w.shape[0]
    cg, fg = w.shape[1], f // groups
    xp = pad(x, geom.pads, pad_mode)  # (N, C, *padded)
    out = np.zeros((n, f, *geom.out), dtype=np.result_type(x, w))
    for i in range(n):
        for j in range(f):
            g = j // fg
            for o in np.ndindex(*geom.out):
                win = xp[(i, slice(g * cg, (g + 1) * cg), *geom.window(o))]  # (C/G, *k)
                out[(i, j, *o)] = np.sum(win * wk[j]) + (b[j] if b is not None else 0.0)
    cache = ConvCache(x.shape, wk, geom, groups, fill_mode(pad_mode), op, b is not None, xp=xp)
    return out, cache


def conv_backward_naive(dout: np.ndarray, cache: ConvCache
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(dx, dw, db)`` by the same loops as :func:`conv_forward_naive`."""
    xp, wk, geom = cache.xp, cache.w, cache.geom
    assert xp is not None
    n, f = dout.shape[:2]
    cg, fg = wk.shape[1], f // cache.groups
    dxp = np.zeros_like(xp, dtype=np.result_type(dout, xp))
    dw = np.zeros_like(wk, dtype=np.result_type(dout, xp))
    for i in range(n):
        for j in range(f):
            g = j // fg
            for o in np.ndindex(*geom.out):
                idx = (i, slice(g * cg, (g + 1) * cg), *geom.window(o))
                d = dout[(i, j, *o)]
                dw[j] += d * xp[idx]
                dxp[idx] += d * wk[j]
    db = dout.sum(axis=(0, *range(2, dout.ndim))) if cache.has_bias else None
    return pad_backward(dxp, geom.pads, cache.pad_mode), _unflip(dw, cache.op), db


# ------------------------------------------------------------------------------- fast


def _im2col(xt: np.ndarray, geom: Window, groups: int) -> np.ndarray:
    """``(C, *padded, N)`` -> ``(G, prod(k) * C/G, prod(out) * N)``, rows (tap, channel).

    Batch-last layout: each window row is a contiguous run of ``out[-1] * N`` values, so
    im2col and col2im move long blocks, and every matrix-product operand is contiguous.
    """
    dims = geom.dims
    v = np.lib.stride_tricks.sliding_window_view(xt, geom.span, axis=tuple(range(1, 1 + dims)))
    sel = tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(geom.stride, geom.out, strict=True))
    v = v[(slice(None), *sel, slice(None), *(slice(None, None, d) for d in geom.dilation))]
    v = v.reshape(groups, -1, *v.shape[1:])  # (G, C/G, *out, N, *k)
    perm = (0, *range(3 + dims, 3 + 2 * dims), 1, *range(2, 3 + dims))
    m = int(np.prod(v.shape[2:3 + dims]))  # prod(out) * N
    return v.transpose(perm).copy().reshape(groups, -1, m)  # writable: backward reuses it


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                 stride: IntOrAxes = 1, padding: PaddingArg = "valid", dilation: IntOrAxes = 1,
                 groups: int = 1, pad_mode: str = "zero", op: ConvOp = "corr"
                 ) -> tuple[np.ndarray, ConvCache]:
    """Vectorized forward; same arguments and result as :func:`conv_forward_naive`.

    ``stride``/``dilation``: an int or one per axis; ``padding``: ``'valid'|'same'|'full'``,
    an int, one int per axis or ``(lo, hi)`` per axis; ``pad_mode``: the fill
    (:data:`cnnlab.ref.padding.FILL_MODES`).
    """
    geom, wk = _setup(x, w, b, stride, padding, dilation, groups, pad_mode, op)
    n = x.shape[0]
    f, cg = wk.shape[:2]
    fg = f // groups
    xt = np.moveaxis(pad(x, geom.pads, pad_mode), 0, -1)  # (C, *padded, N)
    cols = _im2col(xt, geom, groups)  # (G, prod(k) * C/G, M)
    kc = cols.shape[1]
    wmat = np.ascontiguousarray(np.moveaxis(wk, 1, -1)).reshape(f, kc)  # (F, prod(k) * C/G)
    out = np.empty((f, cols.shape[2]), dtype=np.result_type(cols, wmat))  # (F, M)
    for g in range(groups):
        np.matmul(wmat[g * fg:(g + 1) * fg], cols[g], out=out[g * fg:(g + 1) * fg])
    if b is not None:
        out += b[:, None]
    out = np.moveaxis(out.reshape(f, *geom.out, n), -1, 0)  # (N, F, *out)
    cache = ConvCache(x.shape, wk, geom, groups, fill_mode(pad_mode), op, b is not None,
                      cols=cols, xp=xt)
    return np.ascontiguousarray(out), cache


def conv_backward(dout: np.ndarray, cache: ConvCache
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(dx, dw, db)`` with ``dx`` like x, ``dw`` like w, ``db`` ``(F,)`` (None without bias).

    Per group ``dw = dout cols^T`` and ``dcols = w^T dout``; col2im scatters ``dcols`` back
    with one strided add per kernel tap, then the padding's adjoint folds padded copies into
    their sources.
    """
    geom, wk, groups = cache.geom, cache.w, cache.groups
    assert cache.xp is not None
    # the im2col buffer becomes dcols's storage (a fresh 2nd buffer of that size costs page
    # faults that rival the matrix products); a second backward rebuilds it from xp
    cols, cache.cols = cache.cols, None
    if cols is None:
        cols = _im2col(cache.xp, geom, groups)
    n, c = cache.x_shape[:2]
    f, cg = wk.shape[:2]
    fg, kc = f // groups, cols.shape[1]
    dmat = np.ascontiguousarray(np.moveaxis(dout, 0, -1)).reshape(f, -1)  # (F, M), M = (*out, N)
    wmat = np.ascontiguousarray(np.moveaxis(wk, 1, -1)).reshape(f, kc)  # (F, prod(k) * C/G)
    dtype = np.result_type(dmat, cols, wmat)
    dw = np.empty((f, kc), dtype=dtype)
    if cols.dtype != dtype:
        cols = cols.astype(dtype)
    for g in range(groups):
        fs = slice(g * fg, (g + 1) * fg)
        np.matmul(dmat[fs], cols[g].T, out=dw[fs])
        np.matmul(wmat[fs].T, dmat[fs], out=cols[g])  # now dcols: (prod(k) * C/G, M)
    dcols = cols.reshape(groups, *geom.kernel, cg, *geom.out, n)  # (G, *k, C/G, *out, N)
    dxp = np.zeros((groups, cg, *geom.padded, n), dtype=dcols.dtype)  # (G, C/G, *padded, N)
    for t in np.ndindex(*geom.kernel):
        dxp[(slice(None), slice(None), *geom.tap(t))] += dcols[(slice(None), *t)]
    dxp = np.moveaxis(dxp.reshape(c, *geom.padded, n), -1, 0)  # (N, C, *padded)
    dx = pad_backward(dxp, geom.pads, cache.pad_mode)
    dw = np.moveaxis(dw.reshape(f, *geom.kernel, cg), -1, 1)  # (F, C/G, *k)
    db = dout.sum(axis=(0, *range(2, dout.ndim))) if cache.has_bias else None
    return dx, _unflip(np.ascontiguousarray(dw), cache.op), db


def correlate(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, **kw) -> np.ndarray:
    """Cross-correlation (frameworks' "convolution"); ``conv_forward(..., op="corr")[0]``."""
    return conv_forward(x, w, b, op="corr", **kw)[0]


def convolve(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, **kw) -> np.ndarray:
    """True convolution (kernel flipped, ETH Ex. 5 P1); ``conv_forward(..., op="conv")[0]``."""
    return conv_forward(x, w, b, op="conv", **kw)[0]

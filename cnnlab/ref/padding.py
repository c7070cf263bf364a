"""Padding of the spatial axes: the fill modes, their adjoint (backward) and the size modes.

A padded axis of length ``n`` with ``(lo, hi)`` extra entries reads, for ``abcd`` and 2 each:

============  =====================  ===========================================
mode          padded ``abcd``        also called
============  =====================  ===========================================
zero          ``00|abcd|00``         constant (numpy), zeros (torch)
reflect       ``cb|abcd|cb``         numpy/torch ``reflect``, scipy ``mirror``
symmetric     ``ba|abcd|dc``         numpy ``symmetric``, scipy ``reflect``
replicate     ``aa|abcd|dd``         numpy ``edge``, torch ``replicate``, scipy ``nearest``
circular      ``cd|abcd|ab``         numpy/scipy ``wrap``, torch ``circular``
============  =====================  ===========================================

"mirror" is deliberately not an alias: scipy's ``mirror`` is numpy's ``reflect`` while OpenCV's
and MATLAB's mirror is numpy's ``symmetric`` (Problem Sheet 3, 2(e) says "reflection (mirrored)
padding" and does not say which; docs/errata.md shows both).

Every non-zero mode is an index map from padded positions to source positions, so the forward
pass is ``take`` and the backward pass scatters the gradient back to the sources: a padded
copy of an edge pixel sends its gradient to that pixel. Pads larger than the axis repeat the
pattern periodically, as numpy does (torch refuses those for reflect/circular).
"""

from __future__ import annotations

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir

FILL_MODES = ("zero", "reflect", "symmetric", "replicate", "circular")
SIZE_MODES = ("valid", "same", "full")
_ALIASES = {
    "zero": "zero", "zeros": "zero", "constant": "zero",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "replicate", "edge": "replicate", "nearest": "replicate",
    "circular": "circular", "wrap": "circular", "periodic": "circular",
}


def fill_mode(name: str) -> str:
    """Canonical fill-mode name for ``name`` or an alias; raises CnnlabError otherwise."""
    key = name.strip().lower()
    if key == "mirror":
        raise CnnlabError(
            "padding 'mirror' is ambiguous: use 'reflect' (cb|abcd|cb, numpy/torch reflect) or "
            "'symmetric' (ba|abcd|dc, the edge pixel repeated)"
        )
    if key not in _ALIASES:
        raise CnnlabError(
            f"unknown padding {name!r}; use one of {', '.join(FILL_MODES)} "
            f"(aliases: {', '.join(k for k in _ALIASES if k not in FILL_MODES)})"
        )
    return _ALIASES[key]


def source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each of the ``n + lo + hi`` padded positions, the source index in ``0..n-1``.

    Zero padding maps outside positions to ``-1``.
    """
    mode = fill_mode(mode)
    i = np.arange(-lo, n + hi)
    if mode == "zero":
        return np.where((i >= 0) & (i < n), i, -1)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return np.mod(i, n)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(i)
        period = 2 * n - 2
        m = np.mod(i, period)
        return np.where(m < n, m, period - m)
    period = 2 * n  # symmetric
    m = np.mod(i, period)
    return np.where(m < n, m, period - 1 - m)


def _check(x: np.ndarray, pads: ir.Pads) -> int:
    dims = len(pads)
    if x.ndim < dims:
        raise CnnlabError(f"cannot pad {dims} spatial axes of an array of shape {x.shape}")
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise CnnlabError(f"padding {pads} has a negative entry; pads must be >= 0")
    return x.ndim - dims


def pad(x: np.ndarray, pads: ir.Pads, mode: str = "zero", value: float = 0.0) -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``x``; ``pads[i] = (lo, hi)`` for spatial axis ``i``.

    ``x``: ``(..., n_1, ..., n_D)`` -> ``(..., n_1 + lo_1 + hi_1, ..., n_D + lo_D + hi_D)``.
    ``value`` is the fill of zero mode (max pooling pads with ``-inf``).
    """
    mode = fill_mode(mode)
    first = _check(x, pads)
    if not any(lo or hi for lo, hi in pads):
        return x
    if mode == "zero":
        width = [(0, 0)] * first + [(int(lo), int(hi)) for lo, hi in pads]
        return np.pad(x, width, mode="constant", constant_values=value)
    out = x
    for ax, (lo, hi) in enumerate(pads):
        if lo or hi:
            out = np.take(out, source_index(x.shape[first + ax], lo, hi, mode), axis=first + ax)
    return out


def pad_backward(dout: np.ndarray, pads: ir.Pads, mode: str = "zero") -> np.ndarray:
    """Adjoint of :func:`pad`: sum the gradient of every padded copy into its source.

    ``dout``: the padded shape -> the unpadded shape.
    """
    mode = fill_mode(mode)
    first = _check(dout, pads)
    if not any(lo or hi for lo, hi in pads):
        return dout
    out = dout
    for ax, (lo, hi) in enumerate(pads):
        if not (lo or hi):
            continue
        axis = first + ax
        n = dout.shape[axis] - lo - hi
        if mode == "zero":
            out = out[(slice(None),) * axis + (slice(lo, lo + n),)]
            continue
        src = source_index(n, lo, hi, mode)
        # one-hot (padded, n) matrix: the adjoint of the gather is its transpose
        onehot = np.zeros((src.size, n), dtype=dout.dtype)
        onehot[np.arange(src.size), src] = 1
        moved = np.moveaxis(out, axis, -1)  # (..., padded)
        out = np.moveaxis(moved @ onehot, -1, axis)  # (..., n)
    return out


def explicit_pads(padding: ir.Padding, size: ir.Axes, kernel: ir.Axes, stride: ir.Axes,
                  dilation: ir.Axes) -> ir.Pads:
    """``(lo, hi)`` per axis for ``'valid'``/``'same'``/``'full'`` or explicit pairs.

    Delegates to :func:`cnnlab.ir.graph.resolve_padding` so the NumPy reference and the analyzer
    agree on what ``'same'`` means (TF rule: the odd extra pixel goes to the high side).
    """
    try:
        return ir.resolve_padding(padding, size, kernel, stride, dilation)
    except ValueError as e:
        raise CnnlabError(f"padding: {e}") from None

"""TTIC Problem 4: a scale-invariant CNN over an image pyramid, weights shared across scales.

Image pyramid (the sheet's equations; ``I`` has spatial size ``2^k``)::

    I_0 = I,   I_{s+1}[b, x, y, c] = (I_s[b, 2x, 2y, c] + I_s[b, 2x+1, 2y, c]
                                      + I_s[b, 2x, 2y+1, c] + I_s[b, 2x+1, 2y+1, c]) / 4

Layers ``L_{l,s}`` (level ``l``, scale ``s``, ``l + s <= k``, spatial size ``2^(k-l-s)``),
``L_{0,s} = I_s`` and, with ``W_up`` applied to the finer map at stride 2 and ``W_left`` to
the coarser map (already the output's size) at stride 1::

    L_{l+1,s}[b, x, y, j] = sigma( W_left_{l+1}[dx, dy, i, j] L_{l,s+1}[b, x + dx, y + dy, i]
                                 + W_up_{l+1}[dx, dy, i, j]   L_{l,s}[b, 2x + dx, 2y + dy, i]
                                 - B_{l+1}[j] )

The parameters depend on the level only, never on ``s`` -- that is the scale invariance: a
digit twice as large in ``I_0`` is the same digit in ``I_1``, and the same weights see it
there. ``dx`` runs over ``-p..p`` (``p = kernel // 2``) with zero padding so that every map
keeps its ``2^(k-l-s)`` size (the sheet leaves the border implicit; see docs/errata.md for its
index slips). :func:`level_literal` is that equation in NumPy as an oracle for the torch layer;
:func:`cnnlab.ref.filters.pyramid` is the NumPy oracle of :func:`pyramid`.
The head max-pools each deepest map over space, pools over scales (max or mean) and applies
a fully connected layer.

:func:`load_trained` and :func:`accuracy_per_scale` test a finished run at single scales (the
``pyramid_scales`` measurement of the ``ttic_pyramid`` recipe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError
from cnnlab.training.evaluation import Trained, load_trained  # noqa: F401  (its loader)


def pyramid(image: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
    """Torch pyramid of ``(B, C, 2^k, 2^k)`` by 2x2 average pooling: ``[I_0, ..., I_levels]``
    (default ``levels = k``, down to 1x1)."""
    size = image.shape[-1]
    k = int(math.log2(size)) if size > 0 else -1
    if image.shape[-2] != size or 2 ** k != size:
        raise CnnlabError(f"pyramid: the image must be square with side 2^k, got "
                          f"{tuple(image.shape[-2:])}")
    levels = k if levels is None else levels
    out = [image]
    for _ in range(levels):
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def level_literal(fine: np.ndarray, coarse: np.ndarray, w_up: np.ndarray, w_left: np.ndarray,
                  b: np.ndarray, relu: bool = True) -> np.ndarray:
    """One step of the sheet's equation in NumPy (layout ``[b, x, y, i]``, weights
    ``[dx, dy, i, j]`` with ``dx`` from ``-p`` to ``p``): ``L_{l+1,s}`` from ``L_{l,s}`` (fine)
    and ``L_{l,s+1}`` (coarse); positions outside a map read as 0."""
    kx = w_up.shape[0]
    p = kx // 2
    n = coarse.shape[1]
    fine_p = np.pad(fine, ((0, 0), (p, p), (p, p), (0, 0)))
    coarse_p = np.pad(coarse, ((0, 0), (p, p), (p, p), (0, 0)))
    pre = -np.broadcast_to(b, (fine.shape[0], n, n, b.shape[0])).astype(np.float64)
    for ix in range(kx):
        for iy in range(kx):
            # padded index of x + dx is x + ix, of 2x + dx is 2x + ix (dx = ix - p)
            c = coarse_p[:, ix:ix + n, iy:iy + n]
            f = fine_p[:, ix:ix + 2 * n:2, iy:iy + 2 * n:2]
            pre = pre + np.einsum("bxyi,ij->bxyj", c, w_left[ix, iy])
            pre = pre + np.einsum("bxyi,ij->bxyj", f, w_up[ix, iy])
    return np.maximum(pre, 0) if relu else pre


class PyramidLevel(nn.Module):
    """``W_up`` (stride 2), ``W_left`` (stride 1) and ``B`` of one level, shared by all s."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 != 1:
            raise CnnlabError(f"pyramid kernel must be odd (centred dx), got {kernel}")
        pad = kernel // 2
        self.up = nn.Conv2d(c_in, c_out, kernel, stride=2, padding=pad, bias=False)
        self.left = nn.Conv2d(c_in, c_out, kernel, stride=1, padding=pad, bias=False)
        self.threshold = nn.Parameter(torch.zeros(c_out))

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        pre = self.up(fine) + self.left(coarse) - self.threshold[:, None, None]
        return F.relu(pre)


class PyramidCNN(nn.Module):
    """Levels ``1..D`` over the pyramid of a ``(C, 2^k, 2^k)`` input, then the scale-pooling
    head. ``forward_maps`` returns every ``L_{l,s}`` for inspection."""

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64),
                 classes: int = 10, kernel: int = 3, scale_pool: str = "max"):
        super().__init__()
        if scale_pool not in ("max", "mean"):
            raise CnnlabError(f"scale_pool must be 'max' or 'mean', not {scale_pool!r}")
        chans = [in_channels, *widths]
        self.levels = nn.ModuleList(PyramidLevel(a, b, kernel) for a, b in zip(
            chans[:-1], chans[1:], strict=True))
        self.scale_pool = scale_pool
        self.fc = nn.Linear(chans[-1], classes)

    def forward_maps(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """``maps[l][s] = L_{l,s}`` for ``l = 0..D`` and ``s = 0..k-l``."""
        k = int(math.log2(x.shape[-1]))
        depth = len(self.levels)
        if k < depth:
            raise CnnlabError(f"pyramid with {depth} levels needs an input of at least "
                              f"{2 ** depth}x{2 ** depth}, got {x.shape[-1]}")
        maps = [pyramid(x)]
        for level in self.levels:
            prev = maps[-1]
            maps.append([level(prev[s], prev[s + 1]) for s in range(len(prev) - 1)])
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.forward_maps(x)[-1]
        per_scale = torch.stack([m.amax(dim=(2, 3)) for m in top])  # (S, B, C)
        pooled = per_scale.amax(0) if self.scale_pool == "max" else per_scale.mean(0)
        return self.fc(pooled)


def plain_cnn_spec(widths: Sequence[int], classes: int = 10) -> str:
    """The baseline: stride-2 3x3 convs ('same' padding), global max pool, fc -- the pyramid
    without its scales (one ``W_up`` per level, no ``W_left``)."""
    body = " ".join(f"conv3x3x{w}(stride=2,padding=same) relu" for w in widths)
    return f"{body} globalmaxpool fc{classes}"


def pyramid_params(in_channels: int, widths: Sequence[int], classes: int = 10,
                   kernel: int = 3) -> int:
    """``sum(2 k^2 C_l C_{l+1} + C_{l+1}) + fc``: independent of the number of scales."""
    chans = [in_channels, *widths]
    convs = sum(2 * kernel * kernel * a * b + b for a, b in zip(chans[:-1], chans[1:],
                                                                strict=True))
    return convs + chans[-1] * classes + classes


def matched_plain_widths(budget: int, base: Sequence[int], in_channels: int = 1,
                         classes: int = 10) -> tuple[int, ...]:
    """Widths ``round(f * base)`` of :func:`plain_cnn_spec` whose parameter count (from the
    analyzer) is closest to ``budget``."""
    from cnnlab.analysis.analyze import analyze_graph
    from cnnlab.ir.spec import parse

    def count(f: float) -> tuple[int, tuple[int, ...]]:
        w = tuple(max(1, round(f * b)) for b in base)
        a = analyze_graph(parse(plain_cnn_spec(w, classes)), (in_channels, 64, 64))
        return a.total.params, w

    lo, hi = 0.05, 16.0
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if count(mid)[0] < budget:
            lo = mid
        else:
            hi = mid
    return min((count(lo), count(hi)), key=lambda cw: abs(cw[0] - budget))[1]


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Fraction of ``x`` that ``net`` classifies as ``y`` (inference mode, batches of ``batch``)."""
    with torch.inference_mode():
        hits = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, x.shape[0], batch))
    return hits / max(x.shape[0], 1)


def accuracy_per_scale(trained: Trained, tests: Sequence[Any]) -> list[float]:
    """Accuracy of a trained run on each single-scale test set (``x``, ``y`` in raw pixels,
    standardized here as the run's training inputs were)."""
    return [accuracy(trained.net, (t.x - trained.mean) / trained.std, t.y) for t in tests]

"""What a trained network got wrong and what its first layer learned, as arrays and figures.

Pure functions, used by TensorBoard logging (:mod:`cnnlab.training.tbviews`), by ``cnnlab
evaluate`` (:mod:`cnnlab.training.evaluation`) and by the report:

* :func:`predict` -- a network's classes on a set of inputs;
* :func:`as_labels` / :func:`confusion_matrix` -- one label per example (the class; the
  digits' sum for the two-digit sum task, so the trace over the total is the accuracy);
* :func:`first_layer_filters` -- the first convolution's kernels (or the first fully connected
  layer's rows seen as images), ``(n, H, W)``;
* :func:`tile` -- images side by side in one array (TensorBoard's ``add_image``);
* :func:`misclassified_figure`, :func:`confusion_figure`, :func:`filters_figure` --
  matplotlib figures (the caller saves or logs and closes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.common.plotting import pyplot

#: misclassified examples drawn at most
MAX_SHOWN = 36
#: first-layer filters drawn at most
MAX_FILTERS = 64


def label_count(num_classes: int, heads: int, score: str) -> int:
    """How many labels :func:`as_labels` can return."""
    if heads == 1:
        return num_classes
    return heads * (num_classes - 1) + 1 if score == "sum" else num_classes ** heads


def predict(net: nn.Module, x: torch.Tensor, num_classes: int, heads: int = 1,
            batch: int = 1000) -> torch.Tensor:
    """``(N, heads)`` predicted classes (argmax per head) of ``net`` on ``x``, in eval mode
    and fp32 (a plain forward pass; the training mode is restored)."""
    was_training = net.training
    net.eval()
    out = [torch.zeros((0, heads), dtype=torch.long, device=x.device)]
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            logits = net(x[i:i + batch]).reshape(-1, heads, num_classes)
            out.append(logits.float().argmax(-1))
    net.train(was_training)
    return torch.cat(out)


def as_labels(y: torch.Tensor, num_classes: int, heads: int = 1,
              score: str = "class") -> torch.Tensor:
    """``(N,)`` labels of classes ``(N,)`` or ``(N, heads)`` (targets or :func:`predict`'s
    output): the class; for several heads their sum (``score == "sum"``, the two-digit sum
    task) or the heads' digits read as one number, so label equality is what counts as
    correct and the confusion matrix's trace over its total is the accuracy."""
    y = y.reshape(y.shape[0], heads).long()
    if heads == 1:
        return y[:, 0]
    if score == "sum":
        return y.sum(1)
    weights = num_classes ** torch.arange(heads, device=y.device)
    return (y * weights).sum(1)


def confusion_matrix(true: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray,
                     n: int) -> np.ndarray:
    """``(n, n)`` int64 counts: row = true label, column = predicted label."""
    t = np.asarray(torch.as_tensor(true).cpu(), dtype=np.int64)
    p = np.asarray(torch.as_tensor(pred).cpu(), dtype=np.int64)
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Diagonal over row sums (NaN for a class with no example)."""
    rows = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / np.maximum(rows, 1), np.nan)


def first_layer(net: nn.Module) -> nn.Module | None:
    """The first convolution (of any dimension) or ``Linear`` module of ``net`` in
    definition order."""
    for m in net.modules():
        if isinstance(m, nn.modules.conv._ConvNd | nn.Linear):
            return m
    return None


def first_layer_filters(net: nn.Module, input_shape: Sequence[int] = ()) -> np.ndarray | None:
    """The first layer's weights as ``(n, H, W)`` float images (at most :data:`MAX_FILTERS`):
    a convolution's kernels (averaged over input channels when there are several), or a
    fully connected layer's rows reshaped to the input's height and width. None when the
    network has neither (a 3-D convolution first, say), or a first FC layer does not read
    the image directly."""
    layer = first_layer(net)
    if not isinstance(layer, nn.Conv2d | nn.Linear):
        return None
    w = layer.weight.detach().float().cpu()
    if isinstance(layer, nn.Conv2d):
        imgs = w.mean(1)
    else:
        shape = tuple(input_shape)
        if len(shape) != 3 or w.shape[1] != math.prod(shape):
            return None
        imgs = w.reshape(w.shape[0], *shape).mean(1)
    return imgs[:MAX_FILTERS].numpy()


def tile(images: np.ndarray, pad: int = 1, normalize: bool = True) -> np.ndarray:
    """``(n, H, W)`` images in a near-square grid, ``(rows*(H+pad)-pad, cols*(W+pad)-pad)``,
    each scaled to [0, 1] on its own (``normalize``) so every filter's pattern shows."""
    n, h, w = images.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i, img in enumerate(images):
        img = img.astype(np.float32)
        if normalize:
            lo, hi = float(img.min()), float(img.max())
            img = (img - lo) / (hi - lo) if hi > lo else np.full_like(img, 0.5)
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
    return out


def _name(names: Sequence[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else str(i)


def _image(x: np.ndarray) -> np.ndarray:
    """An input ``(C, H, W)`` (or ``(C, T, H, W)``, a clip) as something ``imshow`` draws:
    ``(H, W, 3)`` for RGB, else 2-D (the mean over the leading axes)."""
    if x.ndim == 3 and x.shape[0] == 3:
        lo, hi = float(x.min()), float(x.max())
        return ((x - lo) / (hi - lo if hi > lo else 1)).transpose(1, 2, 0)
    return x.reshape(-1, *x.shape[-2:]).mean(0) if x.ndim > 2 else x


def misclassified_figure(x: torch.Tensor | np.ndarray, true: torch.Tensor | np.ndarray,
                         pred: torch.Tensor | np.ndarray, names: Sequence[str] = (),
                         limit: int = MAX_SHOWN, title: str = "") -> Any:
    """A grid of the first ``limit`` examples with ``pred != true``, each titled
    ``true -> predicted``; a figure saying "none" when every example is right."""
    plt = pyplot()
    t = np.asarray(torch.as_tensor(true).cpu())
    p = np.asarray(torch.as_tensor(pred).cpu())
    wrong = np.flatnonzero(t != p)
    shown = wrong[:limit]
    cols = max(1, min(6, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 0.4, 1.75 * rows + 0.5),
                             squeeze=False)
    if isinstance(x, torch.Tensor):
        idx = torch.as_tensor(shown, dtype=torch.long, device=x.device)
        xs = x[idx].detach().float().cpu().numpy()
    else:
        xs = np.asarray(x, dtype=np.float32)[shown]
    for ax in axes.flat:
        ax.axis("off")
    for ax, i, img in zip(axes.flat, shown, xs, strict=False):
        ax.imshow(_image(img), cmap="gray")
        ax.set_title(f"{_name(names, int(t[i]))} \u2192 {_name(names, int(p[i]))}",
                     fontsize=10, color="C3")
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no misclassified example", ha="center", va="center")
    head = title or "misclassified"
    fig.suptitle(f"{head}: {len(shown)} of {len(wrong)} errors in {len(t)} examples "
                 "(true \u2192 predicted)", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(cm: np.ndarray, names: Sequence[str] = (), title: str = "") -> Any:
    """The confusion matrix as a heat map with the counts written in (rows true, columns
    predicted); the diagonal is left out of the colour scale so errors stand out."""
    plt = pyplot()
    n = cm.shape[0]
    size = min(max(4.0, 0.5 * n + 1.5), 14.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    vmax = max(1.0, float(np.nanmax(off)) if n > 1 else 1.0)
    im = ax.imshow(off, cmap="Reds", vmin=0, vmax=vmax)
    labels = [_name(names, i) for i in range(n)]
    ax.set_xticks(range(n), labels, fontsize=9)
    ax.set_yticks(range(n), labels, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                            fontsize=8 if n <= 10 else 6,
                            fontweight="bold" if i == j else "normal",
                            color="white" if i != j and cm[i, j] > vmax / 2 else "black")
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_title(f"{title + ': ' if title else ''}confusion matrix, accuracy {acc:.2%} "
                 f"({int(np.trace(cm))}/{total})", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="errors")
    fig.tight_layout()
    return fig


def filters_figure(filters: np.ndarray, title: str = "") -> Any:
    """The first layer's filters ``(n, H, W)``, one panel each on a shared symmetric colour
    scale (blue negative, red positive)."""
    plt = pyplot()
    n = filters.shape[0]
    cols = max(1, min(8, math.ceil(math.sqrt(n))))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(1.1 * cols + 1.2, 3.6),
                                                  max(1.1 * rows + 0.7, 2.4)),
                             squeeze=False, layout="constrained")
    lim = float(np.abs(filters).max()) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    im = None
    for ax, f in zip(axes.flat, filters, strict=False):
        im = ax.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim)
    h, w = filters.shape[1:]
    fig.suptitle(f"{title + ': ' if title else ''}first layer, {n} filters {h}x{w}",
                 fontsize=10)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8)
    return fig

"""Multi-scale MNIST for the TTIC scale-invariance problem (Problem 4).

Each 28x28 digit is resized by a factor ``f`` to ``round(28 f)`` pixels (``F.interpolate``,
bilinear with antialiasing, so shrinking averages instead of skipping pixels) and pasted at a
seeded random position of a black ``canvas x canvas`` image (default 64, a power of two as the
pyramid needs). Factors are drawn log-uniformly from a range (a digit twice as large is as
likely as one half as large), or fixed. Digits are grouped by their pixel size, so the work
is one ``interpolate`` call per distinct size and one scatter per chunk -- no per-pixel Python.

The recorded factor of an example is its exact pasted size / 28.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError
from cnnlab.data.datasets import Dataset, register_dataset
from cnnlab.data.derived import stratified_indices
from cnnlab.data.synthetic_digits import digit_source

GLYPH = 28
_CHUNK = 512


@dataclass
class Scaled:
    """``x`` ``(N, 1, canvas, canvas)``; ``y`` ``(N,)``; ``scale`` ``(N,)`` pasted size / 28;
    ``pos`` ``(N, 2)`` top-left (row, col) of the pasted digit."""

    x: torch.Tensor
    y: torch.Tensor
    scale: torch.Tensor
    pos: torch.Tensor


def draw_scales(n: int, scales: tuple[float, float] | float, seed: int) -> torch.Tensor:
    """``n`` factors: log-uniform in ``[lo, hi]``, or all equal to a single value."""
    if isinstance(scales, int | float):
        return torch.full((n,), float(scales))
    lo, hi = (float(v) for v in scales)
    if not 0 < lo <= hi:
        raise CnnlabError(f"scale range must satisfy 0 < lo <= hi, got {scales}")
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return torch.exp(torch.log(torch.tensor(lo)) + u * (torch.log(torch.tensor(hi / lo))))


def place(glyphs: torch.Tensor, labels: torch.Tensor, factors: torch.Tensor,
          canvas: int = 64, seed: int = 0) -> Scaled:
    """Resize ``glyphs`` ``(N, 1, 28, 28)`` by ``factors`` and paste them on a canvas."""
    glyphs = glyphs.float().cpu()
    n = glyphs.shape[0]
    sizes = torch.round(factors.double() * GLYPH).long().clamp(min=1)
    if int(sizes.max()) > canvas:
        raise CnnlabError(f"scale {float(factors.max()):.3g} makes a {int(sizes.max())}px digit,"
                          f" larger than the {canvas}px canvas")
    g = torch.Generator().manual_seed(seed)
    room = (canvas - sizes + 1).double()
    pos = (torch.rand(n, 2, generator=g, dtype=torch.float64) * room[:, None]).long()
    out = torch.zeros(n * canvas * canvas)
    for size in torch.unique(sizes).tolist():
        members = torch.nonzero(sizes == size).flatten()
        ar = torch.arange(size)
        for s in range(0, len(members), _CHUNK):
            idx = members[s:s + _CHUNK]
            small = F.interpolate(glyphs[idx], size=(size, size), mode="bilinear",
                                  align_corners=False, antialias=True)[:, 0]
            rows = pos[idx, 0, None] + ar
            cols = pos[idx, 1, None] + ar
            flat = (idx[:, None, None] * canvas + rows[:, :, None]) * canvas + cols[:, None, :]
            out[flat.reshape(-1)] = small.clamp(0, 1).reshape(-1)
    return Scaled(out.view(n, 1, canvas, canvas), labels.reshape(-1).long().cpu(),
                  sizes.double() / GLYPH, pos)


Range = tuple[float, float]
_CACHE: dict[tuple, Dataset] = {}


def multiscale_mnist(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                     train_scales: Range | float = (0.5, 2.0),
                     test_scales: Range | float = (0.5, 2.0), n_train: int = 10000,
                     n_test: int = 2000, canvas: int = 64, seed: int = 0,
                     source: str = "mnist") -> Dataset:
    """Digits at scales drawn from ``train_scales`` / ``test_scales`` (a range or one value).

    Train digits are a stratified seeded subset of MNIST train, test digits of MNIST test
    (``source="synthetic"``: seven-segment glyphs). Cached in memory per option set.
    """
    key = (str(data_dir), train_scales, test_scales, n_train, n_test, canvas, seed, source)
    if key not in _CACHE:
        base = digit_source(source, data_dir, "cpu", seed)
        parts = []
        for i, (x, y, n, scales) in enumerate(((base.x_train, base.y_train, n_train,
                                                train_scales),
                                               (base.x_test, base.y_test, n_test, test_scales))):
            idx = stratified_indices(y, min(n, y.shape[0]), seed + i)
            f = draw_scales(len(idx), scales, seed + 101 * (i + 1))
            parts.append(place(x[idx], y[idx], f, canvas, seed + 211 * (i + 1)))
        tr, te = parts
        _CACHE[key] = Dataset(
            "multiscale-mnist", tr.x, tr.y, te.x, te.y, 10, classes=base.classes,
            info={"source": source, "train_scales": train_scales, "test_scales": test_scales,
                  "canvas": canvas, "seed": seed,
                  "test_scale_min": float(te.scale.min()),
                  "test_scale_max": float(te.scale.max())})
    return _CACHE[key].to(device)


# name -> (train range, test range, source, n_train); the trainer loads datasets by name only
VARIANTS: dict[str, tuple[Range, Range, str, int]] = {
    "multiscale-mnist": ((0.5, 2.0), (0.5, 2.0), "mnist", 10000),
    # Problem 4's test: train on small digits only, test across all scales (unseen included)
    "multiscale-mnist-small": ((0.5, 1.0), (0.5, 2.0), "mnist", 10000),
    "multiscale-synthetic-small": ((0.5, 1.0), (0.5, 2.0), "synthetic", 2000),
}


def _variant(name: str):
    train_s, test_s, source, n_train = VARIANTS[name]

    def loader(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
               **options: object) -> Dataset:
        opts = {"train_scales": train_s, "test_scales": test_s, "source": source,
                "n_train": n_train, **options}
        return multiscale_mnist(data_dir, device, **opts)  # type: ignore[arg-type]

    loader.__doc__ = f"digits at scales {train_s} (train), {test_s} (test), from {source}"
    return loader


for _name in VARIANTS:
    register_dataset(_name)(_variant(_name))


def scale_test_set(scale: float, n: int = 2000, seed: int = 0, source: str = "mnist",
                  data_dir: str | Path | None = None, canvas: int = 64) -> Scaled:
    """``n`` test digits (stratified from MNIST test) all at one ``scale``: the per-scale
    evaluation sets of the pyramid study (same digits and positions seed for every scale)."""
    base = digit_source(source, data_dir, "cpu", seed)
    idx = stratified_indices(base.y_test, min(n, base.y_test.shape[0]), seed + 1)
    return place(base.x_test[idx], base.y_test[idx], draw_scales(len(idx), scale, 0), canvas,
                 seed + 211 * 2)

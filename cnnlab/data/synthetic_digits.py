"""Small synthetic 28x28 "digits": seven-segment glyphs with seeded jitter.

The TTIC video and multi-scale datasets are built from MNIST (``data.load("mnist")``). Where
the MNIST files are absent (a fresh machine offline, a unit test) these glyphs stand in: ten
visually distinct classes, the same shape and value range as MNIST (``(N, 1, 28, 28)`` floats
in ``[0, 1]``, ink on a black background), generated with tensor ops only.
"""

from __future__ import annotations

import torch

from cnnlab.data.datasets import Dataset, register_dataset

# segments a..g of a seven-segment display: (row0, row1, col0, col1) in a 28x28 glyph box
_SEGMENTS = (
    (4, 7, 8, 20),     # a: top
    (4, 14, 17, 20),   # b: top right
    (14, 24, 17, 20),  # c: bottom right
    (21, 24, 8, 20),   # d: bottom
    (14, 24, 8, 11),   # e: bottom left
    (4, 14, 8, 11),    # f: top left
    (12, 16, 8, 20),   # g: middle
)
_DIGITS = ("abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg",
           "abcdfg")


def _templates() -> torch.Tensor:
    """``(10, 28, 28)`` binary glyphs, one per digit."""
    rows = torch.arange(28)
    out = torch.zeros(10, 28, 28)
    for digit, segs in enumerate(_DIGITS):
        for s in segs:
            r0, r1, c0, c1 = _SEGMENTS[ord(s) - ord("a")]
            mask = ((rows[:, None] >= r0) & (rows[:, None] < r1)
                    & (rows[None, :] >= c0) & (rows[None, :] < c1))
            out[digit] = torch.maximum(out[digit], mask.float())
    return out


def synthetic_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` glyphs ``(n, 1, 28, 28)`` and labels ``(n,)``: random digit, shift of up to 2
    pixels, random ink intensity in [0.6, 1] and a little noise, all from ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    img = _templates()[labels]
    dy = torch.randint(-2, 3, (n,), generator=g)
    dx = torch.randint(-2, 3, (n,), generator=g)
    idx = torch.arange(28)
    rows = (idx[None, :] - dy[:, None]).clamp(0, 27)
    cols = (idx[None, :] - dx[:, None]).clamp(0, 27)
    img = img[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    ink = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=g)
    noise = 0.05 * torch.rand(n, 28, 28, generator=g)
    return (img * ink + noise * img).clamp(0, 1).unsqueeze(1), labels


def synthetic_mnist(n_train: int = 2000, n_test: int = 500, seed: int = 0,
                    device: torch.device | str = "cpu") -> Dataset:
    """A :class:`Dataset` of glyphs shaped like MNIST (for tests and offline runs)."""
    x_tr, y_tr = synthetic_digits(n_train, seed)
    x_te, y_te = synthetic_digits(n_test, seed + 10_000)
    return Dataset("synthetic-digits", x_tr.to(device), y_tr.to(device), x_te.to(device),
                   y_te.to(device), 10, classes=tuple(str(i) for i in range(10)),
                   info={"source": "synthetic seven-segment glyphs"})


def digit_source(source: str = "mnist", data_dir: object = None,
                 device: torch.device | str = "cpu", seed: int = 0) -> Dataset:
    """The digits a derived TTIC dataset is made from: ``"mnist"`` (``data.load``) or
    ``"synthetic"`` (:func:`synthetic_mnist`)."""
    from cnnlab.common.errors import CnnlabError
    from cnnlab.data.datasets import load

    if source == "mnist":
        return load("mnist", data_dir, device)
    if source == "synthetic":
        return synthetic_mnist(seed=seed, device=device)
    raise CnnlabError(f"digit source must be 'mnist' or 'synthetic', not {source!r}")


@register_dataset("synthetic-digits")
def _synthetic(data_dir: object = None, device: torch.device | str = "cpu",
               n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Dataset:
    """Seven-segment glyphs shaped like MNIST (offline stand-in for tests and demos)."""
    return synthetic_mnist(n_train, n_test, seed, device)

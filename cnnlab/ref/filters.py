"""Classic image filters, gradient magnitude, separability and the 2x2 image pyramid.

Kernels are written as the sheets print them and applied by true convolution by default
(kernel flipped; Problem Sheet 3, 2(d)), through :mod:`cnnlab.ref.conv`, with any padding of
:data:`cnnlab.ref.padding.FILL_MODES` and the size modes ``same``/``valid``/``full``.

* Prewitt, Sobel, Laplacian, box and Gaussian kernels (:data:`KERNELS`);
* gradient magnitude ``sqrt(g_x^2 + g_y^2)`` (Problem Sheet 3, 2(d)-(e));
* separability by SVD: a kernel is separable iff it has rank 1, ``K = v h^T`` with
  ``v = sqrt(s_1) u_1``, ``h = sqrt(s_1) v_1`` (Problem Sheet 3, 3(b)-(c));
* multiplication counts of full vs separable filtering, counted while filtering and by formula
  (``O(N^2 K^2)`` vs ``O(N^2 K)``, Problem Sheet 3, 3(f));
* the image pyramid ``I_{s+1}`` = mean of 2x2 blocks of ``I_s`` (TTIC Problem 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ref.conv import conv_forward
from cnnlab.ref.padding import explicit_pads, fill_mode, pad

Op = Literal["conv", "corr"]

# Problem Sheet 3, 2(d): h_x responds to horizontal change, h_y to vertical change
PREWITT_X = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])
PREWITT_Y = np.array([[1.0, 1, 1], [0, 0, 0], [-1, -1, -1]])
SOBEL_X = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
SOBEL_Y = SOBEL_X.T.copy()
LAPLACIAN = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])


def gaussian(size: int = 5, sigma: float | None = None) -> np.ndarray:
    """Normalised ``size x size`` Gaussian; ``sigma`` defaults to ``size / 6`` (+-3 sigma)."""
    if size < 1:
        raise CnnlabError(f"gaussian kernel size must be >= 1, got {size}")
    sigma = size / 6 if sigma is None else sigma
    if sigma <= 0:
        raise CnnlabError(f"gaussian sigma must be positive, got {sigma}")
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return np.outer(g, g) / g.sum() ** 2


def box(size: int = 3) -> np.ndarray:
    """``size x size`` mean filter."""
    if size < 1:
        raise CnnlabError(f"box kernel size must be >= 1, got {size}")
    return np.full((size, size), 1.0 / size**2)


KERNELS: dict[str, Callable[[], np.ndarray]] = {
    "prewitt-x": PREWITT_X.copy,
    "prewitt-y": PREWITT_Y.copy,
    "sobel-x": SOBEL_X.copy,
    "sobel-y": SOBEL_Y.copy,
    "laplacian": LAPLACIAN.copy,
    "gaussian": gaussian,
    "box": box,
}
# names that are a pair (x kernel, y kernel) combined into a gradient magnitude
MAGNITUDES: dict[str, tuple[str, str]] = {
    "prewitt-magnitude": ("prewitt-x", "prewitt-y"),
    "sobel-magnitude": ("sobel-x", "sobel-y"),
}


def kernel(name: str) -> np.ndarray:
    """A named 2D kernel from :data:`KERNELS`."""
    if name not in KERNELS:
        raise CnnlabError(f"unknown kernel {name!r}; named kernels: "
                          f"{', '.join([*KERNELS, *MAGNITUDES])}")
    return KERNELS[name]()


def filter2d(image: np.ndarray, k: np.ndarray, padding: str = "zero", mode: str = "same",
             op: Op = "conv") -> np.ndarray:
    """Filter a ``(H, W)`` image, or each channel of a ``(H, W, C)`` one, with kernel ``k``.

    ``padding``: the fill (zero, reflect, symmetric, replicate, circular); ``mode``: the
    output size, ``same`` (``H x W``), ``valid`` (``H-M+1 x W-N+1``) or ``full``
    (``H+M-1 x W+N-1``); ``op``: ``conv`` (true convolution, kernel flipped) or ``corr``.
    """
    img = np.asarray(image, dtype=float)
    k = np.asarray(k, dtype=float)
    if k.ndim != 2 or k.size == 0:
        raise CnnlabError(f"a 2D filter needs a matrix kernel, got shape {k.shape}")
    if img.ndim == 2:
        x = img[None, None]  # (1, 1, H, W)
    elif img.ndim == 3:
        x = np.moveaxis(img, -1, 0)[:, None]  # (C, 1, H, W): channels filtered alike
    else:
        raise CnnlabError(f"an image is (H, W) or (H, W, C), got shape {img.shape}")
    if mode not in ("same", "valid", "full"):
        raise CnnlabError(f"output size mode must be same, valid or full, got {mode!r}")
    out, _ = conv_forward(x, k[None, None], padding=mode, pad_mode=padding, op=op)
    return out[0, 0] if img.ndim == 2 else np.moveaxis(out[:, 0], 0, -1)


@dataclass(frozen=True)
class Gradient:
    gx: np.ndarray
    gy: np.ndarray
    magnitude: np.ndarray  # sqrt(gx^2 + gy^2)


def gradient_magnitude(image: np.ndarray, kx: np.ndarray | str = "prewitt-x",
                       ky: np.ndarray | str = "prewitt-y", padding: str = "zero",
                       mode: str = "same", op: Op = "conv") -> Gradient:
    """``g_x = I * k_x``, ``g_y = I * k_y`` and ``|g| = sqrt(g_x^2 + g_y^2)``."""
    kx = kernel(kx) if isinstance(kx, str) else kx
    ky = kernel(ky) if isinstance(ky, str) else ky
    gx = filter2d(image, kx, padding, mode, op)
    gy = filter2d(image, ky, padding, mode, op)
    return Gradient(gx, gy, np.hypot(gx, gy))


# -------------------------------------------------------------------------- separability


@dataclass(frozen=True)
class Separability:
    """SVD of a kernel: separable iff rank 1; then ``kernel == outer(column, row)``."""

    separable: bool
    rank: int
    singular_values: tuple[float, ...]
    column: np.ndarray | None  # (M,) vertical 1D filter
    row: np.ndarray | None  # (N,) horizontal 1D filter
    residual: float  # max |kernel - outer(column, row)| of the best rank-1 approximation
    determinant: float | None  # square kernels only (Problem Sheet 3, 3(c) uses det)


def separate(k: np.ndarray, tol: float = 1e-10) -> Separability:
    """Rank-1 factorisation of ``k`` by SVD; singular values below ``tol * s_1`` count as 0."""
    k = np.asarray(k, dtype=float)
    if k.ndim != 2 or k.size == 0:
        raise CnnlabError(f"separability needs a matrix kernel, got shape {k.shape}")
    u, s, vt = np.linalg.svd(k)
    rank = int(np.sum(s > tol * max(s[0], np.finfo(float).tiny)))
    col, row = u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])
    nz = np.flatnonzero(np.abs(col) > tol * max(np.abs(col).max(), np.finfo(float).tiny))
    if nz.size:
        # scale so the smallest non-zero tap of the column is +1: Prewitt -> (1,1,1)(1,0,-1)
        c = col[nz[np.argmin(np.abs(col[nz]))]]
        col, row = col / c + 0.0, row * c + 0.0  # + 0.0 turns -0.0 into 0.0
    residual = float(np.abs(k - np.outer(col, row)).max())
    det = float(np.linalg.det(k)) if k.shape[0] == k.shape[1] else None
    ok = rank == 1
    return Separability(ok, rank, tuple(float(v) for v in s), col if ok else None,
                        row if ok else None, residual, det)


# -------------------------------------------------------------- multiplication counting


class _Counter:
    """Multiplies a scalar tap by an array slice and counts the element products."""

    def __init__(self) -> None:
        self.count = 0

    def mul(self, tap: float, arr: np.ndarray) -> np.ndarray:
        self.count += arr.size
        return tap * arr


def _padded(image: np.ndarray, shape: tuple[int, int], padding: str, mode: str) -> np.ndarray:
    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise CnnlabError(f"counted filtering takes a (H, W) image, got shape {img.shape}")
    pads = explicit_pads(mode, img.shape, shape, (1, 1), (1, 1))  # type: ignore[arg-type]
    return pad(img, pads, fill_mode(padding))


def filter2d_counted(image: np.ndarray, k: np.ndarray, padding: str = "zero",
                     mode: str = "valid", op: Op = "conv") -> tuple[np.ndarray, int]:
    """Direct 2D filtering, one product per (output pixel, tap): returns (output, count)."""
    k = np.asarray(k, dtype=float)
    k = k[::-1, ::-1] if op == "conv" else k
    xp = _padded(image, k.shape, padding, mode)
    m, n = k.shape
    ho, wo = xp.shape[0] - m + 1, xp.shape[1] - n + 1
    c = _Counter()
    out = np.zeros((ho, wo))
    for i in range(m):
        for j in range(n):
            out += c.mul(k[i, j], xp[i:i + ho, j:j + wo])
    return out, c.count


def separable_filter2d_counted(image: np.ndarray, column: np.ndarray, row: np.ndarray,
                               padding: str = "zero", mode: str = "valid", op: Op = "conv"
                               ) -> tuple[np.ndarray, int]:
    """Filter with ``outer(column, row)`` as a row pass then a column pass: (output, count)."""
    column, row = np.asarray(column, float), np.asarray(row, float)
    if op == "conv":
        column, row = column[::-1], row[::-1]
    xp = _padded(image, (column.size, row.size), padding, mode)
    m, n = column.size, row.size
    ho, wo = xp.shape[0] - m + 1, xp.shape[1] - n + 1
    c = _Counter()
    tmp = np.zeros((xp.shape[0], wo))  # every padded row, filtered horizontally
    for j in range(n):
        tmp += c.mul(row[j], xp[:, j:j + wo])
    out = np.zeros((ho, wo))
    for i in range(m):
        out += c.mul(column[i], tmp[i:i + ho])
    return out, c.count


def mults_full(h: int, w: int, m: int, n: int) -> int:
    """Products of direct filtering of a padded ``h x w`` image by ``m x n``: ``Ho Wo m n``."""
    return (h - m + 1) * (w - n + 1) * m * n


def mults_separable(h: int, w: int, m: int, n: int) -> int:
    """Row pass ``h Wo n`` plus column pass ``Ho Wo m`` (padded ``h x w`` image)."""
    return h * (w - n + 1) * n + (h - m + 1) * (w - n + 1) * m


# ------------------------------------------------------------------------------ pyramid


def pyramid(image: np.ndarray, levels: int | None = None,
            axes: tuple[int, int] = (0, 1)) -> list[np.ndarray]:
    """TTIC Problem 4: ``I_0 = I``, ``I_{s+1}[x, y] = (I_s[2x, 2y] + I_s[2x+1, 2y] +
    I_s[2x, 2y+1] + I_s[2x+1, 2y+1]) / 4`` over the two spatial ``axes``.

    ``(2^k, 2^k)`` gives ``k + 1`` levels down to ``1 x 1`` (``levels`` counts the
    reductions); a level with an odd size cannot be halved and raises CnnlabError.
    """
    img = np.asarray(image, dtype=float)
    ax = tuple(a % img.ndim for a in axes)
    if len(set(ax)) != 2:
        raise CnnlabError(f"pyramid needs two distinct spatial axes, got {axes}")
    out = [img]
    while levels is None or len(out) <= levels:
        cur = out[-1]
        h, w = cur.shape[ax[0]], cur.shape[ax[1]]
        if levels is None and (h == 1 or w == 1):
            break
        if h % 2 or w % 2:
            raise CnnlabError(f"pyramid level {len(out) - 1} is {h}x{w}: an odd size cannot be "
                              "halved; crop or pad the image to 2^k x 2^k (TTIC Problem 4)")
        moved = np.moveaxis(cur, ax, (0, 1))  # (H, W, ...)
        blocks = moved.reshape(h // 2, 2, w // 2, 2, *moved.shape[2:])  # (H/2, 2, W/2, 2, ...)
        out.append(np.moveaxis(blocks.mean(axis=(1, 3)), (0, 1), ax))
    return out

"""Moving-MNIST clips for the TTIC video CNN (Problem 2): one digit bouncing in a square frame.

A clip is ``(1, T, S, S)`` (channels, time, height, width -- the ``(N, C, T, H, W)`` layout of
``nn.Conv3d``). Each digit starts at a seeded position and moves ``speed`` pixels per frame
along one of eight compass directions (diagonals move ``speed`` on both axes); at a wall it is
reflected, so it never leaves the frame. Positions follow the closed form of a reflected walk::

    u = (p0 + v t) mod 2L,   p(t) = L - |L - u|,   L = S - 28 (largest top-left coordinate)

so a whole clip is computed with tensor arithmetic, and the frames are painted by one scatter
per chunk of clips (no per-pixel or per-frame Python).

Labels: ``target="digit"`` (10 classes) or ``target="direction"`` (8 classes, the direction of
the first step; start positions keep the first step clear of the walls so that direction is
exactly the displacement between frames 0 and 1 -- later bounces change it, so a model must
look at the start of the clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.data.datasets import Dataset, register_dataset
from cnnlab.data.derived import stratified_indices
from cnnlab.data.synthetic_digits import digit_source

# (dx, dy) per direction class; image rows grow downwards, so dy = +1 is "south"
DIRECTIONS: tuple[tuple[int, int], ...] = (
    (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
DIRECTION_NAMES = ("E", "SE", "S", "SW", "W", "NW", "N", "NE")
GLYPH = 28
_CHUNK = 256


@dataclass
class Clips:
    """Generated clips and everything needed to check them.

    ``x`` ``(N, 1, T, S, S)``; ``digit``/``direction`` ``(N,)``; ``pos`` ``(N, T, 2)`` the
    glyph's top-left (row, col) per frame; ``velocity`` ``(N, 2)`` (row, col) per frame at t=0.
    """

    x: torch.Tensor
    digit: torch.Tensor
    direction: torch.Tensor
    pos: torch.Tensor
    velocity: torch.Tensor


def bounce(p0: torch.Tensor, v: torch.Tensor, t: torch.Tensor, limit: int) -> torch.Tensor:
    """Position at times ``t`` of a point starting at ``p0`` with velocity ``v``, reflected at
    0 and ``limit`` (broadcasting ``p0``/``v`` ``(N, 1)`` against ``t`` ``(T,)``)."""
    if limit <= 0:
        return torch.zeros(torch.broadcast_shapes(p0.shape, t.shape), dtype=p0.dtype)
    u = torch.remainder(p0 + v * t, 2 * limit)
    return limit - (limit - u).abs()


def paint(glyphs: torch.Tensor, pos: torch.Tensor, size: int) -> torch.Tensor:
    """Frames ``(N, T, size, size)`` with glyph ``n`` ``(N, g, g)`` at ``pos[n, t]`` (top-left)."""
    n, frames = pos.shape[:2]
    g = glyphs.shape[-1]
    out = torch.zeros(n * frames * size * size, dtype=glyphs.dtype)
    ar = torch.arange(g)
    for s in range(0, n, _CHUNK):
        e = min(s + _CHUNK, n)
        base = (torch.arange(s, e)[:, None] * frames + torch.arange(frames)[None, :]) * size
        rows = pos[s:e, :, 0, None] + ar  # (c, T, g)
        cols = pos[s:e, :, 1, None] + ar
        flat = ((base[:, :, None, None] + rows[:, :, :, None]) * size + cols[:, :, None, :])
        vals = glyphs[s:e, None].expand(-1, frames, -1, -1)
        out[flat.reshape(-1)] = vals.reshape(-1)
    return out.view(n, frames, size, size)


def make_clips(glyphs: torch.Tensor, digits: torch.Tensor, frames: int = 8, size: int = 64,
               speed: int = 2, seed: int = 0) -> Clips:
    """Clips of ``glyphs`` (``(N, 1, 28, 28)`` or ``(N, 28, 28)``) moving and bouncing."""
    glyphs = glyphs.reshape(glyphs.shape[0], glyphs.shape[-2], glyphs.shape[-1]).float().cpu()
    limit = size - glyphs.shape[-1]
    if frames < 2 or speed < 1:
        raise CnnlabError(f"moving-mnist needs frames >= 2 and speed >= 1 (got {frames}, "
                          f"{speed})")
    if limit < 2 * speed:
        need = glyphs.shape[-1] + 2 * speed
        raise CnnlabError(f"moving-mnist: frame {size} is too small for a {glyphs.shape[-1]}px "
                          f"digit moving {speed}px/frame; use size >= {need}")
    n = glyphs.shape[0]
    g = torch.Generator().manual_seed(seed)
    direction = torch.randint(0, len(DIRECTIONS), (n,), generator=g)
    # (row, col) velocity: DIRECTIONS are (dx, dy) = (col, row)
    step = torch.tensor(DIRECTIONS)[:, [1, 0]]
    velocity = step[direction] * speed
    # start at least one step away from the walls so the first step is never reflected
    p0 = torch.randint(speed, limit - speed + 1, (n, 2), generator=g)
    t = torch.arange(frames)
    pos = bounce(p0[:, None, :], velocity[:, None, :], t[None, :, None], limit)
    x = paint(glyphs, pos, size).unsqueeze(1)
    return Clips(x, digits.reshape(-1).long().cpu(), direction, pos, velocity)


_CACHE: dict[tuple, Dataset] = {}


def moving_mnist(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                 target: str = "digit", n_train: int = 2000, n_test: int = 500,
                 frames: int = 8, size: int = 64, speed: int = 2, seed: int = 0,
                 source: str = "mnist") -> Dataset:
    """Moving-MNIST clips ``(N, 1, frames, size, size)``; labels by ``target``.

    Digits are a stratified seeded subset of MNIST train (test clips from MNIST test);
    ``source="synthetic"`` uses seven-segment glyphs instead. Results are cached in memory
    per option set, so a sweep generates each clip set once.
    """
    if target not in ("digit", "direction"):
        raise CnnlabError(f"moving-mnist target must be 'digit' or 'direction', not {target!r}")
    key = (str(data_dir), target, n_train, n_test, frames, size, speed, seed, source)
    if key not in _CACHE:
        base = digit_source(source, data_dir, "cpu", seed)
        splits = []
        for i, (x, y, n) in enumerate(((base.x_train, base.y_train, n_train),
                                       (base.x_test, base.y_test, n_test))):
            idx = stratified_indices(y, min(n, y.shape[0]), seed + i)
            splits.append(make_clips(x[idx], y[idx], frames, size, speed, seed + 7919 * (i + 1)))
        tr, te = splits
        if target == "digit":
            y_tr, y_te, classes = tr.digit, te.digit, base.classes
        else:
            y_tr, y_te, classes = tr.direction, te.direction, DIRECTION_NAMES
        name = "moving-mnist" if target == "digit" else "moving-mnist-direction"
        _CACHE[key] = Dataset(
            name, tr.x, y_tr, te.x, y_te, len(classes), classes=tuple(classes),
            info={"source": source, "frames": frames, "size": size, "speed": speed,
                  "seed": seed, "target": target})
    return _CACHE[key].to(device)


@register_dataset("moving-mnist")
def _moving_digit(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                  **options: object) -> Dataset:
    """Moving MNIST, class = the digit."""
    return moving_mnist(data_dir, device, target="digit", **options)  # type: ignore[arg-type]


@register_dataset("moving-mnist-direction")
def _moving_direction(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                      **options: object) -> Dataset:
    """Moving MNIST, class = the direction of motion (8 compass directions)."""
    return moving_mnist(data_dir, device, target="direction", **options)  # type: ignore[arg-type]


@register_dataset("moving-mnist-synthetic")
def _moving_synthetic(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                      **options: object) -> Dataset:
    """Moving seven-segment glyphs (class = digit): runs offline, without the MNIST files."""
    opts = {"source": "synthetic", "n_train": 1000, "n_test": 300, **options}
    return moving_mnist(data_dir, device, target="digit", **opts)  # type: ignore[arg-type]

"""Data augmentation on whole mini-batches, on the training device, seeded.

``Augment.parse("shift=2,rotate=10,noise=0.1")``: random translation by up to ``shift``
pixels (whole pixels, as a pad-and-crop would), rotation by up to ``rotate`` degrees,
Gaussian noise of standard deviation ``noise`` (in the data's units). One affine resampling
per batch does shift and rotation together, so the cost is one ``grid_sample`` call.

Two ways of using it, compared by an experiment: per mini-batch while training
(:meth:`Augment.__call__`, fresh transforms every step) or up front
(:func:`augment_upfront`: the training set enlarged once by augmented copies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch.nn import functional as F

from cnnlab.common.config import RANGE, check_range
from cnnlab.common.errors import CnnlabError
from cnnlab.data.datasets import Dataset


@dataclass(frozen=True)
class Augment:
    # domains: a shift is whole pixels (bounded again by the image in check_image), a rotation
    # past 180 degrees repeats, noise beyond 1000 standard deviations is only noise
    shift: int = field(default=0, metadata={RANGE: (0, 65536)})
    rotate: float = field(default=0.0, metadata={RANGE: (0, 180)})
    noise: float = field(default=0.0, metadata={RANGE: (0, 1000)})
    # the value of an empty pixel, so shifted-in borders look like background after
    # normalisation (0 for raw [0, 1] images)
    fill: float = 0.0

    @classmethod
    def parse(cls, text: str, fill: float = 0.0) -> Augment:
        """``"shift=2,rotate=10,noise=0.1"``; an empty string means no augmentation."""
        bounds = {f.name: f.metadata[RANGE] for f in fields(cls) if RANGE in f.metadata}
        known = set(bounds)
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, val = part.partition("=")
            key = key.strip()
            if key not in known or not val:
                raise CnnlabError(f"--augment: expected key=value with key in "
                                  f"{', '.join(sorted(known))}, got {part!r}")
            try:
                values[key] = float(val)
            except ValueError:
                raise CnnlabError(f"--augment: {key} needs a number, got {val!r}") from None
            check_range(key, values[key], bounds[key], where="--augment")
            if key == "shift" and values[key] != int(values[key]):
                raise CnnlabError(f"--augment: shift is whole pixels, got {val!r}; "
                                  f"use shift={int(values[key])}")
        return cls(shift=int(values.get("shift", 0)), rotate=values.get("rotate", 0.0),
                   noise=values.get("noise", 0.0), fill=fill)

    def check_image(self, shape: tuple[int, ...]) -> None:
        """A shift must leave part of the image in view: ``shift=99999`` on 28x28 images
        would train on blank ones."""
        if self.shift and len(shape) >= 2 and self.shift >= min(shape[-2:]):
            h, w = shape[-2:]
            raise CnnlabError(f"--augment: shift={self.shift} moves the whole {h}x{w} image "
                              f"out of view; use shift < {min(h, w)} (a few pixels is usual)")

    @property
    def active(self) -> bool:
        return bool(self.shift or self.rotate or self.noise)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augmented copy of the batch ``x`` ``(N, C, H, W)``; ``gen`` lives on x's device."""
        if not self.active:
            return x
        n, _, h, w = x.shape
        if self.shift or self.rotate:
            theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
            angle = (torch.rand(n, generator=gen, device=x.device) * 2 - 1)
            angle = angle.to(x.dtype) * math.radians(self.rotate)
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
            theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
            if self.shift:
                d = torch.randint(-self.shift, self.shift + 1, (n, 2), generator=gen,
                                  device=x.device).to(x.dtype)
                # grid coordinates are in [-1, 1]: one pixel is 2/size
                theta[:, 0, 2] = -2 * d[:, 0] / w
                theta[:, 1, 2] = -2 * d[:, 1] / h
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False) + self.fill
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=gen, device=x.device,
                                             dtype=x.dtype)
        return x


def augment_upfront(ds: Dataset, aug: Augment, copies: int, seed: int = 0,
                    chunk: int = 4096) -> Dataset:
    """The training set plus ``copies`` augmented copies of it, made once before training."""
    if copies < 1 or not aug.active:
        return ds
    gen = torch.Generator(device=ds.device).manual_seed(seed)
    xs, ys = [ds.x_train], [ds.y_train]
    for _ in range(copies):
        parts = [aug(ds.x_train[i:i + chunk], gen) for i in range(0, len(ds.x_train), chunk)]
        xs.append(torch.cat(parts))
        ys.append(ds.y_train)
    return ds.with_train(torch.cat(xs), torch.cat(ys), augment_copies=copies)

"""Tiny synthetic MNIST-like IDX files for fast trainer tests (no real data needed).

Class ``c`` is a bright 6x6 square at one of ten positions plus noise: learnable in a few
dozen steps by a small CNN, so tests can check learning, resume and logging in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data import datasets as data

STEMS = list(data.SPLITS.values())


def make_images(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    img = rng.normal(0.1, 0.08, size=(n, size, size))
    for i, c in enumerate(labels):
        r, q = 3 + 12 * (c // 5), 1 + 5 * (c % 5)
        img[i, r:r + 6, q:q + 6] += 0.8
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


def write_tiny(folder: Path, n_train: int = 200, n_test: int = 100, gz: bool = True,
               seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    xtr, ytr = make_images(n_train, seed)
    xte, yte = make_images(n_test, seed + 1)
    suffix = ".gz" if gz else ""
    for stem, arr in zip(STEMS, (xtr, ytr, xte, yte), strict=True):
        data.write_idx(folder / (stem + suffix), arr)
    return folder


@data.register_dataset("tiny")
def tiny(data_dir=None, device="cpu", download=False):
    return data.load_idx_dataset("tiny", data_dir, device, download=False)


def tiny_config(tmp_path: Path, **kw):
    from cnnlab.training.trainer import TrainConfig

    data_dir = tmp_path / "tiny"
    if not data_dir.exists():
        write_tiny(data_dir)
    base = dict(spec="conv3x3x4 relu maxpool2 fc16 relu fc10", dataset="tiny",
                data_dir=str(data_dir), runs_dir=str(tmp_path / "runs"), out_name="r",
                optimizer="adam", lr=3e-3, batch_size=20, iterations=30, eval_every=10,
                log_every=5, progress="off", threads=1)
    base.update(kw)
    return TrainConfig(**base)

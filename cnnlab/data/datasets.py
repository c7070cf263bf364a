"""MNIST-family datasets from the original IDX files, held as float tensors on the device.

Lookup order for a dataset ``<name>`` (first folder holding all four files wins):
``--data-dir``, ``$CNNLAB_DATA/<name>``, ``~/.cache/cnnlab/<name>``,
``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` package). If none has the
files, they are downloaded into the cache from the standard mirrors; offline that fails with
one line saying which files to put where. Every file is checked against its SHA-256, gzipped
or not (Debian and some mirrors ship them uncompressed), so a truncated download never trains.

Datasets are registered by name (:func:`register_dataset`); :func:`load` returns a
:class:`Dataset` whose images are ``float32`` in ``[0, 1]``, shape ``(N, 1, H, W)``.
Plugins (the ``cnnlab.datasets`` entry-point group, see :mod:`cnnlab.common.plugins`) are
imported on first lookup, so a package (the TTIC moving/multiscale MNIST, a third party's) can
add its own datasets without this file knowing them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import atomic_write
from cnnlab.common.plugins import load_plugins, plugin_modules
from cnnlab.data.dataset import Dataset
from cnnlab.data.derived import pairs

PLUGIN_GROUP = "cnnlab.datasets"  # entry-point group of dataset plugins

SPLITS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# file stem -> (sha256 of the .gz, sha256 of the raw IDX file)
HASHES: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": (
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": (
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": (
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
}

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

DOWNLOAD_TIMEOUT_S = 20.0


# ------------------------------------------------------------------------ IDX files


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a NumPy array of its declared dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CnnlabError(f"{path}: not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise CnnlabError(f"{path}: unknown IDX element type 0x{code:02x}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(dtypes[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise CnnlabError(f"{path}: truncated IDX file ({len(body)} of {expected} bytes)")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.tobytes()
    atomic_write(path, lambda fh: fh.write(gzip.compress(data) if path.suffix == ".gz"
                                           else data))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz",
                 stem.replace("-idx", ".idx")):
        p = folder / cand
        if p.is_file():
            return p
    return None


def _verify(path: Path, stem: str, hashes: dict[str, tuple[str, str]] | None,
            got: str | None = None) -> None:
    """Check ``path`` (or the digest ``got`` of bytes about to become ``path``)."""
    if hashes is None:
        return
    gz_hash, raw_hash = hashes[stem.removesuffix(".gz")]
    want = gz_hash if path.suffix == ".gz" or stem.endswith(".gz") else raw_hash
    got = got or sha256(path)
    if got != want:
        raise CnnlabError(f"{path}: SHA-256 mismatch (got {got[:12]}..., expected "
                          f"{want[:12]}...); the file is corrupt or not the original, "
                          "delete it and fetch it again")


# ------------------------------------------------------------------------ lookup


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab"


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for ``name``'s files, in order."""
    out: list[Path] = []
    if data_dir:
        d = Path(data_dir)
        out += [d, d / name]
    env = os.environ.get("CNNLAB_DATA")
    if env:
        out.append(Path(env) / name)
    out.append(cache_dir() / name)
    out.append(Path("/usr/share/datasets") / name)
    return out


def _download(name: str, dest: Path, stems: list[str]) -> None:
    """Fetch each ``<stem>.gz`` from the first mirror that serves the right bytes. A file is
    checked against its SHA-256 before it is moved into place (the one atomic writer), so a
    truncated or wrong download never lands in the cache."""
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for stem in stems:
        target = dest / (stem + ".gz")
        for mirror in MIRRORS.get(name, ()):
            url = mirror + stem + ".gz"

            def fetch(fh: IO[bytes], url: str = url, target: Path = target) -> None:
                h = hashlib.sha256()
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
                    for chunk in iter(lambda: r.read(1 << 20), b""):
                        h.update(chunk)
                        fh.write(chunk)
                _verify(target, target.name, HASHES.get(name), got=h.hexdigest())

            try:
                atomic_write(target, fetch)
                break
            except (OSError, ValueError, CnnlabError) as e:
                errors.append(f"{stem}.gz from {urllib.parse.urlsplit(url).netloc or url}: {e}")
        else:
            raise OSError("; ".join(errors[-2:]))


def available(name: str, data_dir: str | Path | None = None) -> bool:
    """Are the IDX files of ``name`` on this machine (no download)?"""
    try:
        locate(name, data_dir, download=False)
    except CnnlabError:
        return False
    return True


def locate(name: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding all four IDX files of ``name`` (downloading them if allowed)."""
    stems = list(SPLITS.values())
    dirs = search_dirs(name, data_dir)
    for d in dirs:
        if all(_find_file(d, s) for s in stems):
            return d
    if data_dir:
        d = Path(data_dir)
        missing = [s for s in stems if not (_find_file(d, s) or _find_file(d / name, s))]
        raise CnnlabError(f"--data-dir {d} lacks {name} file(s) {', '.join(missing)} "
                          "(.gz or raw IDX)")
    if download and name in MIRRORS:
        try:
            _download(name, cache_dir() / name, stems)
            return cache_dir() / name
        except OSError as e:
            reason = str(e).splitlines()[0][:400]
            msg = _missing_message(name, dirs) + f" (download failed: {reason})"
            raise CnnlabError(msg) from None
    raise CnnlabError(_missing_message(name, dirs))


def _missing_message(name: str, dirs: list[Path]) -> str:
    files = ", ".join(s + ".gz" for s in SPLITS.values())
    return (f"{name} not found; put {files} into {cache_dir() / name} or a folder named "
            f"$CNNLAB_DATA/{name}, or pass --data-dir (searched: "
            f"{', '.join(str(d) for d in dirs)})")


def load_idx_dataset(name: str, data_dir: str | Path | None = None,
                     device: torch.device | str = "cpu", download: bool = True) -> Dataset:
    """Load the four IDX files of an MNIST-like dataset as tensors on ``device``."""
    folder = locate(name, data_dir, download)
    arrays = {}
    for key, stem in SPLITS.items():
        path = _find_file(folder, stem)
        assert path is not None
        _verify(path, stem, HASHES.get(name))
        arrays[key] = read_idx(path)

    def images(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
        return (t.to(torch.float32) / 255.0).unsqueeze(1)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64)).to(device)

    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise CnnlabError(f"{folder}: {split} images and labels differ in count")
    return Dataset(name, images(arrays["train_images"]), labels(arrays["train_labels"]),
                   images(arrays["test_images"]), labels(arrays["test_labels"]), 10,
                   classes=CLASS_NAMES.get(name, tuple(str(i) for i in range(10))),
                   info={"folder": str(folder)})


CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}

# ------------------------------------------------------------------------ registry

Loader = Callable[..., Dataset]
DATASETS: dict[str, Loader] = {}
_plugins_loaded = False


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(data_dir=None, device='cpu', **options) -> Dataset`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        DATASETS[name] = fn
        return fn

    return deco




def _ensure_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_plugins(plugin_modules(PLUGIN_GROUP))


def dataset_names() -> list[str]:
    _ensure_plugins()
    return sorted(DATASETS)


def load(name: str, data_dir: str | Path | None = None, device: torch.device | str = "cpu",
         **options: object) -> Dataset:
    """Load a registered dataset onto ``device``."""
    _ensure_plugins()
    if name not in DATASETS:
        raise CnnlabError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    try:
        return DATASETS[name](data_dir=data_dir, device=device, **options)
    except TypeError as e:
        raise CnnlabError(f"dataset {name!r}: {e}") from None


@register_dataset("mnist")
def mnist(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
          download: bool = True) -> Dataset:
    return load_idx_dataset("mnist", data_dir, device, download)


@register_dataset("fashion-mnist")
def fashion_mnist(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
                  download: bool = True) -> Dataset:
    return load_idx_dataset("fashion-mnist", data_dir, device, download)


def _pair_loader(base: str, target: str) -> Loader:
    def loader(data_dir: str | Path | None = None, device: torch.device | str = "cpu",
               layout: str = "h", seed: int = 0) -> Dataset:
        return pairs(load(base, data_dir, device), target, layout, seed)

    loader.__doc__ = f"{base} two-digit pairs, target {target}"
    return loader


for _target in ("sum", "digits"):
    register_dataset(f"mnist-pairs-{_target}")(_pair_loader("mnist", _target))

"""Matrices and images in and out of the filters: CSV/NPY/PNG files, inline kernels.

:func:`parse_kernel` reads a named kernel (``prewitt-magnitude``, ``gaussian``...) or an inline
matrix (``"[[1,0,-1],[1,0,-1],[1,0,-1]]"``); :func:`load_matrix` and :func:`save` read and write
``.csv``, ``.npy`` and ``.png`` (writes are atomic: an existing file is replaced only after
success); :func:`format_matrix` prints a result. ``cnnlab filter`` is built on these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import atomic_write, check_plain

FORMATS = (".csv", ".npy", ".png")
#: the largest image ``cnnlab filter`` decodes (4096 x 4096): a PNG's header may claim any
#: size, and a few kB of compressed zeros can decode to gigabytes (a decompression bomb)
MAX_PIXELS = 1 << 24
SIZE_MODES = ("same", "valid", "full")


def parse_kernel(text: str, ksize: int | None = None, sigma: float | None = None) -> Any:
    """A named kernel, a ``(x, y)`` pair name for a magnitude, or an inline JSON matrix."""
    import numpy as np

    from cnnlab.ref import filters

    name = text.strip().lower()
    if name in filters.MAGNITUDES:
        return filters.MAGNITUDES[name]
    if name == "gaussian":
        return filters.gaussian(ksize or 5, sigma)
    if name == "box":
        return filters.box(ksize or 3)
    if name in filters.KERNELS:
        return filters.kernel(name)
    if not name.startswith("["):
        raise CnnlabError(f"--kernel {text!r}: unknown name; use one of "
                          f"{', '.join([*filters.KERNELS, *filters.MAGNITUDES])} or a matrix "
                          "like '[[1,0,-1],[1,0,-1],[1,0,-1]]'")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise CnnlabError(f"--kernel {text!r}: not a valid matrix ({e.msg} at character "
                          f"{e.pos}); write e.g. '[[1,0,-1],[1,0,-1],[1,0,-1]]'") from None
    if rows and all(isinstance(v, int | float) for v in rows):
        rows = [rows]  # a flat list is one row
    ok = (isinstance(rows, list) and rows and all(isinstance(r, list) and r for r in rows)
          and all(isinstance(v, int | float) and not isinstance(v, bool)
                  for r in rows for v in r))
    if not ok:
        raise CnnlabError(f"--kernel {text!r}: must be a non-empty list of rows of numbers, "
                          "e.g. '[[1,0,-1],[1,0,-1],[1,0,-1]]'")
    if len({len(r) for r in rows}) != 1:
        raise CnnlabError(f"--kernel {text!r}: rows have different lengths "
                          f"({', '.join(str(len(r)) for r in rows)}); every row needs the same "
                          "number of entries")
    return np.array(rows, dtype=float)


def load_matrix(path: str) -> Any:
    """``(H, W)`` from .csv/.npy, ``(H, W)`` or ``(H, W, 3)`` from .png, as float."""
    import numpy as np

    p = Path(path)
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise CnnlabError(f"input {path}: unknown format {ext or '(no extension)'}; use a "
                          ".csv or .npy matrix or a .png image")
    if not p.is_file():
        raise CnnlabError(f"input {path}: no such file")
    try:
        if ext == ".csv":
            data = np.loadtxt(p, delimiter=",", dtype=float, ndmin=2)
        elif ext == ".npy":
            data = np.load(p, allow_pickle=False)
        else:
            data = _read_png(p, path)
    except (ValueError, OSError) as e:
        first = str(e).splitlines()[0].split(";")[0] if str(e) else type(e).__name__
        raise CnnlabError(f"input {path}: cannot read it as {ext[1:].upper()} ({first}); a "
                          "CSV needs the same number of comma-separated numbers per row") from None
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise CnnlabError(f"input {path}: holds {data.dtype} values; it must be numbers")
    if data.ndim not in (2, 3) or (data.ndim == 3 and ext != ".png") or data.size == 0:
        raise CnnlabError(f"input {path}: shape {data.shape}; expected a non-empty 2D matrix")
    if not np.all(np.isfinite(data)):
        raise CnnlabError(f"input {path}: contains NaN or infinite values")
    return data.astype(float)


def _read_png(p: Path, path: str) -> Any:
    """A PNG as a float array, refused before decoding when it has over :data:`MAX_PIXELS`."""
    import warnings

    import numpy as np
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{w} x {h} pixels")
                im = im.convert("L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
                return np.asarray(im, dtype=float)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            size = str(e) if " x " in str(e) and len(str(e)) < 40 else "more pixels"
            raise CnnlabError(f"input {path}: the image has {size}, over the {MAX_PIXELS:,} "
                              "pixels cnnlab filter decodes; scale it down first") from None


def save(result: Any, path: str, stretch: bool = False) -> None:
    import numpy as np

    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".csv":
        if result.ndim != 2:
            raise CnnlabError(f"--out {path}: a {result.ndim}D (colour) result cannot be a "
                              "CSV matrix; write .npy or .png")
        atomic_write(p, lambda fh: np.savetxt(fh, result, delimiter=",", fmt="%.10g"))
    elif ext == ".npy":
        atomic_write(p, lambda fh: np.save(fh, result, allow_pickle=False))
    else:
        from PIL import Image

        img = result
        if stretch:
            lo, hi = float(img.min()), float(img.max())
            img = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        pil = Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")
        atomic_write(p, lambda fh: pil.save(fh, format="PNG"))


def check_out(path: str) -> None:
    """An output path the filter can write (known format, existing folder), or one error line."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise CnnlabError(f"--out {path}: unknown format {p.suffix or '(no extension)'}; "
                          "end the name with .csv, .npy or .png")
    if not p.parent.is_dir():
        raise CnnlabError(f"--out {path}: folder {p.parent} does not exist; create it first")
    check_plain(p, "--out")


def format_matrix(result: Any) -> str:
    import numpy as np

    def rows(m: Any) -> list[str]:
        return [", ".join(f"{v:.6g}" for v in r) for r in np.atleast_2d(m)]

    if result.ndim == 2:
        return "\n".join(rows(result))
    blocks = []
    for c in range(result.shape[-1]):
        blocks.append(f"# channel {c}\n" + "\n".join(rows(result[..., c])))
    return "\n".join(blocks)

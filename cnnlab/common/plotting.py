"""The one matplotlib entry point: a headless backend, the figure formats, saving.

cnnlab never shows a figure, it writes them (training curves, the TTIC studies' figures, the
report's inline PNGs), so :func:`pyplot` puts matplotlib on the non-interactive Agg backend: no
display needed, nothing opens a window, and worker processes draw like the main one. A backend
chosen on purpose wins: ``MPLBACKEND`` set, or pyplot already imported (a notebook's inline
backend) is left as it is. matplotlib is imported on the first call, not with this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

#: the file formats figures are written in, by default
FORMATS: tuple[str, ...] = ("png", "svg")


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, unless a backend was chosen already."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, stem: Path | str, formats: Iterable[str] = FORMATS,
                **savefig: Any) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for each format (folders made as needed); the
    keyword arguments go to ``Figure.savefig`` (``dpi``, ``bbox_inches``...). Returns the
    paths written (each atomically, through :func:`cnnlab.common.files.atomic_write`); the
    figure stays open.
    """
    from cnnlab.common.files import atomic_write

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        atomic_write(path, lambda fh, fmt=fmt: fig.savefig(fh, format=fmt, **savefig))
        paths.append(path)
    return paths

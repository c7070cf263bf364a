"""The scope of one import or one analysis (:func:`analysis_scope`).

While it is open, :func:`cnnlab.ir.shapes.window_params` remembers the windows it resolved
(``windows``) and Python's cyclic garbage collector is paused; both end with it, so nothing
carries over from one analysis to the next.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: resolved windows by (op, input shape) while an :func:`analysis_scope` is open (one import
#: or one analysis): the analyzer asks for a conv's window four times (description,
#: parameters, cost, field). A Window is immutable, so the same one is shared; nothing is kept
#: between analyses, so analyzing a model twice costs twice.
windows: dict[tuple[Any, tuple[int, ...]], Any] | None = None


@contextmanager
def analysis_scope() -> Iterator[None]:
    """One import or one analysis, until the outermost ``with analysis_scope()`` ends:
    resolved windows are remembered, and Python's cyclic garbage collector is paused. The
    collections an analysis's many short-lived objects trigger walk every live object of the
    process (beside torchinfo and fvcore, 19 ms per EfficientNet-B0 analysis) and find little
    of the run's to free before it ends. The collector is switched back on after (after an
    error too) if it was on; cycles left then are collected as usual."""
    global windows
    if windows is not None:
        yield
        return
    windows = {}
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        windows = None
        if collecting:
            gc.enable()

"""Optional plugin modules that register models or datasets when first looked up."""

from __future__ import annotations

import importlib


def load_plugins(modules: tuple[str, ...]) -> None:
    """Import each module; one that is not installed is skipped (its own import errors are not)."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise

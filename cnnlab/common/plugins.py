"""Plugins: packages that register models or datasets, found through entry points.

A package adds models or datasets by declaring a module in its ``pyproject.toml``::

    [project.entry-points."cnnlab.models"]
    mynets = "mypkg.nets"          # importing it calls cnnlab.models.zoo.register(...)

    [project.entry-points."cnnlab.datasets"]
    mydata = "mypkg.data"          # importing it calls cnnlab.data.datasets.register_dataset(...)

cnnlab's own TTIC systems are registered the same way (see this project's ``pyproject.toml``).
The registries import their group's modules on first lookup. A plugin whose own dependencies
are not installed raises; a declared module that is not there is skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points


def plugin_modules(group: str) -> list[str]:
    """The module names declared under entry-point ``group``, sorted by entry name."""
    return [ep.value.split(":")[0] for ep in sorted(entry_points(group=group),
                                                   key=lambda ep: ep.name)]


def load_plugins(modules: Iterable[str]) -> None:
    """Import each module; one that is not installed is skipped (its own import errors are not:
    a plugin that needs a missing package raises, so a broken plugin is never silently lost).
    """
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not (mod == e.name or mod.startswith(e.name + ".")):
                raise

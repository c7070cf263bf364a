"""Foundations every layer may use: errors, files, typed configs, plotting, plugins.

* :mod:`.errors` — :class:`CnnlabError` and its kinds (one-line messages, exit status 2);
* :mod:`.files` — the one atomic writer and the one TOML/JSON loader (errors name the file);
* :mod:`.config` — typed dataclass configs: from dicts (unknown keys are errors), to CLI flags;
* :mod:`.plotting` — the one matplotlib entry point (headless backend, figure formats);
* :mod:`.plugins` — models and datasets contributed through ``importlib.metadata`` entry points.
"""

"""The analyzer: numbers of an IR graph, returned as data.

* :mod:`.analyze` — per-layer shapes, parameters, MACs/FLOPs, memory, conv vs local vs full;
* :mod:`.receptive` — the receptive-field and jump recurrence (branches and joins included);
* :mod:`.steps` — the step-by-step parameter count of a network (HUJI 1.1, 3.1.1);
* :mod:`.render` — tables, Markdown, JSON, CSV and HTML of an :class:`~.analyze.Analysis`;
* :mod:`.hook_count` — MACs counted by forward hooks on a live module (an independent oracle).
"""

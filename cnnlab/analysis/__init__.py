"""The analyzer: numbers of an IR graph, returned as data.

* :mod:`.analyze` — per-layer shapes, parameters, MACs/FLOPs, memory, conv vs local vs full;
* :mod:`.field` — one tensor's receptive field and jump (:class:`~.field.Field`);
* :mod:`.receptive` — the rules that carry fields through ops (branches and joins included),
  with :mod:`.reach`, :mod:`.resample` and :mod:`.receptive_mix` (einsum/attention);
* :mod:`.erf` — the effective receptive field (gradient of a centre unit);
* :mod:`.costs` — parameters, MACs/FLOPs and descriptions of the ops beyond the sheets';
  :mod:`.units` — bytes per element of each precision;
* :mod:`.steps` — the step-by-step parameter count of a network (HUJI 1.1, 3.1.1);
* :mod:`.render` — tables, Markdown, JSON, CSV and HTML of an :class:`~.analyze.Analysis`;
* :mod:`.hook_count` — MACs counted by forward hooks on a live module (an independent oracle).
"""

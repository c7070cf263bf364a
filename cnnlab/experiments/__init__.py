"""Experiments: each practical question of the sheets as a recipe, run, measured and reported.

* :mod:`.recipe` — recipes (``recipes/*.toml``) expanded into jobs and run through an executor;
* :mod:`.executor` — the ``map(configs)`` interface and its local process-pool implementation;
* :mod:`.search` — the smallest-size searches (HUJI 3);
* :mod:`.findings` — findings computed from the measured numbers (:mod:`.stats`: means and
  differences with 95% intervals from :mod:`.intervals`, crossings);
* :mod:`.report` — the HTML/PDF report, rendered from ``templates/``.
"""

"""Experiments: each practical question of the sheets as a recipe, run, searched, reported.

* :mod:`.recipe` — recipes (``recipes/*.toml``) expanded into jobs and run through an executor;
* :mod:`.executor` — the ``map(configs)`` interface and its local process-pool implementation
  (:mod:`.executor_ray` on a Ray cluster); :mod:`.identity` — a run's content-derived id;
* :mod:`.run` — a recipe from its jobs to ``experiment.json``; :mod:`.measure` — a recipe's
  ``[measure]`` step (the TTIC measurements);
* :mod:`.search` — the smallest-size searches (HUJI 3): plain scans and Optuna studies;
* :mod:`.report` — from the stored numbers to the document: statistics and intervals,
  findings and answers in words, the theory answers, the HTML page and its PDF.

Dependencies run one way: run -> search -> report -> recipe -> measure (pyproject.toml).
"""

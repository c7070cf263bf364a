"""Searching: the smallest network that reaches a target accuracy (HUJI 3).

* :mod:`.run` -- the recipes' ``[[searches]]``: a plain scan over sizes, or
* :mod:`.optuna_search` -- a multi-objective Optuna study (parameters vs accuracy) over
* :mod:`.space` -- the family's search space (sizes, kernels, pools, activations, rate).
The report draws and words the result (:mod:`cnnlab.experiments.report.frontier`).
"""

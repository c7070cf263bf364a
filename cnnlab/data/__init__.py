"""Datasets: MNIST-family IDX files and what is derived from them.

* :mod:`.datasets` — the registry, IDX loading, lookup, SHA-256 checks and download;
* :mod:`.derived` — subsets, validation splits and digit pairs (HUJI 4-5);
* :mod:`.augment` — shifts and rotations (problem sheet 3);
* :mod:`.synthetic_digits` — offline stand-in digits for tests and the TTIC datasets.
"""

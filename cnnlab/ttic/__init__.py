"""TTIC 31230 CNN problems: registers the models and datasets of the three TTIC systems.

The models (:mod:`.models`) and the datasets (:mod:`.moving_mnist`, :mod:`.multiscale`) are
plugins: entry points in ``pyproject.toml`` (groups ``cnnlab.models``, ``cnnlab.datasets``) that
the registries import on first lookup. The systems themselves: :mod:`.video3d`,
:mod:`.bottleneck`, :mod:`.pyramid` (each with the measurements of its problem), :mod:`.plots`
draws them. The recipes ``ttic_video``, ``ttic_bottleneck`` and ``ttic_pyramid`` train them and
run those measurements (:mod:`cnnlab.experiments.measure`); this package never imports
:mod:`cnnlab.experiments`.

* ``video3d`` on ``moving-mnist`` / ``moving-mnist-direction`` (Problems 1-2),
* ``bottleneck-mlp`` on ``mnist`` (Problem 3),
* ``pyramid`` and its same-budget baseline ``plain-cnn`` on ``multiscale-mnist*`` (Problem 4).

See docs/ttic.md.
"""

"""The trainer: a typed config in, a run folder out.

* :mod:`.trainer` — :class:`TrainConfig`, :class:`RunResult` and :func:`train`;
* :mod:`.engine` — the inner loop: steps, evaluation, precision, divergence;
* :mod:`.optim` — optimizers, learning-rate schedules, L2 on the FC layers;
* :mod:`.checkpoint` — safetensors checkpoints, written atomically, resumed bit-exactly;
* :mod:`.rundir` — run folders: names, locks, resolved config;
* :mod:`.runlog` — TensorBoard and JSONL logs, progress lines;
* :mod:`.plots` — training curves of finished runs.
"""

"""The trainer: a typed config in, a run folder out.

* :mod:`.trainer` — :class:`TrainConfig`, :class:`RunResult` and :func:`train`;
* :mod:`.engine` — the inner loop: steps, evaluation, precision, divergence;
* :mod:`.optim` — optimizers, learning-rate schedules, L2 on the FC layers;
* :mod:`.checkpoint` — safetensors checkpoints, written atomically, resumed bit-exactly;
* :mod:`.rundir` — run folders: names, locks, resolved config;
* :mod:`.runlog` — TensorBoard and JSONL logs, progress lines;
* :mod:`.tbviews` — TensorBoard's graph, weight/gradient histograms and images of a run;
* :mod:`.figures` — confusion matrix, misclassified examples, first-layer filters (pure);
* :mod:`.evaluation` — a finished run loaded and evaluated again (``cnnlab evaluate``);
* :mod:`.plots` — training curves of finished runs.
"""

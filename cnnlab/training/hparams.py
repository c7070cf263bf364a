"""TensorBoard HParams: a finished run's hyper-parameters and final metrics.

:func:`log_hparams` writes, into the run folder's TensorBoard events, the hparams plugin's
experiment/session summaries (every result-determining config key, ``model_opts`` split into
``model_opts.<option>``) and one scalar ``hparams/<metric>`` per final metric, so
``tensorboard --logdir runs/experiments`` lists every run of a sweep in the HParams tab, side
by side. Called by :func:`cnnlab.training.trainer.train` at the end when ``tensorboard`` is on.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

#: Final metrics logged for the HParams tab (fields of ``RunResult``).
METRICS = ("test_acc", "train_acc", "test_loss", "train_loss", "train_time", "iterations",
           "param_count", "images_per_s")
#: Config keys left out: naming, placement and logging settings (no effect on the weights).
HIDDEN = frozenset({"out_name", "log_every", "eval_batch_size", "checkpoint_every"})


def hparam_values(cfg: Any, skip: frozenset[str] = frozenset()
                  ) -> dict[str, bool | int | float | str]:
    """``{key: value}`` of ``cfg`` (a TrainConfig) as the plugin takes them: scalars only
    (``None`` becomes ``"none"``), ``model_opts`` as ``model_opts.<option>`` entries; the
    keys in ``skip`` (the trainer passes its ``RESULT_FREE_KEYS``) and :data:`HIDDEN` left out."""
    data = asdict(cfg)
    out: dict[str, bool | int | float | str] = {}
    for key, value in data.items():
        if key in skip or key in HIDDEN:
            continue
        if key == "model_opts":
            for part in filter(None, (p.strip() for p in str(value).split(","))):
                k, _, v = part.partition("=")
                out[f"model_opts.{k.strip()}"] = v.strip()
            continue
        out[key] = "none" if value is None else (
            value if isinstance(value, bool | int | float | str) else str(value))
    return out


def metric_values(result: Any) -> dict[str, float]:
    """The final metrics of ``result`` (a RunResult) that are numbers."""
    out = {}
    for name in METRICS:
        value = getattr(result, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def log_hparams(run_dir: Path, cfg: Any, result: Any, skip: frozenset[str] = frozenset()) -> None:
    """Append the HParams summaries of a finished run to ``run_dir``'s TensorBoard events
    (config keys in ``skip`` left out)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    hp, metrics = hparam_values(cfg, skip), metric_values(result)
    tags = {f"hparams/{k}": v for k, v in metrics.items()}
    exp, ssi, sei = hparams(hp, tags)
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        fw = writer._get_file_writer()  # noqa: SLF001  (torch's own add_hparams does the same)
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
        step = int(getattr(result, "iterations", 0) or 0)
        for tag, value in tags.items():
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()

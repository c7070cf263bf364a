"""TensorBoard HParams: a finished run's hyper-parameters beside its sweep's.

:func:`log_hparams` writes, into the run folder's TensorBoard events, the hparams plugin's
session summaries: every result-determining config key (``model_opts`` split into
``model_opts.<option>``) and the parameter count. It writes no experiment summary: TensorBoard
then builds the experiment from all the sessions under ``--logdir``, marks the keys whose
values differ between runs and lists those first, and takes as metrics the last values of
the runs' own scalar curves (``accuracy/test``, ``loss/test``, ``time/train``...), so no
single-point ``hparams/...`` scalars clutter the Scalars tab. ``tensorboard --logdir
runs/experiments`` lists every run of a sweep in the HParams tab, side by side. Called by
:func:`cnnlab.training.trainer.finish_run` when ``tensorboard`` is on.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

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


def log_hparams(writer: Any, cfg: Any, result: Any, skip: frozenset[str] = frozenset()
                ) -> None:
    """Append the HParams session summaries of a finished run (``cfg`` a TrainConfig,
    ``result`` its RunResult; config keys in ``skip`` left out) through ``writer``, a
    SummaryWriter on the run folder."""
    from torch.utils.tensorboard.summary import hparams

    hp = hparam_values(cfg, skip)
    count = getattr(result, "param_count", None)
    if isinstance(count, int) and count > 0:
        hp["param_count"] = count
    _, ssi, sei = hparams(hp, {})
    fw = writer._get_file_writer()  # noqa: SLF001  (torch's own add_hparams does the same)
    for summary in (ssi, sei):
        fw.add_summary(summary)

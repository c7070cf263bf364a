"""A finished run, evaluated again: ``cnnlab evaluate RUN``.

* :func:`load_trained` -- the run's network with its final weights and the input
  standardization it trained with (``config.json``, ``env.json``, ``model.safetensors``);
* :func:`evaluate_run` -- a plain forward pass over the run's evaluation set (the test set,
  or the held-out validation set of a run trained with ``--validation``): accuracy, the
  confusion matrix, per-class accuracy, the misclassified examples and the first layer's
  filters, as an :class:`Evaluation`;
* :func:`evaluation_figures` / :func:`write_figures` -- its figures (matplotlib, PNG), for
  ``cnnlab evaluate --out`` and for the report;
* :func:`format_evaluation` -- the text ``cnnlab evaluate`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.common.errors import CnnlabError
from cnnlab.common.plotting import save_figure
from cnnlab.training import figures


@dataclass
class Trained:
    """A finished run's network (eval mode) with the input standardization it trained with."""

    net: nn.Module
    mean: float
    std: float
    model: str
    spec: str
    input_shape: tuple[int, ...]
    dataset_info: dict[str, Any]
    normalize: bool


def _run_folder(run_dir: str | Path) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise CnnlabError(f"{run}: no such run folder; give a folder a training run wrote, "
                          "e.g. runs/NAME")
    if not (run / "config.json").is_file():
        raise CnnlabError(f"{run}: not a run folder (no config.json); give a folder a "
                          "training run wrote, e.g. runs/NAME")
    if not (run / "model.safetensors").is_file():
        raise CnnlabError(f"{run}: no model.safetensors (the run has not finished); finish it "
                          f"with cnnlab train --resume --out-name {run.name}")
    return run


def load_trained(run_dir: str | Path) -> Trained:
    """The trained network of a run folder: ``config.json`` names the model and its options,
    ``env.json`` the input shape and normalization, ``model.safetensors`` holds the weights.
    Anything missing or unreadable is a one-line :class:`CnnlabError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from cnnlab.common.files import read_json
    from cnnlab.models import zoo as models
    from cnnlab.training.trainer import TrainConfig, model_options

    run = _run_folder(run_dir)
    cfg = TrainConfig.from_dict(read_json(run / "config.json"), where=str(run / "config.json"))
    env = read_json(run / "env.json")
    try:
        shape = tuple(int(d) for d in env["input_shape"])
        mean, std = float(env["normalize_mean"]), float(env["normalize_std"])
    except (KeyError, TypeError, ValueError) as e:
        raise CnnlabError(f"{run / 'env.json'}: no valid {e} entry; the run folder is damaged "
                          "or from another tool") from None
    mdef = models.resolve(cfg.spec or cfg.model, **model_options(cfg))
    net = mdef.build(shape)
    try:
        load_model(net, str(run / "model.safetensors"))
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as e:
        raise CnnlabError(f"{run / 'model.safetensors'}: cannot load it into {mdef.name!r} "
                          f"({' '.join(str(e).split())[:200]})") from None
    return Trained(net.eval(), mean, std, mdef.name, mdef.spec, shape,
                   dict(env.get("dataset_info") or {}), cfg.normalize)


@dataclass
class Evaluation:
    """What :func:`evaluate_run` measured on one run's evaluation set."""

    run_dir: str
    dataset: str
    split: str  # "test" or "validation"
    labels: tuple[str, ...]  # the label names, index = label
    true: torch.Tensor  # (N,) labels
    pred: torch.Tensor  # (N,) labels
    x: torch.Tensor  # (N, C, H, W) the inputs as the network saw them
    confusion: np.ndarray  # (L, L) counts, row true, column predicted
    filters: np.ndarray | None  # (n, H, W) the first layer's filters

    @property
    def examples(self) -> int:
        return int(self.true.shape[0])

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else float("nan")

    @property
    def per_class(self) -> np.ndarray:
        return figures.per_class_accuracy(self.confusion)


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None,
                 batch: int = 1000) -> Evaluation:
    """Evaluate a finished run on CPU in fp32: its network (:func:`load_trained`) on its own
    evaluation set, loaded by the dataset loader (``data_dir`` overrides the run's)."""
    from cnnlab.common.files import read_json
    from cnnlab.data.datasets import load
    from cnnlab.data.derived import validation_split
    from cnnlab.training.trainer import TrainConfig

    trained = load_trained(run_dir)
    run = Path(run_dir)
    cfg = TrainConfig.from_dict(read_json(run / "config.json"), where=str(run / "config.json"))
    ds = load(cfg.dataset, data_dir or cfg.data_dir, "cpu")
    if cfg.validation:
        ds = validation_split(ds, cfg.validation, cfg.seed)
    x = ds.x_test
    if tuple(x.shape[1:]) != trained.input_shape:
        raise CnnlabError(f"{run}: the model takes {trained.input_shape} inputs but "
                          f"{cfg.dataset} holds {tuple(x.shape[1:])}; --data-dir points at "
                          "other data")
    if trained.normalize:
        x = (x - trained.mean) / trained.std
    pred = figures.predict(trained.net, x, ds.num_classes, ds.heads, batch)
    true = figures.as_labels(ds.y_test, ds.num_classes, ds.heads, ds.score)
    pred = figures.as_labels(pred, ds.num_classes, ds.heads, ds.score)
    n = figures.label_count(ds.num_classes, ds.heads, ds.score)
    names = tuple(ds.classes) if ds.heads == 1 and len(ds.classes) == n else tuple(
        str(i) for i in range(n))
    return Evaluation(str(run), cfg.dataset, "validation" if cfg.validation else "test", names,
                      true, pred, x, figures.confusion_matrix(true, pred, n),
                      figures.first_layer_filters(trained.net, trained.input_shape))


def evaluation_figures(ev: Evaluation) -> dict[str, Any]:
    """``{"misclassified": fig, "confusion": fig, "filters": fig}`` (filters only when the
    first layer reads the image); the caller closes them."""
    title = f"{Path(ev.run_dir).name}, {ev.split} set"
    out = {"misclassified": figures.misclassified_figure(ev.x, ev.true, ev.pred, ev.labels,
                                                         title=title),
           "confusion": figures.confusion_figure(ev.confusion, ev.labels, title)}
    if ev.filters is not None:
        out["filters"] = figures.filters_figure(ev.filters, Path(ev.run_dir).name)
    return out


def write_figures(ev: Evaluation, out_dir: str | Path) -> list[Path]:
    """The figures of :func:`evaluation_figures` as ``out_dir/<name>.png``."""
    from cnnlab.common.plotting import pyplot

    plt = pyplot()
    written: list[Path] = []
    for name, fig in evaluation_figures(ev).items():
        written += save_figure(fig, Path(out_dir) / name, formats=("png",), dpi=110)
        plt.close(fig)
    return written


def format_evaluation(ev: Evaluation) -> str:
    """Accuracy, per-class accuracy and the confusion matrix as plain text."""
    lines = [f"{ev.run_dir}: {ev.dataset} {ev.split} set, {ev.examples} examples, accuracy "
             f"{ev.accuracy:.2%} ({ev.correct}/{ev.examples})", "",
             "per-class accuracy:", f"  {'class':>8} {'examples':>9} {'correct':>8} "
                                    f"{'accuracy':>9}"]
    rows, diag = ev.confusion.sum(1), np.diag(ev.confusion)
    for i, name in enumerate(ev.labels):
        acc = f"{diag[i] / rows[i]:.2%}" if rows[i] else "-"
        lines.append(f"  {name[:8]:>8} {int(rows[i]):>9} {int(diag[i]):>8} {acc:>9}")
    width = max(4, len(str(int(ev.confusion.max(initial=0)))) + 1,
                max((len(n) for n in ev.labels), default=1) + 1)
    lines += ["", "confusion matrix (rows: true, columns: predicted):",
              " " * 10 + "".join(f"{n[:width - 1]:>{width}}" for n in ev.labels)]
    for i, name in enumerate(ev.labels):
        lines.append(f"  {name[:8]:>8}" + "".join(f"{int(c):>{width}}"
                                                  for c in ev.confusion[i]))
    return "\n".join(lines)

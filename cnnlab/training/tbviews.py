"""TensorBoard views beyond the scalars: graph, histograms, images.

What a run's event files hold besides the curves of :mod:`cnnlab.training.runlog`:

* **Graphs** -- the model, traced once at the start (:func:`log_graph`); a model the tracer
  cannot follow costs one warning line, never the run;
* **Histograms** -- ``weights/<param>`` and ``gradients/<param>`` (the last step's gradient)
  at each evaluation point (:func:`log_eval_views`): evaluations are rare, so this costs far
  less than the evaluation itself (docs/training.md has the measurement);
* **Images** -- ``filters/first_layer`` at each evaluation (the first layer's kernels, each
  scaled on its own, so the slider shows them form), and at the end (:func:`log_final_views`)
  ``test/confusion_matrix`` and ``test/misclassified`` (a grid of wrong test examples).

All of it is skipped when a run has no TensorBoard writer (``--no-tensorboard``).
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cnnlab.data.dataset import Dataset
from cnnlab.training import figures


@contextlib.contextmanager
def _untouched(net: nn.Module):
    """Eval mode (no dropout, no batch-norm statistics update) and the random streams as they
    were: logging must not change what the run computes next."""
    was_training = net.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    net.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        net.train(was_training)


def log_graph(writer: Any, net: nn.Module, example: torch.Tensor) -> bool:
    """Trace ``net`` on ``example`` (one input batch) into the Graphs tab. A model the JIT
    tracer cannot follow prints one warning line and returns False; the run goes on."""
    try:
        with _untouched(net), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            writer.add_graph(net, example, use_strict_trace=False)
        return True
    except Exception as e:  # the tracer's failures have no common type
        why = " ".join(str(e).split())[:160] or type(e).__name__
        print(f"cnnlab: warning: TensorBoard graph not written, the tracer cannot follow this "
              f"model ({type(e).__name__}: {why}); training goes on", file=sys.stderr)
        return False


def log_eval_views(writer: Any, net: nn.Module, it: int, input_shape: tuple[int, ...],
                   grads: Mapping[str, torch.Tensor | None] | None = None) -> None:
    """Weight and gradient histograms and the first layer's filters at iteration ``it``.

    ``grads`` maps parameter names to gradients (default: each parameter's ``.grad``, which
    still holds the last step's gradient at an evaluation point)."""
    for name, p in net.named_parameters():
        g = grads.get(name) if grads is not None else p.grad
        for tag, t in ((f"weights/{name}", p), (f"gradients/{name}", g)):
            values = _finite(t)
            if values is not None:
                writer.add_histogram(tag, values, it)
    filters = figures.first_layer_filters(net, input_shape)
    if filters is not None:
        writer.add_image("filters/first_layer", figures.tile(filters), it, dataformats="HW")


def _finite(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t``'s finite values (an fp16 step the loss scaler skipped leaves inf gradients, which
    a histogram cannot bin); None when there are none."""
    if t is None:
        return None
    t = t.detach()
    ok = torch.isfinite(t)
    if not bool(ok.all()):
        t = t[ok]
    return t if t.numel() else None


def log_final_views(writer: Any, net: nn.Module, ds: Dataset, it: int, batch: int) -> None:
    """The confusion matrix and a grid of misclassified examples of ``ds``'s evaluation set
    (the test set, or the validation set of a run that holds one out)."""
    with _untouched(net):
        pred = figures.predict(net, ds.x_test, ds.num_classes, ds.heads, batch)
    true = figures.as_labels(ds.y_test, ds.num_classes, ds.heads, ds.score)
    pred = figures.as_labels(pred, ds.num_classes, ds.heads, ds.score)
    n = figures.label_count(ds.num_classes, ds.heads, ds.score)
    names = ds.classes if ds.heads == 1 else ()
    cm = figures.confusion_matrix(true, pred, n)
    writer.add_figure("test/confusion_matrix", figures.confusion_figure(cm, names), it)
    writer.add_figure("test/misclassified",
                      figures.misclassified_figure(ds.x_test, true, pred, names), it)

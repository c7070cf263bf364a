"""TensorBoard views of a run (cnnlab/training/tbviews.py): graph, weight and gradient
histograms, first-layer filters, confusion matrix and misclassified images, read back with
TensorBoard's own EventAccumulator and checked against the run's saved weights."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from trainutil import tiny_config

from cnnlab.data.dataset import Dataset
from cnnlab.training import figures
from cnnlab.training.batched import train_many
from cnnlab.training.engine import loss_and_correct
from cnnlab.training.tbviews import log_graph
from cnnlab.training.trainer import train

torch.set_num_threads(1)

SPEC = "conv3x3x4 relu maxpool2 dropout(keep=0.5) fc16 relu fc10"


def _events(run_dir: str | Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"histograms": 0, "images": 0,
                                                        "scalars": 0})
    acc.Reload()
    return acc


def _decode(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


def _check_views(run_dir: str, evals: list[int]) -> None:
    acc = _events(run_dir)
    assert acc.Graph().node  # the Graphs tab: a traced model
    weights = load_file(str(Path(run_dir) / "model.safetensors"))
    tags = set(acc.Tags()["histograms"])
    assert tags == {f"{kind}/{n}" for n in weights for kind in ("weights", "gradients")}
    for name, w in weights.items():
        hist = acc.Histograms(f"weights/{name}")
        assert [h.step for h in hist] == evals
        last = hist[-1].histogram_value  # the final evaluation holds the saved weights
        assert last.num == w.numel()
        assert last.sum == pytest.approx(float(w.double().sum()), rel=1e-5, abs=1e-5)
        assert (last.min, last.max) == pytest.approx((float(w.min()), float(w.max())))
        grads = acc.Histograms(f"gradients/{name}")
        assert [h.step for h in grads] == evals
        assert grads[-1].histogram_value.num == w.numel()
    images = acc.Tags()["images"]
    assert set(images) == {"filters/first_layer", "test/confusion_matrix", "test/misclassified"}
    filt = acc.Images("filters/first_layer")
    assert [e.step for e in filt] == evals
    # 4 filters 3x3 in a 2x2 grid with a 1-pixel gap
    assert (filt[-1].height, filt[-1].width) == (7, 7) == _decode(filt[-1].encoded_image_string
                                                                  ).shape[:2]
    for tag in ("test/confusion_matrix", "test/misclassified"):
        (ev,) = acc.Images(tag)
        assert ev.step == evals[-1]
        img = _decode(ev.encoded_image_string)
        assert img.shape[:2] == (ev.height, ev.width) and min(img.shape[:2]) > 100


def test_a_run_logs_graph_histograms_and_images(tmp_path: Path) -> None:
    r = train(tiny_config(tmp_path, spec=SPEC, iterations=20, eval_every=10, plots=False))
    _check_views(r.run_dir, [10, 20])


def test_each_member_of_a_batched_group_logs_its_own_views(tmp_path: Path) -> None:
    base = tiny_config(tmp_path, spec=SPEC, iterations=20, eval_every=10, plots=False)
    runs = train_many([replace(base, out_name="a", seed=0), replace(base, out_name="b",
                                                                      seed=1, lr=1e-2)])
    for r in runs:
        _check_views(r.run_dir, [10, 20])


def test_the_views_do_not_change_what_the_run_computes(tmp_path: Path) -> None:
    # tracing and histograms run in eval mode with the random streams forked: dropout masks,
    # batch-norm statistics and the data order are those of a run without TensorBoard
    spec = "conv3x3x4 bn relu maxpool2 dropout(keep=0.5) fc16 relu fc10"
    on = train(tiny_config(tmp_path, spec=spec, out_name="on", iterations=15, plots=False))
    off = train(tiny_config(tmp_path, spec=spec, out_name="off", iterations=15, plots=False,
                            tensorboard=False))
    a = load_file(str(Path(on.run_dir) / "model.safetensors"))
    b = load_file(str(Path(off.run_dir) / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("cannot trace this\nsecond line")
        return self.fc(x)


def test_a_model_the_tracer_cannot_follow_costs_one_warning_line(tmp_path: Path,
                                                                 capsys) -> None:
    net = _Untraceable().train()
    writer = SummaryWriter(str(tmp_path))
    state = torch.get_rng_state()
    assert log_graph(writer, net, torch.zeros(1, 4)) is False
    writer.close()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("cnnlab: warning: TensorBoard graph not "
                                                   "written") and "Traceback" not in err
    assert net.training and torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("heads,score", [(1, "class"), (2, "sum"), (2, "class")])
def test_confusion_trace_is_the_accuracy_loss_and_correct_counts(heads: int, score: str
                                                                 ) -> None:
    g = torch.Generator().manual_seed(heads)
    n, c = 200, 10
    logits = torch.randn(n, heads * c, generator=g)
    y = torch.randint(0, c, (n, heads) if heads > 1 else (n,), generator=g)
    ds = Dataset("x", torch.zeros(1), y, torch.zeros(1), y, c, heads=heads, score=score)
    _, correct = loss_and_correct(logits, y, ds)  # the trainer's own count: the oracle
    pred = logits.reshape(n, heads, c).argmax(-1)
    size = figures.label_count(c, heads, score)
    cm = figures.confusion_matrix(figures.as_labels(y, c, heads, score),
                                  figures.as_labels(pred, c, heads, score), size)
    assert cm.shape == (size, size) and cm.sum() == n
    assert np.trace(cm) == int(correct)


def test_tile_places_each_image_scaled_on_its_own() -> None:
    imgs = np.stack([np.full((2, 3), float(i)) for i in range(5)])
    imgs[:, 0, 0] = -1.0
    grid = figures.tile(imgs, pad=1)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1)  # 3 columns, 2 rows
    assert grid[0, 0] == 0.0 and grid[1, 1] == 1.0 and grid[2, 0] == 1.0  # gap
    assert grid[3, 4] == 0.0 and grid[4, 6] == 1.0  # image 4: row 1, column 1


def _zoo_names() -> list[str]:
    from cnnlab.models import zoo

    return [n for n in zoo.names() if n != "vgg16"]  # vgg16: 138M parameters, too big here


@pytest.mark.parametrize("name", _zoo_names())
def test_every_named_model_traces_into_a_graph(name: str, tmp_path: Path, capsys) -> None:
    from cnnlab.models import zoo

    mdef = zoo.get(name)
    net = mdef.build(mdef.input_shape, seed=0)
    writer = SummaryWriter(str(tmp_path))
    assert log_graph(writer, net, torch.zeros(1, *mdef.input_shape)) is True
    writer.close()
    assert capsys.readouterr() == ("", "")
    acc = _events(tmp_path)
    assert len(acc.Graph().node) > 3


def test_figures_of_clips_and_of_a_3d_first_layer() -> None:
    # TTIC's video models: (C, T, H, W) inputs, a Conv3d first: no filter images, clips drawn
    net = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3))
    assert figures.first_layer_filters(net, (1, 4, 8, 8)) is None
    x = torch.rand(5, 1, 4, 8, 8)
    true, pred = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([0, 2, 2, 1, 1])
    fig = figures.misclassified_figure(x, true, pred, ("a", "b", "c"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["b \u2192 c", "a \u2192 b"]
    assert "2 of 2 errors in 5 examples" in fig._suptitle.get_text()
    fc = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 70))
    filt = figures.first_layer_filters(fc, (1, 28, 28))
    assert filt.shape == (figures.MAX_FILTERS, 28, 28)
    assert np.array_equal(filt[3], fc[1].weight.detach()[3].reshape(28, 28).numpy())


def test_non_finite_gradients_are_left_out_of_the_histograms(tmp_path: Path) -> None:
    # an fp16 step the loss scaler skipped leaves inf gradients behind
    from cnnlab.training.tbviews import log_eval_views

    net = nn.Linear(3, 2)
    net.weight.grad = torch.tensor([[1.0, float("inf"), 2.0], [float("nan"), 3.0, 4.0]])
    net.bias.grad = torch.full((2,), float("inf"))
    writer = SummaryWriter(str(tmp_path))
    log_eval_views(writer, net, 1, (1, 1, 3))
    writer.close()
    acc = _events(tmp_path)
    assert acc.Histograms("gradients/weight")[0].histogram_value.num == 4
    assert acc.Histograms("gradients/weight")[0].histogram_value.sum == 10.0
    assert "gradients/bias" not in acc.Tags()["histograms"]
    assert acc.Histograms("weights/bias")[0].histogram_value.num == 2

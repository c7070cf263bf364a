"""TTIC Problems 1-2: the literal 3D-conv equation, video3d's multiplication count, the
moving-MNIST clips (determinism, bouncing, labels), and the ``ttic_video`` recipe's
``[measure]`` step (also the measure table's validation, shared by the three TTIC recipes)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.analysis.hook_count import hook_macs
from cnnlab.data import datasets as data
from cnnlab.data.synthetic_digits import synthetic_digits
from cnnlab.ir.shapes import window_params
from cnnlab.ir.spec import parse
from cnnlab.models import zoo as models
from cnnlab.ttic.moving_mnist import DIRECTIONS, bounce, make_clips
from cnnlab.ttic.video3d import (
    conv3d_literal,
    kernel_to_torch,
    layer_from_torch,
    layer_to_torch,
    macs_table,
    sheet_macs,
)


@pytest.mark.parametrize("stride,kernel", [(1, (3, 3, 3)), (2, (3, 2, 3)), (3, (2, 3, 1))])
def test_literal_equation_equals_conv3d(stride: int, kernel: tuple[int, int, int]) -> None:
    g = torch.Generator().manual_seed(stride)
    b, X, Y, T, n_in, n_out = 2, 9, 8, 7, 3, 4
    L = torch.randn(b, X, Y, T, n_in, generator=g, dtype=torch.float64)
    K = torch.randn(n_out, *kernel, n_in, generator=g, dtype=torch.float64)
    B = torch.randn(n_out, generator=g, dtype=torch.float64)
    sheet = conv3d_literal(L, K, B, stride, torch.relu)
    conv = torch.nn.Conv3d(n_in, n_out, tuple(reversed(kernel)), stride=stride).double()
    with torch.no_grad():
        conv.weight.copy_(kernel_to_torch(K))
        conv.bias.copy_(-B)  # the sheet subtracts a threshold, torch adds a bias
    torch_out = layer_from_torch(torch.relu(conv(layer_to_torch(L))))
    assert sheet.shape == (b, *((n - k) // stride + 1 for n, k in zip((X, Y, T), kernel,
                                                                       strict=True)), n_out)
    torch.testing.assert_close(sheet, torch_out, rtol=1e-12, atol=1e-12)
    # one element by the sum written out, the sheet's index arithmetic spelled in full
    x, y, t, o = 1, 1, 1, 2
    s = stride
    manual = sum(K[o, i, j, k, n] * L[0, s * x + i, s * y + j, s * t + k, n]
                 for i in range(kernel[0]) for j in range(kernel[1]) for k in range(kernel[2])
                 for n in range(n_in)) - B[o]
    torch.testing.assert_close(sheet[0, x, y, t, o], torch.relu(manual))


def test_ir_built_video_conv_equals_literal_equation() -> None:
    g = torch.Generator().manual_seed(5)
    net = models.resolve("conv3x3x3x4(stride=2)").build((2, 7, 9, 11), seed=0).double()
    conv = net.layers["conv1"]
    x = torch.randn(3, 2, 7, 9, 11, generator=g, dtype=torch.float64)
    # torch (o, n, t, y, x) -> the sheet's K[o, x, y, t, n]
    K = conv.weight.detach().permute(0, 4, 3, 2, 1)
    sheet = conv3d_literal(layer_from_torch(x), K, -conv.bias.detach(), 2)
    torch.testing.assert_close(layer_to_torch(sheet), net(x))


def _hooked(hooks: dict[str, int], node: str) -> int:
    """The hook count of IR node ``node`` (a flattening fc wraps its nn.Linear one deeper)."""
    return sum(v for k, v in hooks.items() if k.split(".")[1] == node)


@pytest.mark.parametrize("spec_and_shape", [
    (models.get("video3d").spec, (1, 8, 64, 64)),
    ("conv3x3x3x6(stride=2) relu conv2x2x2x5(stride=2) relu fc10", (1, 9, 20, 16)),
])
def test_video_macs_analyzer_formula_hooks(spec_and_shape: tuple[str, tuple[int, ...]]) -> None:
    spec, shape = spec_and_shape
    batch = 2
    graph = parse(spec)
    a = analyze_graph(graph, shape, batch=batch)
    net = models.resolve(spec).build(shape, seed=0).eval()
    hooks = hook_macs(net, torch.zeros(batch, *shape))
    convs = [r for r in a.layers if r.kind == "conv"]
    assert convs
    prev = {r.name: r.output_shape for r in a.layers}
    for r in convs:
        node = graph.node(r.name)
        n_in = prev[node.inputs[0]][0]
        n_out, t, y, x = r.output_shape
        kt, ky, kx = window_params(node, prev[node.inputs[0]]).kernel
        formula = sheet_macs(batch, (x, y, t), (kx, ky, kt), n_out, n_in)
        assert r.macs == formula == _hooked(hooks, r.name)
    fc = [r for r in a.layers if r.kind == "linear"][0]
    assert fc.macs == _hooked(hooks, fc.name) == batch * math.prod(prev[
        graph.node(fc.name).inputs[0]]) * 10


def test_moving_clips_deterministic_by_seed() -> None:
    glyphs, digits = synthetic_digits(12, seed=1)
    a = make_clips(glyphs, digits, frames=6, seed=3)
    b = make_clips(glyphs, digits, frames=6, seed=3)
    c = make_clips(glyphs, digits, frames=6, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.direction, b.direction)
    assert not torch.equal(a.x, c.x)


def test_bounce_keeps_digit_in_frame() -> None:
    glyphs, digits = synthetic_digits(64, seed=2)
    clips = make_clips(glyphs, digits, frames=40, size=48, speed=3, seed=0)
    limit = 48 - 28
    assert int(clips.pos.min()) >= 0 and int(clips.pos.max()) <= limit
    # every frame holds the whole glyph: no ink clipped at a wall
    ink = clips.x.sum(dim=(3, 4))[:, 0]
    torch.testing.assert_close(ink, glyphs.sum(dim=(1, 2, 3))[:, None].expand_as(ink))
    steps = clips.pos[:, 1:] - clips.pos[:, :-1]
    assert int(steps.abs().max()) <= 3
    # bounces did happen: some clip reverses its motion along an axis
    assert bool(((steps[:, 1:] * steps[:, :-1]) < 0).any())
    # the closed form is a reflection: it agrees with stepping and flipping at the walls
    p, v = clips.pos[:, 0].clone(), clips.velocity.clone()
    for t in range(1, 40):
        p = p + v
        over, under = p > limit, p < 0
        p = torch.where(over, 2 * limit - p, torch.where(under, -p, p))
        v = torch.where(over | under, -v, v)
        assert torch.equal(p, clips.pos[:, t])
    assert torch.equal(bounce(torch.tensor([19]), torch.tensor([3]), torch.arange(3), 20),
                       torch.tensor([19, 18, 15]))


def test_direction_label_matches_displacement() -> None:
    glyphs, digits = synthetic_digits(200, seed=3)
    clips = make_clips(glyphs, digits, frames=4, speed=2, seed=1)
    dirs = torch.tensor(DIRECTIONS)  # (dx, dy) = (col, row)
    step = clips.pos[:, 1] - clips.pos[:, 0]
    assert torch.equal(step.sign(), dirs[clips.direction][:, [1, 0]])
    # and from the pixels: the ink centroid moves the same way
    frames = clips.x[:, 0, :2]
    w = frames.sum(dim=(2, 3))
    rows = (frames.sum(3) * torch.arange(64)).sum(2) / w
    cols = (frames.sum(2) * torch.arange(64)).sum(2) / w
    moved = torch.stack([rows[:, 1] - rows[:, 0], cols[:, 1] - cols[:, 0]], 1)
    torch.testing.assert_close(moved, step.float(), atol=1e-3, rtol=0)
    assert set(clips.direction.tolist()) == set(range(8))
    assert torch.equal(clips.digit, digits)


def test_registered_synthetic_dataset_and_cache() -> None:
    ds = data.load("moving-mnist-synthetic", n_train=40, n_test=10, frames=5)
    assert ds.x_train.shape == (40, 1, 5, 64, 64) and ds.num_classes == 10
    again = data.load("moving-mnist-synthetic", n_train=40, n_test=10, frames=5)
    assert again.x_train.data_ptr() == ds.x_train.data_ptr()  # cached, not regenerated


@pytest.mark.skipif(not data.available("mnist"), reason="MNIST IDX files not found ($CNNLAB_DATA)")
def test_real_moving_mnist_labels() -> None:
    ds = data.load("moving-mnist", n_train=100, n_test=20)
    assert ds.x_train.shape == (100, 1, 8, 64, 64)
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    directions = data.load("moving-mnist-direction", n_train=100, n_test=20)
    assert directions.num_classes == 8 and int(directions.y_train.max()) <= 7
    assert torch.equal(directions.x_train, ds.x_train)


def test_video3d_trains_through_the_trainer(tmp_path) -> None:
    from cnnlab.training.trainer import TrainConfig, train

    name = "moving-mnist" if data.available("mnist") else "moving-mnist-synthetic"
    cfg = TrainConfig(model="video3d", dataset=name, iterations=3, batch_size=8, eval_every=3,
                      lr=1e-3, runs_dir=str(tmp_path), out_name="v", train_eval_size=16,
                      tensorboard=False, plots=False, progress="off", threads=1, device="cpu")
    res = train(cfg)
    assert res.iterations == 3 and math.isfinite(res.test_loss)
    assert (tmp_path / "v" / "metrics.jsonl").is_file()


def test_video3d_input_is_n_c_t_h_w() -> None:
    net = models.get("video3d", frames=6, size=32).build(seed=0)
    out = net(torch.zeros(2, 1, 6, 32, 32))
    assert out.shape == (2, 10)


def test_macs_table_is_the_docs_table() -> None:
    r = macs_table()
    assert [row["layer"] for row in r["layers"]] == ["conv1", "conv2", "conv3", "conv4"]
    assert [row["output_XYT"] for row in r["layers"]] == [[32, 32, 4], [16, 16, 2], [8, 8, 1],
                                                          [4, 4, 1]]
    for row in r["layers"]:
        assert row["analyzer"] == row["formula"] == row["hooks"]
    assert r["total_macs"] == 4_433_920 and r["params"] == 83_162
    assert macs_table(batch=3)["layers"][0]["formula"] == 3 * 884_736


# ----------------------------------------------------------------------------- the recipe


class InProcessExecutor:
    """Trains each config in this process (no worker start-up), honouring the resume rule."""

    jobs = 1

    def __init__(self) -> None:
        self.calls = 0

    def map(self, configs: list[Any]) -> list[Any]:
        from cnnlab.experiments.executor import finished
        from cnnlab.training.trainer import train

        threads = torch.get_num_threads()
        out = []
        try:
            for cfg in configs:
                done = finished(cfg)
                if done is None:
                    self.calls += 1
                    done = train(replace(cfg, tensorboard=False))
                out.append(done)
        finally:
            torch.set_num_threads(threads)  # the TTIC recipes pin one thread per run
        return out


def run_quick(recipe: Any, runs: Path, executor: InProcessExecutor | None = None) -> dict:
    """``recipe`` with ``quick=True`` into ``runs``; its experiment.json with its findings."""
    from cnnlab.experiments.report.findings import analyze
    from cnnlab.experiments.run import run_recipe

    path = run_recipe(recipe, executor or InProcessExecutor(), runs, quick=True)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # JSON-safe
    doc = json.loads(text)
    doc["_path"] = str(path)
    doc["_findings"] = analyze(doc)
    return doc


@pytest.mark.skipif(not data.available("mnist"), reason="MNIST IDX files not found ($CNNLAB_DATA)")
def test_video_recipe_quick_measures_macs(tmp_path: Path) -> None:
    from cnnlab.experiments.recipe import load_recipe

    recipe = load_recipe("ttic_video")
    # one short run is enough for the measurement's plumbing (the full --quick form of every
    # recipe runs in test_experiment_quick.py)
    recipe.variants = recipe.variants[:1]
    recipe.quick.update(iterations=4, eval_every=4)
    ex = InProcessExecutor()
    doc = run_quick(recipe, tmp_path, ex)
    m = doc["measure"]
    assert m["kind"] == "video_macs" and m["options"]["frames"] == 8
    rows = m["result"]["layers"]
    assert len(rows) == 4 and all(r["analyzer"] == r["formula"] == r["hooks"] for r in rows)
    assert m["result"]["figures"] == ["plots/moving_mnist_clips.png",
                                      "plots/moving_mnist_clips.svg"]
    assert (tmp_path / "ttic_video" / "plots" / "moving_mnist_clips.png").is_file()
    f = doc["_findings"]
    assert any("forward-hook count agree" in s and "4,433,920" in s for s in f.sentences)
    assert any(title.startswith("Problem 1") and len(t["rows"]) == 4 for title, t in f.tables)
    # a second run trains nothing and measures nothing again
    calls = ex.calls
    again = run_quick(recipe, tmp_path, ex)
    assert ex.calls == calls and again["measure"] == m


def _recipe_file(tmp_path: Path, measure: str) -> Path:
    path = tmp_path / "bad_measure.toml"
    path.write_text('title = "t"\nsheet = "s"\nquestion = "0"\n[base]\nmodel = "video3d"\n'
                    '[[variants]]\nlabel = "a"\n[measure]\n' + measure + "\n")
    return path


@pytest.mark.parametrize("measure,words", [
    ('kind = "nope"', ["kind", "video_macs", "'nope'"]),
    ("frames = 8", ["kind", "None"]),
    ('kind = "video_macs"\nwidth = 3', ["width", "unknown option", "frames"]),
    ('kind = "video_macs"\nframes = "eight"', ["frames", "an integer", "'eight'"]),
    ('kind = "video_macs"\nframes = true', ["frames", "an integer"]),
    ('kind = "video_macs"\nquick = { frames = 2.5 }', ["quick.frames", "2.5"]),
    ('kind = "video_macs"\nquick = 3', ["quick", "table"]),
    ('kind = "bottleneck"\ngammas = [1.0, "huge"]', ["gammas[1]", "'huge'"]),
    ('kind = "bottleneck"\ngrad_depths = 4', ["grad_depths", "list"]),
    ('kind = "pyramid_scales"\nscales = [0.5, "x"]', ["scales[1]", "a number"]),
    ('kind = "pyramid_scales"\nvariants = "pyramid"', ["variants", "list"]),
])
def test_bad_measure_table_is_one_line_naming_recipe_and_key(tmp_path: Path, measure: str,
                                                             words: list[str]) -> None:
    from cnnlab.common.errors import CnnlabError
    from cnnlab.experiments.recipe import load_recipe

    with pytest.raises(CnnlabError) as e:
        load_recipe(_recipe_file(tmp_path, measure))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("recipe bad_measure: [measure]"), msg
    for w in words:
        assert w in msg, (w, msg)


def test_measure_options_quick_overrides_and_json_safety() -> None:
    from cnnlab.experiments.measure import finite, options

    spec = {"kind": "bottleneck", "gammas": [1, "1/sqrt2"], "quick": {"init_samples": 8}}
    kind, full = options(spec, "r")
    _, quick = options(spec, "r", quick=True)
    assert kind == "bottleneck" and full["gammas"] == [1.0, 2 ** -0.5]
    assert full["init_samples"] == 4096 and quick["init_samples"] == 8
    assert finite({"a": float("nan"), "b": (float("inf"), 1.0)}) == {"a": None, "b": [None, 1.0]}

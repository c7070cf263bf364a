"""TTIC Problems 1-2: the literal 3D-conv equation, video3d's multiplication count, and the
moving-MNIST clips (determinism, bouncing, labels)."""

from __future__ import annotations

import math

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

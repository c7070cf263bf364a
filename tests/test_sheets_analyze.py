"""The sheets' printed numbers, computed by the analyzer and cross-checked against torch.

Sheets: 002 = Problem sheet 3 (1c, 3d), 001 = HUJI 67103 (1.1, theory 4.1/4.2),
000 = ETH series 5 (Problem 2), 003 = TTIC 31230 (Problems 1 and 3).
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab import analyze
from cnnlab.analysis.render import shape_of
from cnnlab.cli.main import main
from cnnlab.models import zoo as models
from cnnlab.models.build import build


def torch_params(spec: str, shape: tuple[int, ...]) -> int:
    from cnnlab.ir.spec import parse

    return sum(p.numel() for p in build(parse(spec), shape).parameters())


def test_sheet3_1c_table() -> None:
    """002 1(c): data shape (batch x width x height x channels) and receptive field per layer."""
    a = analyze("sheet3-1c")
    expected = [  # (node, shape as printed in the sheet, receptive field)
        ("conv1", (1, 24, 24, 20), 5),
        ("maxpool1", (1, 12, 12, 20), 6),
        ("conv2", (1, 8, 8, 50), 14),
        ("maxpool2", (1, 4, 4, 50), 16),
        ("conv3", (1, 1, 1, 500), 28),
        ("conv4", (1, 1, 1, 10), 28),
        ("softmax1", (1, 1, 1, 10), 28),
    ]
    net = build(models.get("sheet3-1c").graph(), (1, 28, 28))
    seen: dict[str, tuple[int, ...]] = {}
    for name, _, _ in expected:
        net.layers[name].register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
    net(torch.zeros(1, 1, 28, 28))
    for name, nhwc, rf in expected:
        row = a.layer(name)
        assert shape_of(row.output_shape, 1, "nhwc") == nhwc
        assert (1, *row.output_shape) == seen[name]  # a real forward pass agrees
        assert row.rf == (rf, rf)


@pytest.mark.parametrize(
    "name, params",
    [("baseline", 1_111_946), ("baseline-same", 3_274_634)],
)
def test_huji_baseline_params(name: str, params: int) -> None:
    """001 1.1: 832 + 51,264 + 1,049,600 (valid) or 3,212,288 (same) + 10,250."""
    m = models.get(name)
    a = analyze(name)
    assert a.total.params == params
    assert torch_params(m.spec, m.input_shape) == params
    steps = [r.params for r in a.layers if r.params]
    fc1 = 1_049_600 if name == "baseline" else 3_212_288
    assert steps == [832, 51_264, fc1, 10_250]


def test_huji_theory_4() -> None:
    """001 theory 4.1: 96 5x5 filters on RGB; 4.2: fc on 4x4x256 to the same size."""
    assert analyze("conv5x5x96", input="3x32x32").total.params == 96 * 5 * 5 * 3 + 96 == 7296
    a = analyze("fc4096", input="256x4x4")
    assert a.total.params == 4096 * 4096 + 4096 == 16_781_312


@pytest.mark.parametrize("k", [1, 16])
def test_eth_problem2_counts_and_ratios(k: int) -> None:
    """000 Problem 2 for a 128x128x3 image and 5x5 kernels, 'full signal support' = valid."""
    m, p = 128, 5
    out = (m - p + 1) ** 2  # 124^2 = 15376 positions
    c = analyze(f"conv{p}x{p}x{k}", input=f"3x{m}x{m}", compare=True).layer("conv1").compare
    assert c.conv_weights == p * p * 3 * k
    assert c.local_weights == out * k * p * p * 3
    assert c.full_weights == (m * m * 3) * (out * k)
    assert c.conv == p * p * 3 * k + k
    assert c.local == out * k * (p * p * 3 + 1)
    assert c.full == out * k * (m * m * 3 + 1)
    assert c.weights_conv_over_local == pytest.approx(1 / 15376)
    assert c.weights_conv_over_full == pytest.approx(25 / (16384 * 15376))
    assert c.conv_over_local == pytest.approx(1 / 15376)  # the bias per unit keeps the ratio


@pytest.mark.parametrize("b, x, nin, nout, dk", [(4, 16, 3, 8, 3), (2, 9, 5, 7, 5)])
def test_ttic_p1_multiplies(b: int, x: int, nin: int, nout: int, dk: int) -> None:
    """003 Problem 1: B*X*Y*dX*dY*Nout*Nin multiplies (output positions X*Y)."""
    a = analyze(f"conv{dk}x{dk}x{nout}(padding=same)", input=f"{nin}x{x}x{x}", batch=b)
    assert a.layer("conv1").macs == b * x * x * dk * dk * nout * nin


@pytest.mark.parametrize("n, nb, depth", [(256, 64, 5), (128, 32, 3), (64, 40, 4)])
def test_ttic_p3_bottleneck_multiplies(n: int, nb: int, depth: int) -> None:
    """003 Problem 3(a): 2*N*Nb*(L-1) for the bottleneck stack vs N^2*(L-1) for a plain MLP."""
    blocks = analyze(f"res{{fc{nb} relu fc{n} relu}}*{depth - 1}", input=f"{n}")
    plain = analyze(f"fc{n}*{depth - 1}", input=f"{n}")
    assert blocks.total.macs == 2 * n * nb * (depth - 1)
    assert plain.total.macs == n * n * (depth - 1)
    assert (blocks.total.macs < plain.total.macs) == (nb < n / 2)


def test_four_stacked_3x3_see_9x9() -> None:
    """002 3(d): 1 -> 3 -> 5 -> 7 -> 9, a support of 81 pixels."""
    a = analyze("conv3x3x4*4", input="1x32x32")
    assert [a.layer(f"conv{i}").rf for i in range(1, 5)] == [(3, 3), (5, 5), (7, 7), (9, 9)]


def test_huji_valid_length() -> None:
    """001 theory 1.2: a valid convolution of length n with k taps has n-k+1 outputs; n=k -> 1."""
    for n, k in [(10, 3), (7, 7), (28, 5)]:
        assert analyze(f"conv{k}x1", input=f"1x{n}").layer("conv1").output_shape == (1, n - k + 1)


def test_cli_json_matches_sheet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "sheet3-1c", "--layout", "nhwc", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    row = {r["name"]: r for r in data["layers"]}
    assert row["conv2"]["output_shape"] == [1, 8, 8, 50]
    assert row["maxpool2"]["rf"] == [16, 16]
    assert row["maxpool2"]["jump"] == [4, 4]
    assert data["total"]["params"] == 431_080


def test_plugin_models_analyze_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    """TTIC P2: the video CNN is analyzable by name; each conv's MACs = X*Y*T*dX*dY*dT*Nout*Nin."""
    assert main(["analyze", "video3d", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    convs = [r for r in data["layers"] if r["kind"] == "conv"]
    assert convs
    shapes = {r["name"]: r["output_shape"] for r in data["layers"]}
    for r in convs:
        nin = shapes[r["inputs"][0]][1]
        _, nout, t, y, x = r["output_shape"]
        assert r["macs"] == x * y * t * 27 * nout * nin  # 3x3x3 kernels

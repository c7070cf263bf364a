"""The PyTorch builder on every op and padding mode, and the `cnnlab analyze` command."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import torch
import waiting
from torch import nn
from torch.nn import functional as F

from cnnlab.cli.main import main
from cnnlab.ir import graph as ir
from cnnlab.ir.spec import parse
from cnnlab.models import build as B
from cnnlab.models import zoo as models


def net(text: str, shape: tuple[int, ...]) -> B.GraphNet:
    return B.build(parse(text), shape, seed=0).eval()


def ones(model: nn.Module) -> nn.Module:
    """Every conv/linear weight 1 and bias 0, so outputs are plain window sums."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return model


@pytest.mark.parametrize(("text", "shape", "types"), [
    ("conv3x4", (2, 8), [nn.Conv1d]),
    ("conv3x4(padding=1,groups=2,dilation=2,bias=false)", (2, 8, 8), [nn.Conv2d]),
    ("conv3x4(padding=same)", (1, 3, 8, 8), [nn.Conv3d]),
    ("conv2x4(padding=same)", (1, 8), [nn.Sequential]),  # asymmetric: Pad then conv
    ("maxpool2 avgpool3(stride=1,padding=1)", (1, 8, 8), [nn.MaxPool2d, nn.AvgPool2d]),
    ("maxpool2(padding=2)", (1, 8), [nn.Sequential]),  # torch rejects padding > kernel/2
    ("avgpool3(padding=1)", (1, 2, 2, 2), [nn.Sequential]),  # AvgPool3d: input < kernel
    ("gap", (3, 4, 4), [B.GlobalPoolModule]),
    ("bn flatten bn", (3, 4, 4), [nn.BatchNorm2d, nn.Flatten, nn.BatchNorm1d]),
    ("bn", (3, 4, 4, 4), [nn.BatchNorm3d]),
    ("dropout0.2 fc5 fc3 softmax", (2, 3, 3), [nn.Dropout, B.FlattenLinear, nn.Linear,
                                                nn.Softmax]),
    ("relu tanh sigmoid gelu elu leakyrelu softplus identity", (3,),
     [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Identity]),
    ("res{relu} cat{ | } scale2", (3,), [nn.ReLU, B.Join, B.Join, B.ScaleBy]),
])
def test_every_op_builds_its_module(text: str, shape: tuple[int, ...], types: list) -> None:
    model = net(text, shape)
    assert [type(m) for m in model.layers.values()] == types
    assert model(torch.randn(2, *shape)).shape[0] == 2


X5 = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])


@pytest.mark.parametrize(("text", "expected"), [
    # TF 'same', stride 2 on 5: ceil(5/2)=3 outputs, total pad (3-1)*2+2-5 = 1, all at the end
    ("conv2x1(padding=same,stride=2)", [1 + 2, 3 + 4, 5 + 0]),
    # kernel 3 stride 2: total pad (3-1)*2+3-5 = 2, one on each side
    ("conv3x1(padding=same,stride=2)", [0 + 1 + 2, 2 + 3 + 4, 4 + 5 + 0]),
    # kernel 4 stride 1: total 3, one before and two after
    ("conv4x1(padding=same)", [0 + 1 + 2 + 3, 1 + 2 + 3 + 4, 2 + 3 + 4 + 5, 3 + 4 + 5 + 0,
                                4 + 5 + 0 + 0]),
    ("conv2x1(padding=full)", [0 + 1, 1 + 2, 2 + 3, 3 + 4, 4 + 5, 5 + 0]),
    ("conv3x1(padding=2,dilation=2)", [0 + 1 + 3, 0 + 2 + 4, 1 + 3 + 5, 2 + 4 + 0, 3 + 5 + 0]),
    ("avgpool2(padding=same)", [1.5, 3.5, 2.5]),  # padded zeros count, as in a box conv
])
def test_padding_by_hand(text: str, expected: list[float]) -> None:
    with torch.no_grad():
        assert ones(net(text, (1, 5)))(X5).flatten().tolist() == expected


def test_same_padding_max_pool_pads_with_minus_infinity() -> None:
    x = -X5
    with torch.no_grad():
        assert net("maxpool2(padding=same)", (1, 5))(x).flatten().tolist() == [-1, -3, -5]


# torch warns that an even kernel with padding='same' needs a padded copy; that is the point
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(("k", "d"), [(2, 1), (4, 1), (3, 2), (4, 3)])
def test_same_stride_one_matches_torch_padding_same(k: int, d: int) -> None:
    model = net(f"conv{k}x3x2(padding=same,dilation={d})", (2, 7, 6))
    conv = model.layers["conv1"]
    conv = conv[1] if isinstance(conv, nn.Sequential) else conv
    ref = nn.Conv2d(2, 2, (k, 3), padding="same", dilation=d)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-6)


def test_same_stride_two_matches_explicit_tf_padding() -> None:
    model = net("conv3x2x4(padding=same,stride=2)", (1, 6, 5))
    conv = model.layers["conv1"][1]
    x = torch.randn(1, 1, 6, 5)
    # rows: out 3, total (3-1)*2+3-6 = 1 -> (0, 1); cols: out 3, total (3-1)*2+2-5 = 1 -> (0, 1)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=0, atol=0)


def test_explicit_asymmetric_padding_from_the_ir() -> None:
    g = ir.Graph()
    g.add(ir.Conv(1, (2,), padding=((0, 2),), bias=False))
    with torch.no_grad():
        assert ones(B.build(g, (1, 5)))(X5).flatten().tolist() == [3, 5, 7, 9, 5, 0]


def test_fc_on_a_feature_map_flattens_channels_first() -> None:
    model = net("fc3", (2, 2, 2))
    x = torch.randn(4, 2, 2, 2)
    lin = model.layers["fc1"].linear
    with torch.no_grad():
        torch.testing.assert_close(model(x), lin(x.reshape(4, 8)), rtol=0, atol=0)


@pytest.mark.parametrize(("text", "factor"), [("res{identity}", 2.0),
                                              ("res(gamma=0.25){identity}", 0.5),
                                              ("add{ | scale3 | }", 5.0)])
def test_joins_sum_and_scale(text: str, factor: float) -> None:
    x = torch.randn(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(net(text, (3,))(x), factor * x)


def test_branching_graph_returns_its_output_node() -> None:
    model = net("conv1x2 cat{conv1x3 | relu}", (1, 4))
    assert not model._sequential
    assert model(torch.randn(2, 1, 4)).shape == (2, 5, 4)


def test_seed_makes_builds_identical() -> None:
    a, b = net("conv3x3x4 fc2", (1, 5, 5)), net("conv3x3x4 fc2", (1, 5, 5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ------------------------------------------------------------------ the CLI

def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "message"), [
    (["conv5x5x8 frob2", "--input", "1x8x8"], "spec at column 11 ('frob2'): unknown layer"),
    (["conv5x5x8", "--input", "1x3x3"], "layer conv1: kernel 5 (axis 0) is larger than its "
                                         "padded input 3"),
    (["conv3x8(padding=-2)", "--input", "1x3"], "padding must be an integer >= 0, got -2"),
    (["add{conv3x3x8(padding=same) | }", "--input", "1x8x8"],
     "layer add1: cannot add shapes (8, 8, 8) and (1, 8, 8)"),
    (["fc2", "--input", "1x0x8"], "--input '1x0x8': every size must be >= 1, got 0"),
    (["fc2", "--input", "abc"], "--input 'abc': expected sizes joined by 'x'"),
    (["missing.toml"], "cannot read architecture file missing.toml"),
    (["fc2"], "no input shape: add --input CxHxW"),
    (["conv3x8", "--input", "1x8", "--batch", "0"], "batch must be >= 1, got 0"),
    (["--module", "nocolon", "--input", "3"], "--module 'nocolon': expected package.module"),
    (["--module", "os:nothing", "--input", "3"], "--module: 'os' has no attribute 'nothing'"),
    (["--module", "no_such_pkg_x:f", "--input", "3"], "--module: cannot import 'no_such_pkg_x'"),
    (["--module", "os.path:join"], "--module needs --input"),
])
def test_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture, argv: list[str],
                                     message: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("cnnlab: error: ") and message in err
    assert err.count("\n") == 1


def test_real_process_exit_codes_and_no_traceback() -> None:
    cmd = [sys.executable, "-m", "cnnlab", "analyze"]
    bad = waiting.run([*cmd, "conv5x5x8", "--input", "1x3x3"])
    assert bad.returncode == 2
    assert bad.stderr.startswith("cnnlab: error: layer conv1") and "Traceback" not in bad.stderr
    good = waiting.run([*cmd, "baseline"])
    assert (good.returncode, good.stderr) == (0, "")
    built = B.build(models.get("baseline").graph(), (1, 28, 28))
    assert f"params: {sum(p.numel() for p in built.parameters()):,} " in good.stdout


def test_json_schema(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "conv3x3x4 relu fc2", "--input", "1x5x5", "--format", "json")
    assert code == 0
    d = json.loads(out)
    assert [r["name"] for r in d["layers"]] == ["input", "conv1", "relu1", "fc1"]
    conv = d["layers"][1]
    assert {k: conv[k] for k in ("name", "kind", "output_shape", "params", "macs", "rf",
                                 "jump")} == {
        "name": "conv1", "kind": "conv", "output_shape": [1, 4, 3, 3], "params": 40,
        "macs": 4 * 3 * 3 * 9, "rf": [3, 3], "jump": [1, 1]}
    assert d["layers"][3]["jump"] is None
    assert (d["total"]["params"], d["total"]["macs"]) == (40 + 74, 324 + 72)
    assert d["total"]["complete"] is True


def test_csv_and_markdown(capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run_cli(capsys, "conv3x3x4 fc2", "--input", "1x5x5", "--format", "csv")
    rows = [r for r in csv.reader(io.StringIO(out)) if r]
    assert rows[0][:7] == ["name", "kind", "desc", "output_shape", "rf", "jump", "params"]
    assert [r[0] for r in rows[1:]] == ["input", "conv1", "fc1", "total"]
    assert rows[2][3:7] == ["1x4x3x3", "3x3", "1x1", "40"]
    _, md, _ = run_cli(capsys, "conv3x3x4 fc2", "--input", "1x5x5", "--format", "markdown")
    lines = md.splitlines()
    assert lines[0].startswith("| layer | type | output | RF | jump | params | MACs |")
    assert lines[3].startswith("| conv1 | conv 3x3x4 | 1x4x3x3 | 3x3 | 1x1 | 40 | 324 |")


def test_batch_scales_macs_and_memory(capsys: pytest.CaptureFixture) -> None:
    def total(batch: str) -> dict:
        _, out, _ = run_cli(capsys, "baseline", "--batch", batch, "--format", "json")
        return json.loads(out)

    one, four = total("1"), total("4")
    assert four["total"]["macs"] == 4 * one["total"]["macs"]
    assert four["total"]["activations"] == 4 * one["total"]["activations"]
    assert four["total"]["params"] == one["total"]["params"]
    assert four["layers"][1]["output_shape"] == [4, 32, 24, 24]


def test_layout_nhwc_reads_and_prints_channels_last(capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run_cli(capsys, "conv5x5x32", "--input", "28x28x1", "--layout", "nhwc",
                        "--format", "json")
    d = json.loads(out)
    assert d["input_shape"] == [1, 28, 28, 1]
    assert d["layers"][1]["output_shape"] == [1, 24, 24, 32]


def test_module_factory_from_a_file(capsys: pytest.CaptureFixture, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiny_net_for_cli.py").write_text(
        "from torch import nn\n\n\ndef make():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),"
        " nn.Linear(4 * 6 * 6, 10))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run_cli(capsys, "--module", "tiny_net_for_cli:make", "--input", "1x8x8",
                           "--format", "json")
    assert code == 0
    d = json.loads(out)
    assert [r["name"] for r in d["layers"]] == ["input", "0", "1", "2", "3"]
    assert d["total"]["params"] == 4 * 9 + 4 + 144 * 10 + 10
    assert d["layers"][4]["rf"] == [8, 8]

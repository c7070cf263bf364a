"""``cnnlab analyze MODEL --erf``: the printed numbers are the API's, the RF the analyzer's,
the weights those of the run folder with ``--weights``; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.analysis.erf import effective_rf
from cnnlab.cli.main import main
from cnnlab.models import zoo

SPEC = "conv3x3x4 relu conv3x3x4 maxpool2 conv3x3x4"
PNG = b"\x89PNG\r\n\x1a\n"


def erf_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["analyze", *argv, "--erf", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_spec_json_equals_api_and_analyzer(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fig" / "erf.png"
    data = erf_json([SPEC, "--input", "1x21x21", "--erf-samples", "8", "--erf-seed", "3",
                     "--erf-out", str(out)], capsys)
    assert out.read_bytes().startswith(PNG)
    names = ["conv1", "conv2", "maxpool1", "conv3"]
    assert [r["layer"] for r in data["layers"]] == names  # default: the conv and pool rows
    a = cnnlab.analyze(SPEC, "1x21x21")
    net = zoo.resolve(SPEC).build((1, 21, 21), seed=3)
    api = effective_rf(net, (1, 21, 21), [f"layers.{n}" for n in names], samples=8, seed=3,
                       rf=a)  # the Analysis itself: rows found by name
    for row, ref in zip(data["layers"], api.layers, strict=True):
        assert tuple(row["rf"]) == a.layer(row["layer"]).rf
        assert tuple(row["footprint"]) == tuple(row["rf"])
        assert (row["erf50"], row["erf95"]) == (ref.erf50, ref.erf95)
        assert row["ratio95"] == ref.erf95 / max(row["rf"])
        np.testing.assert_allclose(row["std"], ref.std, rtol=1e-12)
    assert data["weights"] == "random init (seed 3)" and data["samples"] == 8


def test_table_prints_each_chosen_layer(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.svg"
    assert main(["analyze", SPEC, "--input", "1x21x21", "--erf", "--erf-layers", "conv2,relu1",
                 "--erf-samples", "4", "--erf-out", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].split() == ["layer", "output", "RF", "footprint", "ERF50", "ERF95",
                               "ERF50/RF", "ERF95/RF", "std"]
    net = zoo.resolve(SPEC).build((1, 21, 21), seed=0)
    a = cnnlab.analyze(SPEC, "1x21x21")
    api = effective_rf(net, (1, 21, 21), ["layers.conv2", "layers.relu1"], samples=4,
                       rf={f"layers.{n}": a.layer(n).rf for n in ("conv2", "relu1")})
    for line, name, ref in zip(text[2:4], ["conv2", "relu1"], api.layers, strict=True):
        cells = line.split()
        rf = a.layer(name).rf
        assert cells[:6] == [name, "x".join(map(str, ref.output_shape)),
                             "x".join(map(str, rf)), "x".join(map(str, ref.footprint)),
                             str(ref.erf50), str(ref.erf95)]
    assert text[-1] == f"heatmap: {out}"
    assert out.read_text().lstrip().startswith("<?xml")


def test_default_layers_at_most_six_last_included(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = " ".join(["conv3x3x2"] * 9)
    data = erf_json([spec, "--input", "1x21x21", "--erf-samples", "2",
                     "--erf-out", str(tmp_path / "e.png")], capsys)
    got = [r["layer"] for r in data["layers"]]
    assert len(got) == 6 and got[0] == "conv1" and got[-1] == "conv9"
    assert [r["rf"] for r in data["layers"]] == [[2 * int(n[4:]) + 1] * 2 for n in got]


def test_module_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "erf_factory_mod.py").write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv1d(1, 3, 5, dilation=2), nn.ReLU(),\n"
        "                         nn.Conv1d(3, 2, 3, stride=2))\n")
    monkeypatch.chdir(tmp_path)
    data = erf_json(["--module", "erf_factory_mod:make", "--input", "1x64",
                     "--erf-layers", "0,2", "--erf-out", "m.png"], capsys)
    # by hand: 1 + 2*4 = 9, then 9 + (3 - 1) * jump 1 = 11 (the stride acts on what follows)
    assert [r["rf"] for r in data["layers"]] == [[9], [11]]
    assert [r["footprint"] for r in data["layers"]] == [[9], [11]]
    assert (tmp_path / "m.png").read_bytes().startswith(PNG)


def test_weights_of_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainutil import tiny_config

    from cnnlab.training.trainer import train
    from cnnlab.ttic.pyramid import load_trained

    cfg = tiny_config(tmp_path, iterations=10, eval_every=10, plots=False, tensorboard=False)
    res = train(cfg)
    capsys.readouterr()
    run = res.run_dir
    png = str(tmp_path / "w.png")
    data = erf_json(["--weights", run, "--erf-layers", "conv1,maxpool1", "--erf-samples", "8",
                     "--erf-out", png], capsys)
    trained = load_trained(run).net
    api = effective_rf(trained, (1, 28, 28), ["layers.conv1", "layers.maxpool1"], samples=8)
    fresh = zoo.resolve(cfg.spec).build((1, 28, 28), seed=0)
    init = effective_rf(fresh, (1, 28, 28), ["layers.conv1", "layers.maxpool1"], samples=8)
    for row, ref, ini in zip(data["layers"], api.layers, init.layers, strict=True):
        np.testing.assert_allclose(row["std"], ref.std, rtol=1e-12)
        assert row["std"] != pytest.approx(list(ini.std), rel=1e-6)  # not the random init
        assert row["rf"] == list(cnnlab.analyze(cfg.spec, "1x28x28").layer(row["layer"]).rf)
    assert data["weights"] == f"trained, {run}"
    # the same run with its own MODEL named is fine; another model is refused
    assert main(["analyze", cfg.spec, "--weights", run, "--erf", "--erf-out", png]) == 0
    capsys.readouterr()
    assert main(["analyze", "baseline", "--weights", run, "--erf", "--erf-out", png]) == 2
    assert "not 'baseline'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    ([SPEC, "--input", "1x21x21", "--erf-out", "x.jpg"], "give a .png or .svg"),
    ([SPEC, "--input", "1x21x21", "--erf-layers", "fc9"], "'fc9' is not a module"),
    ([SPEC + " fc10", "--input", "1x21x21", "--erf-layers", "fc1"], "not a feature map"),
    ([SPEC, "--input", "1x21x21", "--erf-samples", "0"], "--erf-samples must be >= 1"),
    ([SPEC, "--weights", "no/such/run"], "no such run folder"),
    ([], "--erf needs a MODEL"),
])
def test_bad_input_one_line_exit_2(argv: list[str], message: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", *argv, "--erf"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("cnnlab: error:")
    assert not list(tmp_path.iterdir())  # no figure written


def test_uniform_init_is_the_exact_linear_case(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--erf-init uniform on 1-channel linear convs: std = sqrt(2n/3) (n-fold convolution of
    the 3-tap box), footprint = RF = 2n+1."""
    spec = " ".join(["conv3x3x1"] * 8)
    data = erf_json([spec, "--input", "1x25x25", "--erf-init", "uniform", "--erf-samples", "2",
                     "--erf-layers", "conv2,conv8", "--erf-out", str(tmp_path / "u.png")],
                    capsys)
    for row, n in zip(data["layers"], (2, 8), strict=True):
        assert row["rf"] == row["footprint"] == [2 * n + 1] * 2
        assert row["std"] == pytest.approx([(2 * n / 3) ** 0.5] * 2, rel=1e-6)
    assert data["weights"].startswith("uniform")

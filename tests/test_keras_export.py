"""``cnnlab export --to keras|onnx``: every registered architecture round-trips (export,
import, analyze) to the same table, row for row; the CLI writes the files and reads them back;
a missing extra is one line naming it."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from cnnlab.analysis.analyze import analyze_graph  # noqa: E402
from cnnlab.cli.main import main  # noqa: E402
from cnnlab.common.errors import CnnlabError  # noqa: E402
from cnnlab.ir.keras_import import from_keras, load_keras  # noqa: E402
from cnnlab.models import zoo  # noqa: E402
from cnnlab.models.export_keras import build_keras, export_keras, keras_code  # noqa: E402
from cnnlab.models.resolve import model_graph  # noqa: E402

SLOW = ("vgg16", "video3d")


def _rows(a):
    return [(r.name, r.desc, r.output_shape, r.rf, r.jump, r.params, r.macs, r.flops)
            for r in a.layers]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in zoo.names()])
def test_keras_round_trip_gives_the_same_table(name: str, tmp_path) -> None:
    try:
        graph, shape = model_graph(name)
    except CnnlabError as e:
        pytest.skip(f"cnnlab cannot analyze {name} itself: {e}")
    out = tmp_path / "m.keras"
    if name == "pyramid":
        # its scale branches add (a Binary row): Keras export refuses that with one line
        with pytest.raises(CnnlabError, match="no Keras layer"):
            export_keras(graph, shape, out, tmp_path / "m.py", name)
        return
    model = export_keras(graph, shape, out, tmp_path / "m.py", name)
    back, back_shape, _ = from_keras(load_keras(str(out)))
    a, b = analyze_graph(graph, shape), analyze_graph(back, back_shape)
    assert _rows(b) == _rows(a)
    # the model Keras itself built has the parameters cnnlab counts (no BN stats in cnnlab)
    stats = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    assert model.count_params() - stats == a.total.params


def test_keras_code_is_the_model(tmp_path) -> None:
    graph, shape = model_graph("conv3x3x8(padding=1,stride=2) bn relu "
                               "cat{conv1x1x4 | maxpool3(stride=1,padding=same)} "
                               "avgpool2(padding=1) conv3x3x6(groups=2) gap dropout0.2 fc3 "
                               "softmax", "3x15x15")
    code = keras_code(graph, shape, "demo")
    compile(code, "demo.py", "exec")
    assert "layers.ZeroPadding2D(((1, 1), (1, 1)), name='conv1_pad')" in code
    assert "layers.Conv2D(6, (3, 3), groups=2, name='conv3')" in code
    model = build_keras(code)
    back, s, _ = from_keras(model)
    assert _rows(analyze_graph(back, s)) == _rows(analyze_graph(graph, shape))


def test_keras_export_refuses_what_keras_cannot_say() -> None:
    graph, shape = model_graph("conv3x3x4 maxpool3(stride=2) fc2", "1x9x9")
    graph.nodes[2] = graph.nodes[2].__class__(
        graph.nodes[2].name, graph.nodes[2].op.__class__("max", (3,), (2,), "valid", True),
        graph.nodes[2].inputs)
    with pytest.raises(CnnlabError, match="ceil mode"):
        keras_code(graph, shape)


def test_cli_export_and_analyze(tmp_path, capsys) -> None:
    out = tmp_path / "base.keras"
    assert main(["export", "baseline", "--to", "keras", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "base.py").is_file()
    capsys.readouterr()
    assert main(["analyze", "baseline"]) == 0
    want = capsys.readouterr().out
    assert main(["analyze", str(out)]) == 0
    assert capsys.readouterr().out == want
    assert main(["export", "baseline", "--to", "keras", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "writes a .keras file" in capsys.readouterr().err


def test_cli_export_onnx(tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    out = tmp_path / "s.onnx"
    assert main(["export", "sheet3-1c", "--to", "onnx", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", "sheet3-1c", "--format", "csv"]) == 0
    want = capsys.readouterr().out
    assert main(["analyze", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out == want


def test_missing_extra_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert main(["analyze", str(tmp_path / "m.keras")]) == 2
    assert "pip install 'cnnlab[keras]'" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'cnnlab[onnx]'" in capsys.readouterr().err
    assert main(["export", "baseline", "--to", "onnx", "--out", str(tmp_path / "b.onnx")]) == 2
    assert "pip install 'cnnlab[onnx]'" in capsys.readouterr().err


def test_bad_keras_file_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "m.keras"
    bad.write_bytes(b"not a zip")
    assert main(["analyze", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read this Keras model" in err and err.count("\n") == 1

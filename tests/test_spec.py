"""The spec language: grammar coverage, every error path, TOML/JSON files, equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.common.errors import CnnlabError, SpecError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import infer_shapes
from cnnlab.ir.spec import parse
from cnnlab.ir.specfile import load

INPUT = ir.Input()


def ops(text: str) -> list[ir.Op]:
    return [n.op for n in parse(text).nodes[1:]]


def wiring(g: ir.Graph) -> list[tuple[str, ir.Op, tuple[str, ...]]]:
    return [(n.name, n.op, n.inputs) for n in g.nodes]


@pytest.mark.parametrize(("text", "expected"), [
    ("conv5x5x32", [ir.Conv(32, (5, 5))]),
    ("conv5x32", [ir.Conv(32, (5,))]),  # one size broadcasts over every spatial axis
    ("conv3x3x3x16(stride=2)", [ir.Conv(16, (3, 3, 3), stride=(2,))]),
    ("conv3x8(s=2x1,pad=1x2,d=2,g=2,bias=false)",
     [ir.Conv(8, (3,), (2, 1), ((1, 1), (2, 2)), (2,), 2, False)]),
    ("conv3x8(padding=same)", [ir.Conv(8, (3,), padding="same")]),
    ("conv3x8(padding=full)", [ir.Conv(8, (3,), padding="full")]),
    ("conv3x8(padding=1)", [ir.Conv(8, (3,), padding=((1, 1),))]),
    ("maxpool2", [ir.Pool("max", (2,))]),
    ("mp2x1", [ir.Pool("max", (2, 1))]),
    ("pool3(stride=2,padding=same)", [ir.Pool("max", (3,), (2,), "same")]),
    ("avgpool3x3(stride=1)", [ir.Pool("avg", (3, 3), (1,))]),
    ("gap", [ir.GlobalPool("avg")]),
    ("globalavgpool", [ir.GlobalPool("avg")]),
    ("globalmaxpool", [ir.GlobalPool("max")]),
    ("gmp", [ir.GlobalPool("max")]),
    ("fc10 linear5 dense2", [ir.Linear(10), ir.Linear(5), ir.Linear(2)]),
    ("fc10(bias=false)", [ir.Linear(10, False)]),
    ("fc(units=3)", [ir.Linear(3)]),
    ("bn batchnorm(eps=0.001,momentum=0.9)", [ir.BatchNorm(), ir.BatchNorm(1e-3, 0.9)]),
    ("dropout0.25 drop(p=0.5)", [ir.Dropout(0.25), ir.Dropout(0.5)]),
    ("dropout(keep=0.75)", [ir.Dropout(0.25)]),
    ("flatten softmax scale0.5", [ir.Flatten(), ir.Softmax(), ir.Scale(0.5)]),
    ("relu tanh sigmoid gelu elu leakyrelu softplus identity",
     [ir.Act(a) for a in ir.ACTIVATIONS]),
    ("RELU", [ir.Act("relu")]),
])
def test_layers(text: str, expected: list[ir.Op]) -> None:
    assert ops(text) == expected


@pytest.mark.parametrize("text", [
    "conv5x5x32 relu maxpool2", "conv5x5x32, relu, maxpool2", "conv5x5x32 -> relu -> maxpool2",
    "conv5x5x32,relu->maxpool2",
])
def test_separators(text: str) -> None:
    assert ops(text) == [ir.Conv(32, (5, 5)), ir.Act("relu"), ir.Pool("max", (2,))]


def test_repeat_numbers_each_copy() -> None:
    g = parse("conv3x3x8*3 res{fc4}*2")
    assert [(n.name, n.inputs) for n in g.nodes] == [
        ("input", ()), ("conv1", ("input",)), ("conv2", ("conv1",)), ("conv3", ("conv2",)),
        ("fc1", ("conv3",)), ("add1", ("conv3", "fc1")),
        ("fc2", ("add1",)), ("add2", ("add1", "fc2")),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("res{fc4 relu}", [("input", INPUT, ()), ("fc1", ir.Linear(4), ("input",)),
                       ("relu1", ir.Act("relu"), ("fc1",)),
                       ("add1", ir.Add(), ("input", "relu1"))]),
    ("res(gamma=1/sqrt2){fc4}", [("input", INPUT, ()), ("fc1", ir.Linear(4), ("input",)),
                                 ("add1", ir.Add(2 ** -0.5), ("input", "fc1"))]),
    ("add(gamma=0.5){fc4 | }", [("input", INPUT, ()), ("fc1", ir.Linear(4), ("input",)),
                                ("add1", ir.Add(0.5), ("fc1", "input"))]),
    ("cat{fc4 | fc2 | }", [("input", INPUT, ()), ("fc1", ir.Linear(4), ("input",)),
                           ("fc2", ir.Linear(2), ("input",)),
                           ("concat1", ir.Concat(), ("fc1", "fc2", "input"))]),
    ("cat{res{fc2} | fc3}", [("input", INPUT, ()), ("fc1", ir.Linear(2), ("input",)),
                             ("add1", ir.Add(), ("input", "fc1")),
                             ("fc2", ir.Linear(3), ("input",)),
                             ("concat1", ir.Concat(), ("add1", "fc2"))]),
])
def test_blocks(text: str, expected: list) -> None:
    assert wiring(parse(text)) == expected


def test_origin_names_token_and_column() -> None:
    g = parse("fc4 res{relu}")
    assert [n.origin for n in g.nodes[1:]] == ["fc4 (column 1)", "relu (column 9)",
                                               "res (column 5)"]


@pytest.mark.parametrize(("text", "column", "words"), [
    ("conv5x5x32 relu fc10(x=1)", 17, "fc does not take x; it takes out, bias"),
    ("conv5x5x32 frob2", 12, "unknown layer 'frob'"),
    ("fc10 $", 6, "unexpected character '$'"),
    ("3 fc10", 1, "a number on its own"),
    ("fc10 }", 6, "unexpected '}'"),
    ("| fc10", 1, "unexpected '|'"),
    ("res{conv3x8", 1, "block is not closed; add '}'"),
    ("fc2 cat{fc1 | fc2", 5, "block is not closed"),
    ("conv3x8(stride)", 1, "expected key=value inside (...), got 'stride'"),
    ("relu(x=1)", 1, "relu does not take x; it takes no arguments"),
    ("conv3x8*0", 8, "'*' must be followed by a repeat count >= 1"),
    ("fc10 *x", 6, "'*' must be followed by a repeat count >= 1"),
    ("fc10*", 5, "'*' must be followed by a repeat count >= 1"),
    ("cat{fc4}", 1, "cat{...} needs at least two branches"),
    ("add{fc4}", 1, "add{...} needs at least two branches"),
    ("res{fc2 | fc3}", 1, "res{...} has one body"),
    ("cat(gamma=2){fc1 | fc2}", 1, "gamma applies to res/add blocks, not cat"),
    ("res(beta=1){fc2}", 1, "res block takes only gamma, not beta"),
    ("conv5", 1, "conv needs a kernel and a filter count"),
    ("maxpool2x", 1, "cannot read this layer"),
    ("relu3", 1, "relu takes no size here"),
    ("fc2x3", 1, "fc takes no size here"),
    ("dropout1.5", 1, "dropout probability must be in [0, 1), got 1.5"),
    ("dropout(keep=0)", 1, "dropout probability must be in [0, 1), got 1.0"),
    ("conv3x8(padding=weird)", 1, "padding must be valid, same, full or integers"),
    ("conv3x8(stride=fast)", 1, "stride must be an integer or one per axis"),
    ("fc0", 1, "units must be a positive integer, got 0"),
    ("conv3x0", 1, "filters must be a positive integer, got 0"),
    ("fc(out=3.5)", 1, "units must be a positive integer, got 3.5"),
    ("conv3x8(groups=0)", 1, "groups must be a positive integer, got 0"),
    ("conv0x8", 1, "kernel must be a positive integer, got 0"),
    ("scale", 1, "scale needs factor"),
    ("maxpool", 1, "maxpool needs kernel"),
])
def test_errors_name_column_and_token(text: str, column: int, words: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(text)
    assert e.value.column == column
    assert words in str(e.value)
    assert str(e.value).startswith(f"spec at column {column} ('{e.value.token}'): ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["", "   ", ", ->"])
def test_empty_spec(text: str) -> None:
    with pytest.raises(SpecError, match="^spec: empty spec; write layers such as"):
        parse(text)


@pytest.mark.parametrize(("text", "shape", "out"), [
    ("conv5x8", (1, 28), (8, 24)),
    ("conv5x8", (1, 28, 28), (8, 24, 24)),
    ("conv5x8", (1, 8, 28, 28), (8, 4, 24, 24)),
    ("conv3x1x8(padding=same,stride=2)", (1, 7, 9), (8, 4, 5)),
    ("conv3x1x8(padding=same,stride=2x1)", (1, 7, 9), (8, 4, 9)),
    ("maxpool2 fc10", (3, 9, 9), (10,)),
])
def test_broadcasting_and_dims(text: str, shape: tuple[int, ...], out: tuple[int, ...]) -> None:
    g = parse(text)
    assert infer_shapes(g, shape)[g.out] == out


# ----------------------------------------------------------------------------- files

TOML_LAYERS = """
name = "mix"
input = [3, 8, 8]
[[layers]]
type = "conv"
kernel = [3, 3]
filters = 8
padding = "same"
[[layers]]
type = "res"
gamma = 0.5
body = [{ type = "conv", k = 3, out = 8, pad = "same" }, { type = "relu" }]
[[layers]]
type = "cat"
branches = [[{ type = "conv", kernel = 1, filters = 4 }], []]
[[layers]]
type = "fc"
out = 10
repeat = 2
"""
SAME_AS_STRING = ("conv3x3x8(padding=same) res(gamma=0.5){conv3x8(padding=same) relu} "
                  "cat{conv1x4 | } fc10*2")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_layers_equal_the_string_form(tmp_path: Path) -> None:
    g, shape, name = load(_write(tmp_path, "mix.toml", TOML_LAYERS))
    assert (shape, name) == ((3, 8, 8), "mix")
    assert wiring(g) == wiring(parse(SAME_AS_STRING))


def test_json_layers_and_spec_key_equal_the_string_form(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads(TOML_LAYERS)
    g, shape, name = load(_write(tmp_path, "mix.json", json.dumps(data)))
    assert wiring(g) == wiring(parse(SAME_AS_STRING))
    g2, shape2, name2 = load(_write(tmp_path, "s.toml",
                                    f'input = "3x8x8"\nspec = "{SAME_AS_STRING}"\n'))
    assert (wiring(g2), shape2, name2) == (wiring(g), (3, 8, 8), "s")
    assert g2.source == SAME_AS_STRING


def test_toml_explicit_asymmetric_padding(tmp_path: Path) -> None:
    text = '[[layers]]\ntype = "conv"\nkernel = 3\nfilters = 2\npadding = [[0, 1], [1, 0]]\n'
    g, shape, _ = load(_write(tmp_path, "p.toml", text))
    assert shape is None
    assert g.nodes[1].op.padding == ((0, 1), (1, 0))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("b.toml", 'spec = "fc1"\ncolor = 1\n',
     "b.toml: unknown key(s) color; known: description, input, layers, name, spec"),
    ("c.json", json.dumps({"layers": [{"type": "res", "body": [{"type": "relu", "a": 1}]}]}),
     "layers[0].body[0]: relu does not take a; it takes no arguments"),
    ("d.toml", 'spec = "conv5x5x32 frob"\n', "d.toml: spec at column 12 ('frob'): unknown"),
    ("e.json", json.dumps({"layers": [{"type": "add", "branches": [[]]}]}),
     "layers[0]: add needs branches = [[...], [...]]"),
    ("f.json", json.dumps({"layers": [{"type": "res", "body": [], "x": 1}]}),
     "layers[0]: unknown key(s) x for res"),
    ("g.toml", "input = [1,\n", "g.toml: not valid TOML"),
    ("g.json", "{", "g.json: not valid JSON"),
    ("h.json", json.dumps({"spec": "fc1", "layers": []}),
     "give exactly one of 'spec' (a string) or [[layers]]"),
    ("i.json", json.dumps({"layers": [{"kernel": 3}]}), "layers[0]: each layer needs a 'type'"),
    ("j.json", json.dumps({"layers": {"type": "fc"}}), "layers: expected a list of layer"),
    ("k.json", json.dumps({"layers": [{"type": "cat", "branches": [[{"type": "fc"}], []]}]}),
     "layers[0].branches[0][0]: fc needs out"),
    ("l.json", json.dumps({"layers": [{"type": "frob"}]}), "layers[0]: unknown layer type"),
])
def test_file_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(CnnlabError) as e:
        load(_write(tmp_path, name, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="cannot read architecture file .*: No such file"):
        load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ["conv3x3x8(kernel=2)", "fc10(units=3)", "maxpool2(k=3)",
                                  "dropout0.5(keep=0.9)"])
def test_size_given_twice_is_an_error(text: str) -> None:
    with pytest.raises(SpecError, match="given both in the name and as a keyword"):
        parse(text)

"""The spec parser and the architecture files never raise anything but a CnnlabError, and
stay bounded: linear-time construction, limits on repeats, nesting and sizes (issue 11)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError, SpecError
from cnnlab.ir import spec
from cnnlab.ir.layers import MAX_DEPTH, MAX_LAYERS, MAX_SIZE
from cnnlab.ir.spec import parse
from cnnlab.ir.specfile import load

BAD_SPECS = [
    "dropout(p=abc)", "dropout(keep=abc)", "dropout(p=1)", "dropout(p=-0.1)", "dropout(keep=0)",
    "bn(eps=abc)", "bn(eps=0)", "bn(eps=-1)", "bn(momentum=2)", "bn(momentum=nan)",
    "bn(eps=inf)", "scale(factor=abc)", "scale(factor=inf)", "scale(factor=true)",
    "res(gamma=abc){relu}", "res(gamma=inf){relu}", "add(gamma=nan){relu|tanh}",
    "conv3x3x8(stride=0)", "conv3x3x8(stride=0,padding=same)", "conv3x3x8(stride=-1)",
    "conv3x3x8(dilation=0)", "conv3x3x8(stride=abc)", "conv3x3x8(padding=-1)",
    "conv3x3x8(padding=1x-1)", "conv3x3x8(padding=maybe)", "conv3x3x8(bias=maybe)",
    "conv3x3x8(bias=1)", "fc10(bias=2)", "conv3x3x8(groups=0)", "conv3x3x8(groups=abc)",
    "conv0x3x8", "conv3x3x0", "fc0", "maxpool0", "maxpool2(stride=0)",
    f"conv3x3x8(padding={MAX_SIZE + 1})", "conv3x3x8(padding=99999999)",
    f"conv{MAX_SIZE + 1}x8", "conv3x3x8(stride=99999999999999999999)",
    "fc99999999999999999999", f"conv3x3x{(1 << 20) + 1}", "conv3x3x8*99999999",
    "conv3x3x8*999999999999999999999999", f"relu*{MAX_LAYERS + 1}", "relu*0",
    "res{relu*5000}*3", "res{res{relu*100}*100}*100", "", "   ", "fc10*", "*3", "{relu}",
    "res{relu", "res{relu}}", "add{relu}", "res{relu|tanh}", "cat(gamma=2){relu|tanh}",
    "res(k=3){relu}", "conv3x3x8(k)", "conv3x3x8(foo=1)", "frobnicate", "conv", "fc",
    "conv3x3x8(kernel=3)", "relu7", "\x00", "conv3x3x8\x00", "fc10 @", "conv3x3x1x2x3x4x5x6x7x8x9",
    "res{" * (MAX_DEPTH + 1) + "relu" + "}" * (MAX_DEPTH + 1),
    "res{" * 2000 + "relu" + "}" * 2000,
    " ".join(["relu"] * (MAX_LAYERS + 1)),
    # digits that are not ASCII, numbers past int()'s 4,300 digits (issue 24)
    "fc10*²", "fc10*٣", "conv3x3x٣", "fc²", "fc" + "9" * 5000, "fc10*" + "9" * 5000,
    "conv3x3x8(padding=" + "9" * 5000 + ")", "conv3x3x8(padding=" + "9" * 5000 + "x1)",
]


@pytest.mark.parametrize("text", BAD_SPECS, ids=lambda t: repr(t[:40]))
def test_bad_spec_is_one_spec_error(text: str) -> None:
    t0 = time.process_time()
    with pytest.raises(SpecError) as exc:
        parse(text)
    assert time.process_time() - t0 < 2.0
    message = str(exc.value)
    assert message.startswith("spec") and "\n" not in message


@pytest.mark.parametrize(("text", "layers"), [
    (f"relu*{MAX_LAYERS}", MAX_LAYERS), ("res{relu*99}*100", 10_000),
    ("conv3x3x8(padding=0)", 1), (f"conv3x3x8(padding={MAX_SIZE})", 1),
    ("bn(eps=1e-3,momentum=0)", 1), ("dropout(p=0)", 1), ("res(gamma=-1){relu}", 2),
])
def test_limits_are_inclusive(text: str, layers: int) -> None:
    assert len(parse(text).nodes) - 1 == layers


def test_construction_is_linear() -> None:
    """4x the layers costs under 10x the CPU time (quadratic would be 16x); best of 3."""
    import gc

    def cost(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            gc.collect()
            t0 = time.process_time()
            parse(f"conv3x3x8 relu*{n} res{{fc4 relu}}*{n // 4}")
            best = min(best, time.process_time() - t0)
        return best

    small, big = cost(1400), cost(5600)
    assert big < 10 * max(small, 1e-3)


def test_names_match_graph_add() -> None:
    """The linear namer gives exactly the names Graph.add would."""
    from cnnlab.ir import graph as ir

    text = "conv3x3x8*3 relu res{fc4 relu}*2 cat{maxpool2 | avgpool2} add{ | bn} flatten fc10"
    g = parse(text)
    slow = ir.Graph()
    for n in g.nodes[1:]:
        slow.add(n.op, tuple(n.inputs) if len(n.inputs) > 1 else n.inputs[0])
    assert [n.name for n in slow.nodes] == [n.name for n in g.nodes]


# ----------------------------------------------------------------------- architecture files

BAD_LAYER_LISTS = [
    [], [{"type": "conv", "kernel": 3, "filters": 8, "repeat": "many"}],
    [{"type": "relu", "repeat": 0}], [{"type": "relu", "repeat": -1}],
    [{"type": "relu", "repeat": True}], [{"type": "relu", "repeat": 2.5}],
    [{"type": "relu", "repeat": MAX_LAYERS + 1}], [{"type": "relu", "repeat": 10**30}],
    [{"type": "conv", "kernel": 3, "filters": 8, "bias": "no"}],
    [{"type": "conv", "kernel": 3, "filters": 8, "bias": "maybe"}],
    [{"type": "conv", "kernel": 3, "filters": "8"}], [{"type": "conv", "kernel": "3", "out": 8}],
    [{"type": "conv", "kernel": [3, "x"], "out": 8}], [{"type": "conv", "kernel": 3.5, "out": 8}],
    [{"type": "conv", "kernel": 3, "out": 8, "padding": -1}],
    [{"type": "conv", "kernel": 3, "out": 8, "padding": [[1, -2]]}],
    [{"type": "conv", "kernel": 3, "out": 8, "padding": [[1, 2, 3]]}],
    [{"type": "conv", "kernel": 3, "out": 8, "stride": 0, "padding": "same"}],
    [{"type": "dropout", "p": "abc"}], [{"type": "bn", "eps": "abc"}],
    [{"type": "bn", "eps": None}], [{"type": "scale", "factor": [1]}],
    [{"type": "res", "gamma": "x", "body": []}], [{"type": "res", "body": "relu"}],
    [{"type": "add", "branches": [[{"type": "relu"}]]}], [{"type": 3}], [{"kind": "relu"}],
    ["relu"], [None], [{"type": "res", "body": [{"type": "res", "body": []}], "x": 1}],
    [{"type": "relu", "repeat": 5001}, {"type": "relu", "repeat": 5000}],
]


def _nested(depth: int) -> list:
    layers: list = [{"type": "relu"}]
    for _ in range(depth):
        layers = [{"type": "res", "body": layers}]
    return layers


@pytest.mark.parametrize("layers", [*BAD_LAYER_LISTS, _nested(MAX_DEPTH + 2)],
                         ids=lambda v: json.dumps(v)[:50])
def test_bad_layer_list_is_one_error(tmp_path: Path, layers: list) -> None:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"input": [1, 8, 8], "layers": layers}))
    with pytest.raises(CnnlabError) as exc:
        load(path)
    assert str(path) in str(exc.value) or "layers" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("top", [
    {"spec": 3}, {"spec": ["relu"]}, {"spec": "relu", "input": "1xx2"},
    {"spec": "relu", "input": [1, -2]}, {"spec": "relu", "input": [True, 2]},
    {"spec": "relu", "input": "abc"}, {"spec": "relu", "input": {"a": 1}},
    {"spec": "relu", "input": [1, 999999999, 999999999]}, {"spec": "relu", "input": "1x70000"},
    {"spec": "relu", "name": 3}, {"spec": "relu*0"}, {"spec": "relu", "layers": []},
    {}, {"spec": "relu", "extra": 1},
])
def test_bad_top_level_is_one_error(tmp_path: Path, top: dict) -> None:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(top))
    with pytest.raises(CnnlabError):
        load(path)


@pytest.mark.parametrize("text", ['[[layers]]\ntype = "conv"\nkernel = 3\nfilters = 8\n'
                                  'repeat = "many"\n',
                                  'spec = "conv3x3x8"\ninput = "1x28x28"\nname = 5\n',
                                  "[" * 100000, "\xff\xfe"])
def test_bad_toml_is_one_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "arch.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text
                     else b"\xff\xfe")
    with pytest.raises(CnnlabError):
        load(path)


def test_deep_json_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "arch.json"
    path.write_text('{"layers": ' + "[" * 200000 + "]" * 200000 + "}")
    with pytest.raises(CnnlabError):
        load(path)


# ----------------------------------------------------------------------- fuzz

PIECES = ["conv", "fc", "maxpool", "avgpool", "dropout", "bn", "relu", "res", "add", "cat",
          "scale", "gap", "flatten", "x", "3", "0", "-1", "2.5", "99999999", "(", ")", "{",
          "}", "|", "*", ",", "=", "p", "eps", "stride", "padding", "same", "bias", "maybe",
          "abc", "gamma", "1/sqrt2", " ", "->", "nan", "inf", "1e999", "\x00", "é",
          "²", "٣", "9" * 5000]  # '²'.isdigit() is True; int() refuses 4,300 digits


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_fuzz_spec_only_spec_errors(pieces: list[str]) -> None:
    text = "".join(pieces)
    t0 = time.process_time()
    try:
        spec.parse(text)
    except SpecError:
        pass
    assert time.process_time() - t0 < 2.0


def test_memory_is_bounded() -> None:
    """The worst repeat/size cases allocate far less than 500 MB while parsing."""
    import tracemalloc

    for text in ("conv3x3x8*99999999", f"relu*{MAX_LAYERS}", "res{res{relu*100}*99}*1",
                 "conv3x3x8(padding=99999999)", "res{" * 3000 + "}" * 3000):
        tracemalloc.start()
        try:
            parse(text)
        except SpecError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 100 * 2**20, (text[:30], peak)


@pytest.mark.parametrize("text", ["1x2000000", "1x999999999x999999999", "2000000x2000000x1"])
def test_absurd_input_is_one_error(text: str) -> None:
    """Analysis stays bounded: an --input beyond the stated limits is refused up front."""
    from cnnlab.ir.shapes import parse_shape

    with pytest.raises(CnnlabError, match="too large"):
        parse_shape(text)


def test_absurd_input_tuple_is_one_error() -> None:
    import cnnlab

    with pytest.raises(CnnlabError, match="too large"):
        cnnlab.analyze("conv3x3x8", input=(1, 10**9, 10**9))

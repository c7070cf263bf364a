"""Errors that point the right way: ``--input`` mistakes (no channel axis, channels last) are
named with the expected form, and ``conv5x5`` (no filter count) says how it was read."""

from __future__ import annotations

import warnings

import pytest

from cnnlab.cli.main import main
from cnnlab.common.errors import CnnlabWarning
from cnnlab.ir.shapes import INPUT_FORM, input_hint
from cnnlab.ir.spec import parse

SPEC = "conv5x5x32 relu fc10"


@pytest.mark.parametrize("flags, start", [
    (["--input", "28x28"], "cnnlab: error: --input 28x28 has no channel axis: "
     f"{INPUT_FORM}; a grey 28x28 image is 1x28x28 (layer conv1: "),
    (["--input", "28x28x1"], "cnnlab: error: --input 28x28x1 looks channels-last (HxWxC): "
     f"{INPUT_FORM} (or give 1x28x28) (layer conv1: "),
    (["--input", "28x28", "--layout", "nhwc"], "cnnlab: error: --input 28x28 has no channel "
     "axis: with --layout nhwc give HxWxC, e.g. 28x28x1 (layer conv1: "),
])
def test_input_mistakes_are_named_with_the_expected_form(flags, start, capsys) -> None:
    assert main(["analyze", SPEC, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1, err


def test_other_shape_errors_end_with_the_form(capsys) -> None:
    assert main(["analyze", SPEC, "--input", "1x3x3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: layer conv1: ") and err.endswith(f"({INPUT_FORM})\n")


def test_the_right_forms_analyze(capsys) -> None:
    assert main(["analyze", SPEC, "--input", "1x28x28", "--format", "csv"]) == 0
    nchw = capsys.readouterr().out
    assert main(["analyze", SPEC, "--input", "28x28x1", "--layout", "nhwc", "--format",
                 "csv"]) == 0
    assert "conv1" in nchw and "conv1" in capsys.readouterr().out


@pytest.mark.parametrize("text, layout, want", [
    ("3x32x32", "nchw", INPUT_FORM), ("32x32x3", "nchw", "looks channels-last"),
    ("1x28", "nchw", "has no channel axis"), ("28x28x1", "nhwc", "HxWxC, e.g. 28x28x1")])
def test_input_hint(text, layout, want) -> None:
    assert want in input_hint(text, layout)


def test_conv_with_two_equal_numbers_warns_how_it_was_read() -> None:
    with pytest.warns(CnnlabWarning, match=r"'conv5x5'\): read as a kernel of 5 on every axis "
                      r"with 5 filters .*conv5x5x32"):
        g = parse("conv5x5 relu fc10")
    conv = next(n for n in g.nodes if n.op.kind == "conv")
    assert (conv.op.out_channels, conv.op.kernel) == (5, (5,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse("conv5x5x32 relu conv5x16 fc10")  # unambiguous: no warning


def test_the_cli_prints_the_warning_as_one_line(capsys) -> None:
    assert main(["analyze", "conv3x3 relu fc10", "--input", "1x8x8", "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: warning: spec at column 1 ('conv3x3'): read as")
    assert err.count("\n") == 1

"""A CLI that answers at once: ``--help`` of every command and every argument error without
torch, one line naming the sub-command with the closest flag, choice or command."""

from __future__ import annotations

import json
import resource
import sys

import pytest
import waiting

from cnnlab.cli.args import normalize, suggest
from cnnlab.cli.main import ALIASES, COMMANDS, build_parser, main

# every command's --help and a typo each, in one fresh interpreter; torch must stay unloaded
PROBE = """
import sys
from cnnlab.cli.main import COMMANDS, main
calls = [["--help"], ["trian"]] + [[c, "--help"] for c in COMMANDS] + [
    [c, "--no-such-flag"] for c in COMMANDS] + [["train", "--optimizer", "adm"],
    ["analyze", "--layout", "NHWC"], ["experiment", "run", "x", "--quik"]]
for argv in calls:
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "matplotlib", "optuna", "ray", "scipy", "jinja2")
               if m in sys.modules)
print("HEAVY", heavy, file=sys.stderr)
"""


def test_help_and_argument_errors_of_every_command_import_no_torch() -> None:
    p = waiting.run([sys.executable, "-c", PROBE])
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "HEAVY []"


def test_top_level_help_costs_under_half_a_cpu_second() -> None:
    """CPU seconds of the child (user + system): the machine's load does not change them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = waiting.run([sys.executable, "-m", "cnnlab", "--help"])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert p.returncode == 0 and "train" in p.stdout
    assert cpu < 0.5, f"cnnlab --help took {cpu:.2f} CPU s"


@pytest.mark.parametrize("argv, line", [
    (["train", "--itterations", "100"],
     "cnnlab train: error: unrecognized argument --itterations; did you mean --iterations?"),
    (["analyze", "baseline", "--imput", "1x28x28"],
     "cnnlab analyze: error: unrecognized argument --imput; did you mean --input?"),
    (["analyze", "conv5x5x2", "--layout", "NHWC"],
     "cnnlab analyze: error: --layout: invalid choice: 'NHWC'; did you mean nhwc? "
     "(choose from nchw, nhwc)"),
    (["train", "--optimizer", "adm"],
     "cnnlab train: error: --optimizer: invalid choice: 'adm'; did you mean adam? "
     "(choose from sgd, momentum, adam, adadelta)"),
    (["trian"], "cnnlab: error: command: invalid choice: 'trian'; did you mean train? "
     f"(choose from {', '.join(COMMANDS)})"),
    (["experiment", "run", "huji_q2", "--quik"],
     "cnnlab experiment run: error: unrecognized argument --quik; did you mean --quick?"),
    (["experiment", "shwo", "huji_q2"],
     "cnnlab experiment: error: action: invalid choice: 'shwo'; did you mean show? "
     "(choose from list, show, run)"),
    (["verify", "--lst"], "cnnlab verify: error: unrecognized argument --lst; "
     "did you mean --list?"),
    (["train", "--zzz"], "cnnlab train: error: unrecognized argument --zzz; "
     "see cnnlab train --help"),
    (["analyze", "conv5x5", "relu", "fc10"], "cnnlab analyze: error: unexpected argument(s) "
     "relu fc10: a spec with spaces is one argument; quote it, e.g. cnnlab analyze "
     "'conv5x5x32 relu fc10'"),
    (["analyze", "baseline", "foo"], "cnnlab analyze: error: unexpected argument(s) foo; "
     "see cnnlab analyze --help"),
])
def test_an_argument_error_is_one_line_with_the_closest_flag(argv, line, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == line + "\n"


def test_snake_case_flags_and_the_british_spelling_are_accepted() -> None:
    parser = build_parser(only="train")
    assert normalize(parser, ["train", "--out_name", "a", "--batch_size=8", "--", "--x_y"]) == [
        "train", "--out-name", "a", "--batch-size=8", "--", "--x_y"]
    assert normalize(parser, ["train", "--not_a_flag"]) == ["train", "--not_a_flag"]
    assert ALIASES["analyse"] == "analyze"


def test_analyse_alias_and_out_name_run_the_command(capsys) -> None:
    assert main(["analyse", "conv3x3x4 relu fc10", "--input", "1x8x8", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "conv3x3x4 relu fc10" and doc["input_shape"] == [1, 1, 8, 8]
    args = build_parser(only="train").parse_args(["train", "--out-name", "x"])
    assert args.out_name == "x"


def test_erf_heatmap_flag_is_out_with_the_old_name_kept() -> None:
    p = build_parser(only="analyze")
    assert p.parse_args(["analyze", "--out", "a.png"]).erf_out == "a.png"
    assert p.parse_args(["analyze", "--erf-out", "b.png"]).erf_out == "b.png"


@pytest.mark.parametrize("word, options, want", [
    ("NHWC", ["nchw", "nhwc"], "nhwc"), ("--itterations", ["--iterations", "--lr"],
                                          "--iterations"), ("zzz", ["train", "plot"], None)])
def test_suggest(word, options, want) -> None:
    assert suggest(word, options) == want

"""No dead ends (issue 24, kind 8): every flag an error advises exists for the command that
printed it (parsed with the real CLI parser), and the key pieces of advice, followed, work."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest
from test_experiment_repro import mnist_or_skip

from cnnlab.cli.main import STOP_ADVICE, build_parser, main

DATA = os.environ.get("CNNLAB_DATA", "")
TINY = ["--spec", "fc10", "--iterations", "2", "--train-size", "100", "--train-eval-size", "50",
        "--eval-every", "2", "--no-plots", "--no-tensorboard", "--data-dir", DATA]


def _options(argv: list[str]) -> set[str]:
    """The option strings of the (sub-)command ``argv`` names, from the real parser."""
    parser: argparse.ArgumentParser = build_parser(only=argv[0])
    words = list(argv)
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
                   None)
        if sub is None or not words or words[0] not in sub.choices:
            break
        parser = sub.choices[words.pop(0)]
    return {s for a in parser._actions for s in a.option_strings}


def _advised(message: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", message))


def _error(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def _train(tmp: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--runs-dir", str(tmp / "runs"), "--out-name", "r", *extra]


def _stopped_before_env(tmp: Path) -> None:
    """A run SIGTERMed between config.json and env.json: its real config.json, nothing else."""
    import shutil

    assert main(_train(tmp)) == 0
    folder = tmp / "runs" / "r"
    for p in folder.iterdir():
        if p.name != "config.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()


SCENARIOS = {
    "exists": (lambda t: (t / "runs" / "r").mkdir(parents=True) or
               (t / "runs" / "r" / "x").write_text("x"), lambda t: _train(t)),
    "resume-missing": (None, lambda t: _train(t, "--resume")),
    "stopped-before-env": (_stopped_before_env, lambda t: _train(t)),
    "stopped-before-env-resume": (_stopped_before_env, lambda t: _train(t, "--resume")),
    "foreign-overwrite": (lambda t: (t / "runs" / "r").mkdir(parents=True) or
                          (t / "runs" / "r" / "x").write_text("x"),
                          lambda t: _train(t, "--overwrite")),
    "lr": (None, lambda t: _train(t, "--lr", "-1")),
    "augment": (None, lambda t: _train(t, "--augment", "shift=99")),
    "fp16": (None, lambda t: _train(t, "--precision", "fp16", "--device", "cpu")),
    "module-no-input": (None, lambda t: ["analyze", "--module", "x:y"]),
    "no-input": (None, lambda t: ["analyze", "conv3x3x8"]),
    "bad-input": (None, lambda t: ["analyze", "conv3x3x8", "--input", "-1x28x28"]),
    "seeds": (None, lambda t: ["experiment", "run", "huji_q4_subset", "--seeds", "0"]),
    "analyze-work": (None, lambda t: ["analyze", "conv3x3x8(padding=same)*200", "--input",
                                      "1x1048576x1048576"]),
}


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_advised_flags_exist_for_the_command(tmp_path: Path, capsys, monkeypatch,
                                             case: str) -> None:
    mnist_or_skip()
    monkeypatch.setenv("CNNLAB_DATA", DATA)
    setup, argv_of = SCENARIOS[case]
    if setup:
        setup(tmp_path)
    argv = argv_of(tmp_path)
    err = _error(argv, capsys)
    flags = _advised(err.split(":", 2)[-1])
    assert flags <= _options(argv[:2] if argv[0] == "experiment" else argv[:1]), err


@pytest.mark.parametrize("command", sorted(STOP_ADVICE))
def test_stop_advice_names_flags_of_its_command(command: str) -> None:
    argv = ["experiment", "run"] if command == "experiment" else [command]
    assert _advised(STOP_ADVICE[command]) <= _options(argv)


def test_a_run_stopped_before_env_json_follows_its_advice_to_the_end(tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:
    """SIGTERM said --resume; --resume says --overwrite; --overwrite must then work."""
    mnist_or_skip()
    monkeypatch.setenv("CNNLAB_DATA", DATA)
    _stopped_before_env(tmp_path)
    err = _error(_train(tmp_path), capsys)
    assert "--resume" in err
    err = _error(_train(tmp_path, "--resume"), capsys)
    assert "--overwrite" in err
    assert main(_train(tmp_path, "--overwrite")) == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "r" / "result.json").is_file()


def test_an_existing_run_follows_resume_advice(tmp_path: Path, capsys, monkeypatch) -> None:
    mnist_or_skip()
    monkeypatch.setenv("CNNLAB_DATA", DATA)
    assert main(_train(tmp_path, "--checkpoint-every", "1")) == 0
    err = _error(_train(tmp_path, "--checkpoint-every", "1"), capsys)
    assert "--resume" in err and "--overwrite" in err
    assert main(_train(tmp_path, "--checkpoint-every", "1", "--overwrite")) == 0

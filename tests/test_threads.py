"""Threads that never hurt (the free cores by default) and a run that is never silent: a
progress line at least every ``EVERY_S`` seconds without a terminal."""

from __future__ import annotations

import io
import json
import re

import pytest
from trainutil import tiny_config

from cnnlab.training import runlog
from cnnlab.training.runlog import Progress
from cnnlab.training.threads import auto_threads, available_cpus, load_average


@pytest.mark.parametrize("cpus, load, want", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 12.0, 1), (16, 3.2, 13), (1, 0.0, 1),
    (8, 7.6, 1), (8, 6.4, 2)])
def test_auto_threads_are_the_free_cores_at_least_one(cpus, load, want) -> None:
    assert auto_threads(cpus, load) == want


def test_available_cpus_and_load_are_sane() -> None:
    import os

    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
    assert load_average() >= 0.0
    assert 1 <= auto_threads() <= available_cpus()


def test_without_a_terminal_a_line_with_iteration_accuracy_and_eta() -> None:
    out = io.StringIO()  # not a TTY
    bar = Progress(100, None, out, every=0.0, start=0)
    assert bar.lines and bar.due()
    bar.update(25, "loss 0.1234 validation acc 97.50%")
    line = out.getvalue()
    assert re.fullmatch(r"iteration 25/100 \(25%\), loss 0\.1234 validation acc 97\.50%, "
                        r"[\d.]+ it/s, ETA (\d+ s|\d+ min|[\d.]+ h|\?)\n", line), line
    bar.close()
    assert out.getvalue() == line  # no bar to end


@pytest.mark.parametrize("enabled", [False, True])
def test_off_is_silent_and_on_is_the_bar(enabled) -> None:
    out = io.StringIO()
    bar = Progress(10, enabled, out, every=0.0)
    assert not bar.due()
    bar.update(5, "x", force=True)
    assert (out.getvalue() != "") == enabled and "iteration" not in out.getvalue()


def test_a_run_without_terminal_prints_progress_lines(tmp_path, monkeypatch, capsys) -> None:
    """Every step is due with EVERY_S = 0: the trainer prints plain lines (no \\r bar), each
    naming the held-out set "validation" when --validation holds data out."""
    from cnnlab.training.trainer import train

    monkeypatch.setattr(runlog, "EVERY_S", 0.0)
    cfg = tiny_config(tmp_path, progress="auto", validation=40, iterations=20, eval_every=10,
                      tensorboard=False, plots=False)
    train(cfg)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("iteration ")]
    assert "\r" not in err and len(lines) >= 10
    assert lines[0].startswith("iteration 1/20 (5%), ")
    assert any(re.match(r"iteration 1\d/20 \(\d+%\), loss [\d.]+ validation acc [\d.]+%, ", ln)
               for ln in lines)


def test_the_default_thread_count_is_recorded(tmp_path) -> None:
    from cnnlab.training.trainer import train

    cfg = tiny_config(tmp_path, threads=None, iterations=2, eval_every=2, tensorboard=False,
                      plots=False)
    run = train(cfg).run_dir
    env = json.loads((tmp_path / "runs" / "r" / "env.json").read_text())
    assert run.endswith("r") and 1 <= env["threads"] <= available_cpus()

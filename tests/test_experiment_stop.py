"""Stopping ``experiment run`` and running it twice at once (issue 24, kind 7).

A stop (SIGTERM from ``kill``, or Ctrl-C's SIGINT to the terminal's process group) ends the
command after the running run checkpoints its current step: finished runs are kept, queued
runs never start. Two executors on the same runs never train one run twice (a lock per run).
No test waits on a wall-clock deadline: they wait for files, with generous limits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import LIMIT_S  # the hang guard, never the thing tested

from cnnlab.experiments.executor import LocalExecutor
from cnnlab.training.trainer import RunResult, TrainConfig

RECIPE = """
title = "stop"
source = "test"
question = "stop"
seeds = 1

[base]
dataset = "mnist"
train_size = 1000
train_eval_size = 100
eval_every = 100000
log_every = 10
checkpoint_every = 50
plots = false
tensorboard = false
threads = 1

[[variants]]
label = "a"
spec = "fc10"
iterations = 5

[[variants]]
label = "b"
spec = "conv3x3x4 relu fc10"
iterations = 100000000

[[variants]]
label = "c"
spec = "conv3x3x2 relu fc10"
iterations = 100000000
"""
ROOT = Path(__file__).resolve().parents[1]


def _wait_for(cond, what: str, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + LIMIT_S
    while not cond():
        if proc is not None and proc.poll() is not None and not cond():
            raise AssertionError(f"{what}: the command ended first (exit {proc.returncode}): "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.1)


def _checkpoints(runs: Path) -> dict[str, int]:
    out = {}
    for p in runs.glob("by-id/*/checkpoints/latest.json"):
        try:
            out[p.parents[1].name] = json.loads(p.read_text())["iteration"]
        except (OSError, ValueError):
            pass
    return out


def _as_from_a_terminal() -> None:
    """SIGINT handled as in a command typed at a terminal: a test suite started in the
    background of a script (``make test &``, CI runners) has SIGINT ignored, the child would
    inherit that, and Python then never raises KeyboardInterrupt (as a background job must)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_the_experiment_and_keeps_the_work(tmp_path: Path, sig: int) -> None:
    recipe = tmp_path / "stop.toml"
    recipe.write_text(RECIPE)
    runs = tmp_path / "runs"
    from test_experiment_repro import mnist_or_skip

    mnist_or_skip()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab.cli.main", "experiment", "run", str(recipe), "--jobs",
         "1", "--runs-dir", str(runs)], env=env, cwd=tmp_path, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=_as_from_a_terminal)
    try:
        # run a finished, run b past its first periodic checkpoint
        _wait_for(lambda: len(_checkpoints(runs)) >= 2 and max(_checkpoints(runs).values()) >= 50,
                  "run b's first checkpoint", proc)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C: the whole terminal group
        else:
            os.kill(proc.pid, sig)  # kill: the command's process only
        _, err = proc.communicate(timeout=LIMIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, err
    assert "run the same command again to continue" in err
    assert "Traceback" not in err, err
    folders = sorted(p for p in (runs / "by-id").iterdir() if p.is_dir())
    assert len(folders) == 2  # run c, queued, never started
    done = [f for f in folders if (f / "result.json").is_file()]
    stopped = [f for f in folders if not (f / "result.json").is_file()]
    assert len(done) == 1 and len(stopped) == 1
    pointer = json.loads((stopped[0] / "checkpoints" / "latest.json").read_text())
    # the stop wrote a checkpoint at the step it reached (past the periodic one)
    assert pointer["iteration"] >= 50
    assert (stopped[0] / "checkpoints" / pointer["path"] / "state.json").is_file()


# --------------------------------------------------------------- two executors at once


def counting_train(cfg: TrainConfig) -> RunResult:
    """Records who trains which run, then holds it until the test says go."""
    from test_executor import fake_train

    runs = Path(cfg.runs_dir)
    with open(runs / "trained.log", "a") as f:
        f.write(f"{os.getpid()} {cfg.out_name}\n")
    end = time.monotonic() + LIMIT_S
    while not (runs / "go").exists() and time.monotonic() < end:
        time.sleep(0.05)
    return fake_train(cfg)


def test_two_executors_never_train_one_run_twice(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    cfgs = [TrainConfig(out_name=f"r{i}", runs_dir=str(runs), seed=i, iterations=100,
                        eval_every=50, plots=False, tensorboard=False) for i in range(3)]
    results: dict[int, list] = {}
    logs: dict[int, list[str]] = {0: [], 1: []}

    def go(k: int) -> None:
        ex = LocalExecutor(jobs=3, cores=3, train_fn=counting_train, log=logs[k].append,
                           batch=False)
        results[k] = ex.map(cfgs)

    threads = [threading.Thread(target=go, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    log = runs / "trained.log"
    _wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) >= 3,
              "every run to start")
    (runs / "go").touch()
    for t in threads:
        t.join(LIMIT_S)
    lines = log.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["r0", "r1", "r2"]  # once each
    assert [r.test_acc for r in results[0]] == [r.test_acc for r in results[1]]
    waited = [m for k in logs for m in logs[k] if "being trained by another cnnlab process" in m]
    assert waited  # the loser said what happened, and waited instead of training

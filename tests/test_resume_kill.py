"""A real kill: ``cnnlab train`` as a separate process, SIGKILLed part-way, then ``--resume``.

The issue asks that ``--resume`` continue a killed run and that, on CPU, the resumed run end
with exactly the weights of an uninterrupted one. ``test_train.py::test_resume_is_exact``
interrupts in-process; here the process dies for real (no ``finally``, no flush, possibly in
the middle of writing a checkpoint or a metrics line), and the resume is a second process.

The subprocess is ``cnnlab.cli.main.main`` behind a two-line wrapper that first imports
``tests/trainutil.py``, which registers the synthetic ``tiny`` dataset (no SHA-256 list: it
is not a published dataset). Real datasets keep their verification untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainutil import write_tiny
from waiting import communicate, wait_for

from cnnlab.training import checkpoint

TESTS = Path(__file__).resolve().parent
WRAPPER = ("import sys; sys.path.insert(0, {tests!r}); import trainutil  # noqa\n"
           "from cnnlab.cli.main import main; sys.exit(main())")

ITERATIONS = 120


def _cnnlab(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    code = WRAPPER.format(tests=str(TESTS))
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _train_flags(tmp_path: Path, name: str) -> list[str]:
    return ["train", "--model", "baseline", "--model-opts", "widths=4x8x16",
            "--keep-prob", "0.7", "--augment", "shift=2,noise=0.05", "--optimizer", "momentum",
            "--lr", "0.05", "--schedule", "onecycle", "--dataset", "tiny",
            "--data-dir", str(tmp_path / "tiny"), "--runs-dir", str(tmp_path / "runs"),
            "--out-name", name, "--batch-size", "20", "--iterations", str(ITERATIONS),
            "--eval-every", "40", "--checkpoint-every", "10", "--log-every", "5",
            "--train-eval-size", "50", "--threads", "1", "--no-plots", "--no-tensorboard",
            "--progress", "off"]


def _finish(p: subprocess.Popen) -> str:
    out, err = communicate(p)
    assert p.returncode == 0, err
    return out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkilled_run_resumes_to_identical_weights(tmp_path):
    write_tiny(tmp_path / "tiny")
    runs = tmp_path / "runs"
    # the uninterrupted reference runs alongside the one that will be killed (2 cores)
    full = _cnnlab(*_train_flags(tmp_path, "full"))
    killed = _cnnlab(*_train_flags(tmp_path, "killed"))
    pointer = runs / "killed" / "checkpoints" / "latest.json"
    wait_for(pointer.exists, "a checkpoint of the run to kill",
             alive=lambda: killed.poll() is None, why_dead=lambda: killed.communicate()[1])
    killed.send_signal(signal.SIGKILL)
    communicate(killed)
    assert killed.returncode == -signal.SIGKILL

    # the kill landed part-way: a checkpoint, no final weights or result
    ckpt = checkpoint.latest(runs / "killed" / "checkpoints")
    assert ckpt is not None
    at = json.loads((ckpt / "state.json").read_text())["iteration"]
    assert 0 < at < ITERATIONS
    assert not (runs / "killed" / "model.safetensors").exists()
    assert not (runs / "killed" / "result.json").exists()
    # a kill in the middle of writing a metrics line leaves it unfinished: resume copes
    with (runs / "killed" / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "iterat')

    # resume from the saved config alone: no training flags repeated
    out = _finish(_cnnlab("train", "--resume", "--out-name", "killed", "--runs-dir", str(runs),
                          "--progress", "off"))
    assert f"{ITERATIONS} iterations" in out
    _finish(full)

    a, b = _weights(runs / "full"), _weights(runs / "killed")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra = json.loads((runs / "full" / "result.json").read_text())
    rb = json.loads((runs / "killed" / "result.json").read_text())
    assert rb["iterations"] == ITERATIONS
    assert rb["test_acc"] == ra["test_acc"] and rb["test_loss"] == ra["test_loss"]
    assert [h["iteration"] for h in rb["history"]] == [h["iteration"] for h in ra["history"]]

    # the metrics of the killed session after its checkpoint were purged: no fold-back
    metrics = [json.loads(x) for x in (runs / "killed" / "metrics.jsonl").read_text().split("\n")
               if x.strip()]
    for kind in ("train", "eval"):
        its = [m["iteration"] for m in metrics if m["kind"] == kind]
        assert its == sorted(set(its)), kind
    assert [m["iteration"] for m in metrics if m["kind"] == "eval"] == list(
        range(40, ITERATIONS + 1, 40))

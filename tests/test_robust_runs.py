"""Run folders under damage (issue 11): corrupt checkpoints, pointer escapes, --overwrite of a
foreign folder, resume without config.json, TensorBoard across a resume, a full disk, a
read-only folder, SIGTERM, and a report over broken runs."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from trainutil import tiny_config, write_tiny

from cnnlab.cli.main import main
from cnnlab.common.errors import CnnlabError
from cnnlab.training import checkpoint
from cnnlab.training.trainer import train

KW = dict(iterations=30, eval_every=10, checkpoint_every=10, plots=False, tensorboard=False,
          optimizer="momentum", lr=0.05, augment="shift=1", keep_prob=0.8,
          spec=None, model="baseline", model_opts="widths=4x8x16")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted reference run ``full`` and a run ``cut`` stopped at 25 (kept
    checkpoints: step 10 and step 20)."""
    root = tmp_path_factory.mktemp("runs")
    train(tiny_config(root, out_name="full", **KW))
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(root, out_name="cut", **KW), stop_at=25)
    return root


@pytest.fixture
def work(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    return tmp_path


def resume(root: Path, **kw) -> object:
    return train(tiny_config(root, out_name="cut", resume=True, **{**KW, **kw}))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _garbage(f: Path) -> None:
    f.write_bytes(b"\x13\x37" * 500)


def _header(f: Path) -> None:  # a crafted header length far past the end of the file
    f.write_bytes(struct.pack("<Q", 2**60) + b"{}")


def _flip(f: Path) -> None:  # one byte of tensor data changed: only the hash can tell
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))


def _json(text: str):
    return lambda f: f.write_text(text)


DAMAGE = [
    ("model.safetensors", _truncate), ("model.safetensors", _garbage),
    ("model.safetensors", _header), ("model.safetensors", _flip),
    ("model.safetensors", lambda f: f.write_bytes(b"")), ("model.safetensors", Path.unlink),
    ("optimizer.safetensors", _truncate), ("optimizer.safetensors", _flip),
    ("state.safetensors", _garbage), ("state.safetensors", Path.unlink),
    ("state.json", _json("{")), ("state.json", _json("[]")), ("state.json", _json("{}")),
    ("state.json", Path.unlink), ("state.json", lambda f: f.write_bytes(b"\xff\xfe")),
]


def _edit_state(f: Path, resign: bool = False, **changes) -> None:
    """Change ``state.json``; ``resign`` also rewrites its digest (a consistent record)."""
    info = json.loads(f.read_text())
    info.update(changes)
    if resign:
        info["digest"] = checkpoint.digest(info)
    f.write_text(json.dumps(info))


DAMAGE += [
    ("state.json", lambda f: _edit_state(f, iteration=10**15)),
    ("state.json", lambda f: _edit_state(f, iteration="20")),
    ("state.json", lambda f: _edit_state(f, iteration=12)),
    ("state.json", lambda f: _edit_state(f, meta={})),
    ("state.json", lambda f: _edit_state(f, optimizer=[])),
]


@pytest.mark.parametrize(("name", "damage"), DAMAGE, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(DAMAGE)])
def test_damaged_newest_falls_back_to_previous(work: Path, name: str, damage,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    newest = work / "runs" / "cut" / "checkpoints" / "step-00000020"
    damage(newest / name)
    result = resume(work)
    err = capsys.readouterr().err
    assert "step-00000020" in err and "step-00000010" in err and "warning" in err
    assert result.iterations == 30
    assert same_weights(work / "runs" / "full", work / "runs" / "cut")  # still bit-exact


def test_every_checkpoint_damaged_is_one_error_and_deletes_nothing(work: Path) -> None:
    ck = work / "runs" / "cut" / "checkpoints"
    for step in ("step-00000010", "step-00000020"):
        _flip(ck / step / "model.safetensors")
    before = sorted(p.name for p in ck.rglob("*"))
    with pytest.raises(CnnlabError) as exc:
        resume(work)
    msg = str(exc.value)
    assert "step-00000010" in msg and "step-00000020" in msg and "nothing was deleted" in msg
    assert "--overwrite" not in msg and "\n" not in msg
    assert sorted(p.name for p in ck.rglob("*")) == before


@pytest.mark.parametrize("pointer", [
    {"path": "../../full/checkpoints/step-00000020"}, {"path": "/etc"}, {"path": 5},
    {"path": "step-00000020/../../../full"}, [1], {"iteration": 20},
])
def test_pointer_outside_the_run_is_refused(work: Path, pointer) -> None:
    (work / "runs" / "cut" / "checkpoints" / "latest.json").write_text(json.dumps(pointer))
    with pytest.raises(CnnlabError, match="latest.json"):
        resume(work)


def test_missing_pointer_uses_newest_checkpoint(work: Path) -> None:
    (work / "runs" / "cut" / "checkpoints" / "latest.json").unlink()
    assert resume(work).iterations == 30
    assert same_weights(work / "runs" / "full", work / "runs" / "cut")


def test_wrong_architecture_checkpoint_is_one_error(work: Path) -> None:
    """Shapes and dtypes are checked against the model before anything is loaded."""
    ck = work / "runs" / "cut" / "checkpoints" / "step-00000020"
    weights = load_file(str(ck / "model.safetensors"))
    key = next(iter(weights))
    weights[key] = torch.zeros(3, 3, dtype=torch.float64)
    save_file(weights, str(ck / "model.safetensors"))
    _edit_state(ck / "state.json", resign=True, files={
        **json.loads((ck / "state.json").read_text())["files"],
        "model.safetensors": checkpoint._sha256(ck / "model.safetensors")})
    with pytest.raises(CnnlabError, match=f"model.safetensors: {key}"):
        resume(work)


def test_resume_without_config_refuses(work: Path) -> None:
    (work / "runs" / "cut" / "config.json").unlink()
    with pytest.raises(CnnlabError, match="config.json is missing"):
        resume(work, lr=0.1)
    assert (work / "runs" / "cut" / "checkpoints" / "step-00000020").is_dir()


def test_overwrite_moves_aside_until_first_checkpoint(work: Path) -> None:
    run, aside = work / "runs" / "full", work / "runs" / ".full.replaced"
    old = (run / "result.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):  # dies before its first checkpoint
        train(tiny_config(work, out_name="full", overwrite=True, **KW), stop_at=5)
    assert (aside / "result.json").read_bytes() == old
    train(tiny_config(work, out_name="full", overwrite=True, **KW))
    assert not aside.exists() and (run / "result.json").is_file()


def test_overwrite_refuses_a_foreign_folder(work: Path) -> None:
    foreign = work / "runs" / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(CnnlabError, match="not a cnnlab run"):
        train(tiny_config(work, out_name="mine", overwrite=True, **KW))
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_tensorboard_keeps_the_point_at_the_resume_step(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    kw = {**KW, "tensorboard": True}
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, out_name="tb", **kw), stop_at=25)
    train(tiny_config(tmp_path, out_name="tb", resume=True, **kw))
    acc = EventAccumulator(str(tmp_path / "runs" / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("accuracy/test")] == [10, 20, 30]


# ----------------------------------------------------------------------- the system

def _argv(root: Path, name: str, *extra: str) -> list[str]:
    if not (root / "tiny").exists():
        write_tiny(root / "tiny")
    return ["train", "--dataset", "tiny", "--data-dir", str(root / "tiny"), "--runs-dir",
            str(root / "runs"), "--out-name", name, "--spec",
            "conv3x3x4 relu maxpool2 fc16 relu fc10", "--iterations", "30", "--eval-every",
            "10", "--batch-size", "20", "--progress", "off", "--no-plots",
            "--no-tensorboard", "--threads", "1", *extra]


def test_full_disk_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    calls = {"n": 0}
    real = checkpoint.write_bytes

    def write_bytes_enospc(path, data):
        calls["n"] += 1
        if calls["n"] > 3:  # the second checkpoint's first file: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint, "write_bytes", write_bytes_enospc)
    assert main(_argv(tmp_path, "disk")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    ck = tmp_path / "runs" / "disk" / "checkpoints"
    assert checkpoint.latest(ck) == ck / "step-00000010"
    assert not [p for p in ck.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.setattr(checkpoint, "write_bytes", real)
    assert main(_argv(tmp_path, "disk", "--resume")) == 0


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_os_errors_are_one_line(tmp_path: Path, monkeypatch, code: int,
                                capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(tmp_path, "ro")
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if "runs" in self.parts:
            raise OSError(code, "simulated", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1
    assert str(tmp_path / "runs") in err


def test_unreadable_data_file_is_one_line(tmp_path: Path, capsys) -> None:
    argv = _argv(tmp_path, "data")
    for f in (tmp_path / "tiny").iterdir():
        f.write_bytes(b"\x00" * 10)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error:") and err.count("\n") == 1


def test_internal_errors_are_one_line_unless_debug(monkeypatch, capsys) -> None:
    import cnnlab.cli.verify as verify

    def boom(args):
        raise TypeError("a bug")

    monkeypatch.setattr(verify, "run", boom)
    assert main(["verify"]) == 1
    err = capsys.readouterr().err
    assert "internal error: TypeError: a bug" in err and "CNNLAB_DEBUG=1" in err
    monkeypatch.setenv("CNNLAB_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["verify"])


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX")
def test_sigterm_resumes_to_identical_weights(tmp_path: Path) -> None:
    from test_resume_kill import ITERATIONS, _cnnlab, _finish, _train_flags
    from waiting import communicate, wait_for

    write_tiny(tmp_path / "tiny")
    runs = tmp_path / "runs"
    full = _cnnlab(*_train_flags(tmp_path, "full"))
    term = _cnnlab(*_train_flags(tmp_path, "term"))
    pointer = runs / "term" / "checkpoints" / "latest.json"
    wait_for(pointer.exists, "a checkpoint of the run to stop",
             alive=lambda: term.poll() is None, why_dead=lambda: term.communicate()[1])
    term.send_signal(signal.SIGTERM)
    _, err = communicate(term)
    assert term.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    out = _finish(_cnnlab("train", "--resume", "--out-name", "term", "--runs-dir", str(runs),
                          "--progress", "off"))
    assert f"{ITERATIONS} iterations" in out
    _finish(full)
    assert same_weights(runs / "full", runs / "term")


# ----------------------------------------------------------------------- the report

def test_report_skips_broken_runs(pristine: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    for name in ("good", "bad_result", "bad_metrics", "bad_config"):
        shutil.copytree(pristine / "runs" / "full", runs / name)
    (runs / "bad_result" / "result.json").write_text("{not json")
    with (runs / "bad_metrics" / "metrics.jsonl").open("a") as f:
        f.write("garbage\n")
    (runs / "bad_config" / "config.json").write_text("[1, 2]")
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for name in ("bad_result", "bad_metrics", "bad_config"):
        assert f"{name}" in err
    assert err.count("warning") == 3 and out.is_file()
    assert "good" in out.read_text()


def test_report_over_only_broken_runs_is_one_error(tmp_path: Path, capsys) -> None:
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "result.json").write_text("[")
    (tmp_path / "runs" / "exp").mkdir()
    (tmp_path / "runs" / "exp" / "experiment.json").write_text('{"recipe": 3}')
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r.html")]) == 2
    assert "unreadable, skipped" in capsys.readouterr().err

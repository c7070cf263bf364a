"""Checkpoints that cannot lie (issue 24, kinds 2 and 7): every byte a resume depends on is
covered by the integrity record (the tensor files' SHA-256 and ``state.json``'s own digest), a
checkpoint without that record is never trusted, checkpoint folders and files are real ones
inside the run (a symbolic link to another run's checkpoint is refused, and never followed
when deleting), and a full disk while a checkpoint is written is the OS-error line with the
previous checkpoint intact. Each case is a real tiny training run resumed from the damage."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from test_robust_runs import KW, _argv, _edit_state, _flip, pristine, resume, same_weights, work
from trainutil import tiny_config

from cnnlab.cli.main import main
from cnnlab.common.errors import CnnlabError
from cnnlab.training import checkpoint
from cnnlab.training.trainer import train

__all__ = ["pristine", "work"]  # the fixtures, shared with test_robust_runs

STEP10, STEP20 = "step-00000010", "step-00000020"


def _ck(root: Path, run: str = "cut") -> Path:
    return root / "runs" / run / "checkpoints"


def _one_digit(f: Path) -> None:  # meta.pos 20 -> 21: one digit, still valid JSON
    info = json.loads(f.read_text())
    info["meta"]["pos"] += 1
    f.write_text(json.dumps(info, indent=1))


def _momentum(f: Path) -> None:
    info = json.loads(f.read_text())
    info["optimizer"]["param_groups"][0]["momentum"] = 0.8
    f.write_text(json.dumps(info, indent=1))


def _no_hashes_and_flip(step: Path) -> None:
    info = json.loads((step / "state.json").read_text())
    del info["files"], info["digest"]
    (step / "state.json").write_text(json.dumps(info))
    _flip(step / "model.safetensors")


def _link_step_to_other_run(step: Path) -> None:  # the run "full" has a valid step-20 too
    other = step.parents[2] / "full" / "checkpoints" / step.name
    shutil.rmtree(step)
    step.symlink_to(other, target_is_directory=True)


def _link_file_to_other_run(step: Path) -> None:
    other = step.parents[2] / "full" / "checkpoints" / step.name / "model.safetensors"
    (step / "model.safetensors").unlink()
    (step / "model.safetensors").symlink_to(other)


TAMPER = {
    "meta.pos one digit": lambda s: _one_digit(s / "state.json"),
    "momentum": lambda s: _momentum(s / "state.json"),
    "iteration changed": lambda s: _edit_state(s / "state.json", iteration=21),
    "digest removed": lambda s: _edit_state(s / "state.json", digest=None),
    "hashes removed, model byte flipped": _no_hashes_and_flip,
    "step folder links to another run": _link_step_to_other_run,
    "model file links to another run": _link_file_to_other_run,
}


@pytest.mark.parametrize("tamper", list(TAMPER))
def test_tampered_newest_is_never_resumed(work: Path, tamper: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The tampered newest checkpoint is refused with a warning naming it; the run resumes
    from the previous one and still ends bit-exact with the uninterrupted run."""
    TAMPER[tamper](_ck(work) / STEP20)
    result = resume(work)
    err = capsys.readouterr().err
    assert STEP20 in err and STEP10 in err and "warning" in err and err.count("\n") == 1
    assert result.iterations == 30
    assert same_weights(work / "runs" / "full", work / "runs" / "cut")
    # the other run's checkpoint a link pointed at is untouched (the link went, not its target)
    assert (_ck(work, "full") / STEP20 / "model.safetensors").is_file()
    assert not (_ck(work) / STEP20).is_symlink()


@pytest.mark.parametrize("tamper", ["meta.pos one digit", "step folder links to another run"])
def test_every_checkpoint_tampered_is_one_error(work: Path, tamper: str) -> None:
    for step in (STEP10, STEP20):
        TAMPER[tamper](_ck(work) / step)
    with pytest.raises(CnnlabError) as exc:
        resume(work)
    msg = str(exc.value)
    assert STEP10 in msg and STEP20 in msg and "nothing was deleted" in msg and "\n" not in msg


def test_unverifiable_checkpoints_refuse_and_the_advice_works(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No integrity record anywhere: one line that says so and how to go on; following the
    advice (--overwrite) trains the run from the start to the uninterrupted run's weights."""
    for step in (STEP10, STEP20):
        _no_hashes_and_flip(_ck(work) / step)
    argv = ["train", "--resume", "--out-name", "cut", "--runs-dir", str(work / "runs"),
            "--progress", "off"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unverifiable checkpoint" in err and "--overwrite" in err
    result = train(tiny_config(work, out_name="cut", overwrite=True, **KW))
    assert result.iterations == 30
    assert same_weights(work / "runs" / "full", work / "runs" / "cut")


def test_checkpoints_folder_that_is_a_link_is_refused(work: Path) -> None:
    ck, other = _ck(work), _ck(work, "full")
    before = sorted(p.name for p in other.rglob("*"))
    shutil.rmtree(ck)
    ck.symlink_to(other, target_is_directory=True)
    with pytest.raises(CnnlabError, match="checkpoints folder must be a real folder"):
        resume(work)
    assert sorted(p.name for p in other.rglob("*")) == before


def test_pointer_to_a_deleted_step_uses_the_others(work: Path) -> None:
    """Deleting the newest step folder by hand (the advice for a damaged one) resumes from
    the previous checkpoint although ``latest.json`` still names the deleted one."""
    shutil.rmtree(_ck(work) / STEP20)
    assert resume(work).iterations == 30
    assert same_weights(work / "runs" / "full", work / "runs" / "cut")


def test_record_covers_state_json_and_its_files(tmp_path: Path) -> None:
    """Every key of ``state.json`` is under the digest; every tensor file under a hash."""
    train(tiny_config(tmp_path, out_name="r", **KW))
    step = _ck(tmp_path, "r") / "step-00000030"
    info = json.loads((step / "state.json").read_text())
    assert info["digest"] == checkpoint.digest(info)
    assert sorted(info["files"]) == sorted(checkpoint.FILES)
    assert sorted(p.name for p in step.iterdir()) == sorted([*checkpoint.FILES, "state.json"])
    assert checkpoint.verify(step) == info


# ----------------------------------------------------------------------- full disk


@pytest.mark.parametrize("failing", [1, 2, 3, 4, 5])
def test_full_disk_in_any_checkpoint_file_is_the_os_error_line(
        tmp_path: Path, monkeypatch, failing: int, capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC on the n-th file of the second checkpoint (three tensor files, state.json,
    latest.json): the OS-error line, the first checkpoint still the latest, no temporary
    folder, and --resume finishes."""
    from cnnlab.common import files

    real = files.atomic_write
    calls = {"n": 0}

    def atomic_write(path, write):
        if "checkpoints" in Path(path).parts:
            calls["n"] += 1
            if calls["n"] == 5 + failing:  # the first checkpoint wrote 5 files
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", atomic_write)
    assert main(_argv(tmp_path, "disk")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert "Traceback" not in err and "SafetensorError" not in err
    ck = tmp_path / "runs" / "disk" / "checkpoints"
    assert checkpoint.latest(ck) == ck / STEP10
    assert not [p for p in ck.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(files, "atomic_write", real)
    assert main(_argv(tmp_path, "disk", "--resume")) == 0


# ----------------------------------------------------------------------- read-only folder


def test_read_only_folder_under_tensorboard_is_one_line(
        tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The disk turns read-only under TensorBoard's background writer thread: one error line
    from the training thread, no thread traceback before it."""
    from tensorboard.summary.writer import record_writer

    def write(self, data):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "runs" / "tb"))

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    argv = [a for a in _argv(tmp_path, "tb") if a != "--no-tensorboard"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err, err
    assert "Traceback" not in err and "Exception in thread" not in err

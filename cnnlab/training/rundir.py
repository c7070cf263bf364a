"""A run's folder ``runs/<out-name>/``: safe naming, no silent overwrite, environment record.

ETH Problem 4 names runs with ``--out_name`` so TensorBoard can tell them apart; here the
name is also a path, so it must not escape the runs folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path, PurePath
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import check_utf8_name


def check_name(out_name: str) -> None:
    """Reject names that are empty, absolute, or climb out of the runs folder."""
    if not out_name or not out_name.strip():
        raise CnnlabError("--out-name must not be empty")
    check_utf8_name(out_name, "--out-name")
    p = PurePath(out_name)
    if p.is_absolute() or out_name.startswith(("/", "\\", "~")):
        raise CnnlabError(f"--out-name {out_name!r} must be a relative name inside the runs "
                          "folder, not an absolute path")
    if any(part in ("..", ".") for part in p.parts) or "\\" in out_name:
        raise CnnlabError(f"--out-name {out_name!r} must not contain '..' or '.' components")


def run_path(runs_dir: str | Path, out_name: str) -> Path:
    check_name(out_name)
    root = Path(runs_dir).resolve()
    path = (root / out_name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise CnnlabError(f"--out-name {out_name!r} escapes {runs_dir}")
    return path


def default_name(model: str, dataset: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in model)[:40].strip("-")
    return f"{safe or 'custom'}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


#: Keys every run's ``config.json`` has (a TrainConfig's): a folder whose config.json has
#: them is a cnnlab run even without ``env.json`` (a run stopped between the two writes).
RUN_CONFIG_KEYS = frozenset({"model", "dataset", "optimizer", "lr", "out_name", "runs_dir"})


def is_run(path: Path) -> bool:
    """Whether ``path`` is a cnnlab run folder: it has the config.json and env.json that every
    run writes before its first step, or a config.json of a run's keys (a run stopped before
    it wrote env.json: ``--resume`` sends it to ``--overwrite``, which must then work)."""
    if not (path / "config.json").is_file():
        return False
    if (path / "env.json").is_file():
        return True
    try:
        saved = json.loads((path / "config.json").read_bytes()[:1 << 20])
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and RUN_CONFIG_KEYS <= set(saved)


def check(path: Path, resume: bool, overwrite: bool) -> bool:
    """Raise unless the run folder may be used; True if an existing run will be replaced.

    ``--overwrite`` replaces only a cnnlab run, never another folder; ``--resume`` needs the
    run's ``config.json`` (without it a changed setting could not be detected)."""
    if path.exists() and not path.is_dir():
        raise CnnlabError(f"run folder {path} is a file; choose another --out-name")
    exists = path.exists() and any(path.iterdir())
    if resume:
        if not exists:
            raise CnnlabError(f"cannot resume {path}: no such run (drop --resume to start it)")
        if not (path / "config.json").is_file():
            raise CnnlabError(f"cannot resume {path}: its config.json is missing, so a changed "
                              "setting could not be detected; restore config.json from a copy, "
                              "or start a new --out-name (the checkpoints are kept)")
        return False
    if exists and not overwrite:
        raise CnnlabError(f"run folder {path} already exists; use --resume to continue it, "
                          "--overwrite to replace it, or another --out-name")
    if exists and not is_run(path):
        raise CnnlabError(f"--overwrite: {path} is not a cnnlab run (no run's config.json); "
                          "refusing to delete it -- choose another --out-name or "
                          "remove it yourself")
    return exists


def aside_path(path: Path) -> Path:
    """Where ``--overwrite`` keeps the replaced run until the new one's first checkpoint."""
    return path.parent / f".{path.name}.replaced"


def prepare(path: Path, resume: bool, overwrite: bool) -> None:
    """Create the run folder; an existing run needs ``resume`` or ``overwrite``.

    A replaced run is moved aside (:func:`aside_path`), not deleted: the new run's first
    checkpoint deletes it (:func:`cnnlab.training.checkpoint.save`), so a new run that fails
    at once leaves the old one recoverable."""
    if check(path, resume, overwrite):
        aside = aside_path(path)
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(path, aside)
    if not resume:
        path.mkdir(parents=True, exist_ok=True)


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: Any) -> dict[str, Any]:
    """Versions, device and git commit: what is needed to reproduce a run's numbers."""
    import numpy
    import torch

    try:
        from importlib.metadata import version

        cnnlab_version = version("cnnlab")
    except Exception:  # not installed as a distribution (running from a checkout)
        cnnlab_version = None
    env: dict[str, Any] = {
        "cnnlab": cnnlab_version, "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__, "numpy": numpy.__version__,
        "device": str(device), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "git_sha": _git_sha(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env

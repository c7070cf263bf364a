"""Checkpoints as safetensors + JSON (never pickle), complete enough that resuming is exact.

A checkpoint is a folder ``checkpoints/step-00000500/`` holding

* ``model.safetensors``      -- parameters and buffers (BN running statistics);
* ``optimizer.safetensors``  -- the optimizer's per-parameter tensors (Adam moments...);
* ``state.safetensors``      -- RNG states and the current data permutation;
* ``state.json``             -- iteration, optimizer scalars and param groups, counters.

It is written to a temporary folder and renamed, then ``checkpoints/latest.json`` is replaced
atomically, so a run killed at any moment (or a full disk) leaves the previous checkpoint
intact. ``state.json`` records the SHA-256 of the three tensor files and a ``digest`` of its
own content, so no byte a resume depends on can change unnoticed; a checkpoint without that
record is *unverifiable* and never trusted. :func:`latest` checks all of it (and that the
folder and its files are real ones inside the run, not symbolic links) and falls back to the
previous kept checkpoint, with a warning naming both, when the newest is damaged;
:func:`restore` checks names, shapes and dtypes against the model before loading. Every
failure is one :class:`CnnlabError` line naming the file; nothing is ever deleted because of
one.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import _remove_duplicate_names, load_file, load_model
from safetensors.torch import save as safetensors_bytes

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json, remove, replace_dir, write_bytes, write_json
from cnnlab.training.rundir import aside_path

KEEP = 2
MAX_ITERATION = 10**10  # a state.json claiming more is damaged
FILES = ("model.safetensors", "optimizer.safetensors", "state.safetensors")
STATE_TENSORS = ("rng.torch", "rng.data", "rng.aug", "acc.loss", "acc.correct")
STATE_META = ("pos", "acc_n", "train_time", "time_to_target", "iteration_to_target", "history")
_STEP = re.compile(r"step-(\d{8,})")
OVERWRITE_ADVICE = ("start the run over with --overwrite (the old run is kept aside until the "
                    "new one's first checkpoint) or start a new --out-name")


class Unverifiable(CnnlabError):
    """A checkpoint without the integrity record that would let it be checked."""


def digest(record: dict[str, Any]) -> str:
    """SHA-256 of a ``state.json`` record without its ``digest`` key, in canonical JSON."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def _model_bytes(model: torch.nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """``model``'s state as safetensors bytes; tied weights are stored once (as
    ``safetensors.torch.save_model`` does: a weight-shared pyramid CNN)."""
    state = model.state_dict()
    meta = dict(metadata or {})
    for kept, removed in _remove_duplicate_names(state).items():
        for name in removed:
            meta.setdefault(name, kept)
            del state[name]
    return safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in state.items()},
                             metadata=meta or None)


@dataclass
class Snapshot:
    """Everything besides model and optimizer that a resumed run needs."""

    iteration: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"scalars": scalars, "param_groups": sd["param_groups"],
                     "tensor_keys": sorted(tensors)}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save(folder: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
         snap: Snapshot) -> Path:
    """Write a checkpoint for ``snap.iteration`` under ``folder`` and point latest.json at it.

    Every file goes through the atomic writer (a full disk is an ``OSError`` naming the file)."""
    _real_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{snap.iteration:08d}"

    def fill(tmp: Path) -> None:
        opt_tensors, opt_meta = _optimizer_split(opt)
        blobs = {"model.safetensors": _model_bytes(model),
                 "optimizer.safetensors": safetensors_bytes(opt_tensors),
                 "state.safetensors": safetensors_bytes(
                     {k: v.detach().contiguous().cpu() for k, v in snap.tensors.items()})}
        for f, data in blobs.items():
            write_bytes(tmp / f, data)
        record = {"iteration": snap.iteration, "optimizer": opt_meta, "meta": snap.meta,
                  "files": {f: hashlib.sha256(data).hexdigest() for f, data in blobs.items()}}
        write_json(tmp / "state.json", {**record, "digest": digest(record)}, indent=1)

    final = replace_dir(folder / name, fill)
    write_json(folder / "latest.json", {"iteration": snap.iteration, "path": name}, indent=None)
    for old in sorted(p for p in folder.glob("step-*") if p.name != name)[:-(KEEP - 1) or None]:
        try:
            remove(old)  # a symbolic link is unlinked, never followed
        except OSError:
            pass  # an old checkpoint that will not go is harmless; the next save tries again
    # a run replaced with --overwrite was moved aside (rundir.prepare) until now
    aside = aside_path(folder.parent)
    if aside.is_symlink() or aside.exists():
        try:
            remove(aside)
        except OSError:
            pass
    return final


def _real_folder(folder: Path) -> None:
    """Refuse a checkpoints folder that is a symbolic link (it would lead to another run's)."""
    if folder.is_symlink():
        raise CnnlabError(f"{folder}: is a symbolic link (to {folder.readlink()}); the "
                          "checkpoints folder must be a real folder inside the run -- remove "
                          "the link")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(path: Path, what: str) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise CnnlabError(f"{path}: missing from the checkpoint") from None
    if stat.S_ISLNK(mode):
        raise CnnlabError(f"{path}: is a symbolic link (to {path.readlink()}); a checkpoint's "
                          f"{what} must be a real one inside the run, or it could be another "
                          "run's -- remove the link")
    if not (stat.S_ISDIR(mode) if what == "folder" else stat.S_ISREG(mode)):
        raise CnnlabError(f"{path}: not a {what}")


def verify(path: Path) -> dict[str, Any]:
    """Check one checkpoint folder without a model: it and its files are real (no symbolic
    links), ``state.json`` matches its own ``digest`` and is a well-formed record whose
    iteration matches the folder's name, and the tensor files match their recorded SHA-256.
    Returns the parsed ``state.json``; raises a :class:`CnnlabError` naming the bad file
    (:class:`Unverifiable` when the integrity record is missing)."""
    m = _STEP.fullmatch(path.name)
    if m is None:
        raise CnnlabError(f"{path}: not a checkpoint folder (expected step-NNNNNNNN)")
    _plain(path, "folder")
    where = path / "state.json"
    _plain(where, "file")
    info = read_json(where)
    if not isinstance(info, dict) or not isinstance(info.get("optimizer"), dict) or not \
            isinstance(info.get("meta"), dict):
        raise CnnlabError(f"{where}: not a checkpoint record (iteration, optimizer, meta)")
    hashes = info.get("files")
    if not isinstance(info.get("digest"), str) or not isinstance(hashes, dict) or any(
            not isinstance(hashes.get(f), str) for f in FILES):
        raise Unverifiable(f"{path}: unverifiable checkpoint (state.json has no complete "
                           "integrity record: digest and the files' SHA-256)")
    if info["digest"] != digest(info):
        raise CnnlabError(f"{where}: its content differs from the digest recorded in it "
                          "(the file was changed after it was written)")
    it = info.get("iteration")
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it <= MAX_ITERATION:
        raise CnnlabError(f"{where}: iteration {it!r} is not a plausible step count")
    if it != int(m.group(1)):
        raise CnnlabError(f"{where}: iteration {it} does not match the folder {path.name}")
    missing = [k for k in STATE_META if k not in info["meta"]]
    opt = info["optimizer"]
    if missing or not isinstance(opt.get("param_groups"), list) or not isinstance(
            opt.get("scalars"), dict):
        raise CnnlabError(f"{where}: incomplete record (missing "
                          f"{', '.join(missing) or 'optimizer state'})")
    for name in FILES:
        f = path / name
        _plain(f, "file")
        if hashes[name] != _sha256(f):
            raise CnnlabError(f"{f}: SHA-256 differs from the one recorded in state.json "
                              "(the file is damaged)")
    return info


def _load(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CnnlabError(f"{path}: unreadable safetensors file ({' '.join(str(e).split())})"
                          ) from None


def candidates(folder: Path) -> list[Path]:
    """Checkpoint folders, newest first: the one ``latest.json`` names (unless it is gone:
    deleted by hand), then the others."""
    pointer = folder / "latest.json"
    steps = sorted((p for p in folder.glob("step-*") if _STEP.fullmatch(p.name)
                    and (p.is_dir() or p.is_symlink())), reverse=True)
    first: Path | None = None
    if pointer.is_file():
        data = read_json(pointer)
        rel = data.get("path") if isinstance(data, dict) else None
        if not isinstance(rel, str) or not _STEP.fullmatch(rel):
            raise CnnlabError(f"{pointer}: points at {rel!r}, not a checkpoint folder of this "
                              f"run (step-NNNNNNNN); refusing to resume from it")
        first = folder / rel
        if not first.is_symlink() and not first.exists():
            first = None
    return ([first] if first is not None else []) + [p for p in steps if p != first]


def latest(folder: Path) -> Path | None:
    """The newest intact checkpoint folder, or None if there is none at all.

    A damaged newest checkpoint (or a missing ``latest.json``) falls back to the previous
    kept one with a warning naming both; when every kept checkpoint is damaged the error
    names each one and deletes nothing; when one of them is :class:`Unverifiable` it says how
    to start over."""
    _real_folder(folder)
    problems: list[str] = []
    unverifiable = False
    for path in candidates(folder):
        try:
            verify(path)
        except CnnlabError as e:
            problems.append(str(e))
            unverifiable |= isinstance(e, Unverifiable)
            continue
        if problems:
            print(f"cnnlab: warning: {problems[0]}; resuming from the previous checkpoint "
                  f"{path} instead", file=sys.stderr)
        return path
    if problems and unverifiable:
        raise CnnlabError(f"no verifiable checkpoint in {folder}: {'; '.join(problems)}; "
                          f"cnnlab resumes only from a checkpoint it can check; nothing was "
                          f"deleted -- {OVERWRITE_ADVICE}")
    if problems:
        raise CnnlabError(f"no intact checkpoint in {folder}: {'; '.join(problems)}; nothing "
                          "was deleted -- repair or remove the damaged files, or start a new "
                          "--out-name")
    return None


def _check_model(path: Path, model: torch.nn.Module) -> None:
    saved = _load(path)
    own = model.state_dict()
    unknown = sorted(set(saved) - set(own))
    if unknown:
        raise CnnlabError(f"{path}: holds tensors this model does not have "
                          f"({', '.join(unknown[:5])}); it belongs to another architecture")
    for k, v in saved.items():
        if v.shape != own[k].shape or v.dtype != own[k].dtype:
            raise CnnlabError(f"{path}: {k} is {v.dtype} {tuple(v.shape)} but the model's is "
                              f"{own[k].dtype} {tuple(own[k].shape)}; it belongs to another "
                              "architecture")


def _check_optimizer(path: Path, tensors: dict[str, torch.Tensor],
                     opt: torch.optim.Optimizer) -> None:
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, v in tensors.items():
        pid, _, name = key.partition(".")
        if not pid.isdigit() or int(pid) >= len(params):
            raise CnnlabError(f"{path}: tensor {key!r} names no parameter of this optimizer")
        p = params[int(pid)]
        if v.dim() > 0 and (v.shape != p.shape or not v.dtype.is_floating_point):
            raise CnnlabError(f"{path}: {key} is {v.dtype} {tuple(v.shape)}, the parameter "
                              f"is {tuple(p.shape)}")


def _check_state(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    missing = [k for k in STATE_TENSORS if k not in tensors]
    if missing:
        raise CnnlabError(f"{path}: missing {', '.join(missing)}")
    for k in ("rng.torch", "rng.data", "rng.aug"):
        if tensors[k].dtype != torch.uint8 or tensors[k].dim() != 1:
            raise CnnlabError(f"{path}: {k} is not a random-generator state")


def restore(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
            device: torch.device | str) -> Snapshot:
    """Load a checkpoint into ``model`` and ``opt``; return the rest as a :class:`Snapshot`.

    Everything is checked (:func:`verify`, tensor names, shapes and dtypes against ``model``
    and ``opt``) before the model or the optimizer is touched."""
    info = verify(path)
    _check_model(path / "model.safetensors", model)
    opt_tensors = _load(path / "optimizer.safetensors", str(device))
    _check_optimizer(path / "optimizer.safetensors", opt_tensors, opt)
    tensors = _load(path / "state.safetensors")
    _check_state(path / "state.safetensors", tensors)
    try:
        state = _optimizer_join(opt_tensors, info["optimizer"])
        load_model(model, str(path / "model.safetensors"), device=str(device))
        opt.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise CnnlabError(f"{path}: cannot load this checkpoint into the model "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    return Snapshot(info["iteration"], tensors, info["meta"])


def save_weights(path: Path, model: torch.nn.Module, meta: dict[str, str]) -> None:
    """Final weights (``model.safetensors``) with string metadata (model, spec, input shape),
    written atomically."""
    write_bytes(path, _model_bytes(model, meta))

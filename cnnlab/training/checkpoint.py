"""Checkpoints as safetensors + JSON (never pickle), complete enough that resuming is exact.

A checkpoint is a folder ``checkpoints/step-00000500/`` holding

* ``model.safetensors``      -- parameters and buffers (BN running statistics);
* ``optimizer.safetensors``  -- the optimizer's per-parameter tensors (Adam moments...);
* ``state.safetensors``      -- RNG states and the current data permutation;
* ``state.json``             -- iteration, optimizer scalars and param groups, counters.

It is written to a temporary folder and renamed, then ``checkpoints/latest.json`` is replaced
atomically, so a run killed at any moment (or a full disk) leaves the previous checkpoint
intact. ``state.json`` records the SHA-256 of the three tensor files; :func:`latest` checks
them (and the JSON, the iteration and the pointer) and falls back to the previous kept
checkpoint, with a warning naming both, when the newest is damaged; :func:`restore` checks
names, shapes and dtypes against the model before loading. Every failure is one
:class:`CnnlabError` line naming the file; nothing is ever deleted because of one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json, replace_dir, write_json
from cnnlab.training.rundir import aside_path

KEEP = 2
MAX_ITERATION = 10**10  # a state.json claiming more is damaged
FILES = ("model.safetensors", "optimizer.safetensors", "state.safetensors")
STATE_TENSORS = ("rng.torch", "rng.data", "rng.aug", "acc.loss", "acc.correct")
STATE_META = ("pos", "acc_n", "train_time", "time_to_target", "iteration_to_target", "history")
_STEP = re.compile(r"step-(\d{8,})")


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
    """Write a checkpoint for ``snap.iteration`` under ``folder`` and point latest.json at it."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{snap.iteration:08d}"

    def fill(tmp: Path) -> None:
        # save_model handles tied weights (a weight-shared pyramid CNN); save_file would refuse
        save_model(model, str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _optimizer_split(opt)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        save_file({k: v.detach().contiguous().cpu() for k, v in snap.tensors.items()},
                  str(tmp / "state.safetensors"))
        hashes = {f: _sha256(tmp / f) for f in FILES}
        (tmp / "state.json").write_text(json.dumps(
            {"iteration": snap.iteration, "optimizer": opt_meta, "meta": snap.meta,
             "files": hashes}, indent=1))

    final = replace_dir(folder / name, fill)
    write_json(folder / "latest.json", {"iteration": snap.iteration, "path": name}, indent=None)
    for old in sorted(p for p in folder.glob("step-*") if p.name != name)[:-(KEEP - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    # a run replaced with --overwrite was moved aside (rundir.prepare) until now
    aside = aside_path(folder.parent)
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)
    return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path) -> dict[str, Any]:
    """Check one checkpoint folder without a model: ``state.json`` is a well-formed record
    whose iteration matches the folder's name, the tensor files match their recorded SHA-256
    (or, for checkpoints written before hashes were kept, parse as safetensors). Returns the
    parsed ``state.json``; raises a :class:`CnnlabError` naming the bad file."""
    m = _STEP.fullmatch(path.name)
    if m is None:
        raise CnnlabError(f"{path}: not a checkpoint folder (expected step-NNNNNNNN)")
    info = read_json(path / "state.json")
    where = path / "state.json"
    if not isinstance(info, dict) or not isinstance(info.get("optimizer"), dict) or not \
            isinstance(info.get("meta"), dict):
        raise CnnlabError(f"{where}: not a checkpoint record (iteration, optimizer, meta)")
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
    hashes = info.get("files")
    for name in FILES:
        f = path / name
        if not f.is_file():
            raise CnnlabError(f"{f}: missing from the checkpoint")
        if isinstance(hashes, dict):
            if hashes.get(name) != _sha256(f):
                raise CnnlabError(f"{f}: SHA-256 differs from the one recorded in state.json "
                                  "(the file is damaged)")
        else:
            _load(f)
    return info


def _load(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CnnlabError(f"{path}: unreadable safetensors file ({' '.join(str(e).split())})"
                          ) from None


def candidates(folder: Path) -> list[Path]:
    """Checkpoint folders, newest first: the one ``latest.json`` names, then the others."""
    pointer = folder / "latest.json"
    steps = sorted((p for p in folder.glob("step-*") if _STEP.fullmatch(p.name) and p.is_dir()),
                   reverse=True)
    first: Path | None = None
    if pointer.is_file():
        data = read_json(pointer)
        rel = data.get("path") if isinstance(data, dict) else None
        if not isinstance(rel, str) or not _STEP.fullmatch(rel):
            raise CnnlabError(f"{pointer}: points at {rel!r}, not a checkpoint folder of this "
                              f"run (step-NNNNNNNN); refusing to resume from it")
        first = folder / rel
    return ([first] if first is not None else []) + [p for p in steps if p != first]


def latest(folder: Path) -> Path | None:
    """The newest intact checkpoint folder, or None if there is none at all.

    A damaged newest checkpoint (or a missing ``latest.json``) falls back to the previous
    kept one with a warning naming both; when every kept checkpoint is damaged the error
    names each one and deletes nothing."""
    problems: list[str] = []
    for path in candidates(folder):
        try:
            verify(path)
        except CnnlabError as e:
            problems.append(str(e))
            continue
        if problems:
            print(f"cnnlab: warning: {problems[0]}; resuming from the previous checkpoint "
                  f"{path} instead", file=sys.stderr)
        return path
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
    """Final weights (``model.safetensors``) with string metadata (model, spec, input shape)."""
    save_model(model, str(path), metadata=meta)

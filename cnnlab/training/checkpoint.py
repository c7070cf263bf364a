"""Checkpoints as safetensors + JSON (never pickle), complete enough that resuming is exact.

A checkpoint is a folder ``checkpoints/step-00000500/`` holding

* ``model.safetensors``      -- parameters and buffers (BN running statistics);
* ``optimizer.safetensors``  -- the optimizer's per-parameter tensors (Adam moments...);
* ``state.safetensors``      -- RNG states and the current data permutation;
* ``state.json``             -- iteration, optimizer scalars and param groups, counters.

It is written to a temporary folder and renamed, then ``checkpoints/latest.json`` is replaced
atomically, so a run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from cnnlab.common.files import read_json, replace_dir, write_json

KEEP = 2


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
        (tmp / "state.json").write_text(json.dumps(
            {"iteration": snap.iteration, "optimizer": opt_meta, "meta": snap.meta}, indent=1))

    final = replace_dir(folder / name, fill)
    write_json(folder / "latest.json", {"iteration": snap.iteration, "path": name}, indent=None)
    for old in sorted(p for p in folder.glob("step-*") if p.name != name)[:-(KEEP - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    pointer = folder / "latest.json"
    if not pointer.is_file():
        return None
    path = folder / read_json(pointer)["path"]
    return path if (path / "state.json").is_file() else None


def restore(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
            device: torch.device | str) -> Snapshot:
    """Load a checkpoint into ``model`` and ``opt``; return the rest as a :class:`Snapshot`."""
    load_model(model, str(path / "model.safetensors"), device=str(device))
    info = read_json(path / "state.json")
    opt_tensors = load_file(str(path / "optimizer.safetensors"), device=str(device))
    opt.load_state_dict(_optimizer_join(opt_tensors, info["optimizer"]))
    tensors = load_file(str(path / "state.safetensors"))
    return Snapshot(info["iteration"], tensors, info["meta"])


def save_weights(path: Path, model: torch.nn.Module, meta: dict[str, str]) -> None:
    """Final weights (``model.safetensors``) with string metadata (model, spec, input shape)."""
    save_model(model, str(path), metadata=meta)

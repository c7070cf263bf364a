"""The values in an fx call's arguments and the parameters of modules, for the importer's
walk (:mod:`cnnlab.ir.fximport_walk`): the traced tensors a call reads, each module's
parameter ids, the root's ``named_parameters()``. Each is a shortcut for the plain torch or
recursive form, checked against it in ``tests/test_fximport_fast.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.ir.fximport_ops import T


def tensors_in(value: Any) -> list[T]:
    """The traced tensors in ``value`` and the lists, tuples and dicts in it, in order."""
    found: list[T] = []

    def walk(v: Any) -> None:
        if isinstance(v, T):
            found.append(v)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(value)
    return found


_FLAT = frozenset((int, float, bool, str, type(None)))


def call_tensors(args: tuple, kwargs: dict) -> list[T]:
    """``tensors_in((args, kwargs))``, the flat arguments of a call without the recursion."""
    if len(args) == 1 and not kwargs and isinstance(args[0], T):  # a module's call
        return [args[0]]
    found: list[T] = []
    for v in (*args, *kwargs.values()):
        if isinstance(v, T):
            found.append(v)
        elif type(v) in _FLAT or isinstance(v, torch.Tensor):  # a weight: no T in it
            continue
        elif isinstance(v, list | tuple):  # one level of tensors_in inline (cat's list)
            for w in v:
                if isinstance(w, T):
                    found.append(w)
                elif type(w) not in _FLAT:
                    found.extend(tensors_in(w))
        else:
            found.extend(tensors_in(v))
    return found


def param_ids(mod: nn.Module) -> set[int]:
    """``{id(p) for p in mod.parameters()}``, without its generators: a leaf's own."""
    if not mod._modules:
        return {id(p) for p in mod._parameters.values() if p is not None}
    return {id(p) for p in mod.parameters()}


def named_parameters(gm: Any, root: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``list(root.named_parameters())``, from the capture's walk over the modules when it
    has one (:class:`~cnnlab.ir.capture.Recording`'s ``paths``, which ``get_submodule``
    needs anyway): the same loop as torch's, without a second walk."""
    paths = getattr(gm, "paths", False)
    if paths is False or getattr(gm, "root", None) is not root or \
            type(root).named_parameters is not nn.Module.named_parameters:
        return list(root.named_parameters())
    if paths is None:
        paths = gm.paths = dict(root.named_modules())
    seen: set[int] = set()
    named = []
    for prefix, mod in paths.items():
        for k, p in mod._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            named.append((f"{prefix}.{k}" if prefix else k, p))
    return named

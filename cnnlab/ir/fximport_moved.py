"""A permute that moves the batch axis, undone by the next call (the ViT/Swin q, k, v split).

``qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)`` puts the batch on axis 1 and
``q, k, v = qkv.unbind(0)`` (or ``qkv[0]``...) puts it back first. The IR keeps the batch on
axis 0, so the permute becomes a :class:`Moved` value without a node, and each part taken
along axis 0 becomes a slice of the axis the permute brought forward, a reshape that drops it
and the permute of the rest. Any other use gives the permute an unsupported row.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch

from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import fximport_tensor as tensor_ops
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_ops import T


@dataclass
class Moved:
    base: T
    perm: tuple[int, ...]  # over the torch axes, batch included


def moved(node: Any, args: tuple, kwargs: dict) -> Moved | None:
    """A Moved value when ``node`` is a permute of a tensor that moves the batch axis."""
    t = node.target
    name = t if isinstance(t, str) else getattr(t, "__name__", "")
    if not args or not isinstance(args[0], T) or name != "permute" or t not in ops.PERMUTE:
        return None
    perm = tensor_ops.permutation(name, len(args[0].shape), args[1:], kwargs)
    if perm is None or perm[0] == 0 or len(perm) < 3 or perm[1] != 0:
        return None
    return Moved(args[0], perm)


def _part(imp: Any, node: Any, m: Moved, i: int, base: str) -> T:
    x, first = m.base, m.perm[0]
    rest = [p - (p > first) for p in m.perm[1:]]
    shape = list(x.shape)
    chain: list[ir.Op] = [ir.Slice(first - 1, i, i + 1)]
    del shape[first]
    chain.append(ir.Reshape(tuple(shape[1:])))
    if rest != sorted(rest):
        chain.append(ir.Permute(tuple(r - 1 for r in rest[1:])))
    cur = x
    for k, op in enumerate(chain):
        last = k == len(chain) - 1
        from cnnlab.ir.shapes import node_shape

        out = node_shape(ir.Node("?", op, (cur.name,)), [cur.shape[1:]])
        name = imp.add(op, [cur], base if last else f"{base}.{k}", node.name, set(), ())
        cur = T(name, (x.shape[0], *out), x.dtype)
    return cur


def use(imp: Any, node: Any, args: tuple, kwargs: dict) -> bool:
    """Handle a call reading a Moved value; False when it is not a part along axis 0."""
    m = args[0] if args else None
    if not isinstance(m, Moved) or any(isinstance(v, Moved) for v in (*args[1:],
                                                                      *kwargs.values())):
        return False
    t = node.target
    n = m.base.shape[m.perm[0]]
    if t in ("unbind", torch.unbind) and int(args[1] if len(args) > 1 else
                                             kwargs.get("dim", 0)) == 0:
        imp.vals[node] = tuple(_part(imp, node, m, i, f"{node.name}[{i}]") for i in range(n))
        return True
    if (t is operator.getitem or t == "__getitem__") and isinstance(args[1], int):
        imp.vals[node] = _part(imp, node, m, args[1] % n, node.name)
        return True
    return False


def materialise(imp: Any, value: Any) -> Any:
    """Replace Moved values by an unsupported permute row (the batch axis moves)."""
    if isinstance(value, Moved):
        shape = tuple(value.base.shape[p] for p in value.perm)
        op = ir.Unsupported("permute", shape[1:], 0, "a permute that moves the batch axis "
                            "and is not undone by unbind(0) or [i]")
        name = imp.add(op, [value.base], "permute", "permute", set(), ())
        return T(name, shape, value.base.dtype)
    if isinstance(value, list | tuple):
        return type(value)(materialise(imp, v) for v in value)
    if isinstance(value, dict):
        return {k: materialise(imp, v) for k, v in value.items()}
    return value

"""Axes folded into the batch axis: windows, patches or heads (Swin, MaxViT, HaloNet, BoTNet).

``x.reshape(B * heads, d, -1)`` or the window partition
``x.view(B, H/ws, ws, W/ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)`` give
torch a first axis of ``B * k``. As torch lays tensors out row-major with the batch axis
outermost, that is, per sample, a reshape to ``(k, ...)``: the IR node is a plain
:class:`~cnnlab.ir.graph.Reshape` and the value a :class:`~cnnlab.ir.fximport_ops.T` of the
*logical* shape ``(B, k, ...)`` with ``fold = k`` (its ``meta()`` has the real shape, so
shape queries and ops run alone see what torch saw). A call on a folded value has its axis
arguments moved by one (torch's axis ``d >= 1`` is the logical ``d + 1``) for the ops that
keep the folded axis: element-wise ops, products, attention, softmax, reductions, transposes
and permutes that keep axis 0, slices, ``cat``/``chunk``/``split``, ``pad``, ``expand`` and
last-axis modules (``nn.Linear``, ``nn.LayerNorm``, activations, dropout). A reshape whose
first axis is ``B`` again unfolds it. Anything else on a folded value (a conv over the
folded axis, a permute that moves axis 0) is unsupported, as before.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import fximport_tensor as tensor_ops
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_moved import Moved
from cnnlab.ir.fximport_ops import T

RESHAPES = ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze")
_RESHAPE_FUNCS = {torch.reshape: "reshape", torch.flatten: "flatten",
                  torch.squeeze: "squeeze", torch.unsqueeze: "unsqueeze"}
# calls with no axis argument: the folded axis stays where it is
_SAME = ("contiguous", "clone", "detach", "float", "to", "type_as", "matmul", "bmm",
         "__matmul__", "__rmatmul__", "sigmoid", "tanh", "relu", "exp", "mul", "add", "sub",
         "div", "__mul__", "__add__", "__sub__", "__truediv__", "__radd__", "__rmul__",
         "__rsub__", "__rtruediv__", "mul_", "add_", "div_", "sub_", "pow", "__pow__", "neg",
         "__neg__", "abs", "sqrt", "rsqrt", "clamp", "scaled_dot_product_attention", "gelu",
         "silu", "dropout", "softplus", "addcmul", "pad", "relu_", "sigmoid_", "linear",
         "layer_norm", "rms_norm")
_DIM_FIRST = ("softmax", "log_softmax", "sum", "mean", "amax", "amin", "unbind", "normalize",
              "norm")  # the axis is the first argument after the tensor (or dim=)
_LAST_AXIS = (nn.Linear, nn.LayerNorm, nn.RMSNorm, nn.Dropout, nn.Identity, nn.GELU, nn.ReLU,
              nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.ReLU6)


def is_folded(v: Any) -> bool:
    return isinstance(v, T) and v.fold > 0


def _name(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", "")


def _any_folded(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return any(_any_folded(v) for v in value)
    if isinstance(value, dict):
        return any(_any_folded(v) for v in value.values())
    return is_folded(value)


def _axis(d: Any, rank: int) -> int | None:
    """The logical axis of torch's axis ``d`` of a folded value of real rank ``rank``; None
    for axis 0 (the batch and the folded axis together)."""
    d = int(d)
    if d < 0:
        return d if d >= -(rank - 1) else None
    return None if d % rank == 0 else d + 1


def _reshape(imp: Any, node: Any, args: tuple, kwargs: dict, ids: set[int]) -> bool:
    """A reshape that folds or unfolds; False when it does neither (the usual mapping)."""
    t = node.target
    name = t if node.op == "call_method" else _RESHAPE_FUNCS.get(t, "")
    x = args[0] if args else None
    if name not in RESHAPES or not isinstance(x, T):
        return False
    batch = x.shape[0]
    out = tensor_ops.method_shape(name, x.real, args[1:], kwargs)
    if out is None or not out or (not x.fold and out[0] == batch) or out[0] % batch:
        return False
    k = out[0] // batch
    logical = (batch, *out[1:]) if k == 1 else (batch, k, *out[1:])
    op = ir.Flatten() if len(logical) == 2 else ir.Reshape(tuple(logical[1:]))
    added = imp.add(op, [x], node.name, node.name, ids, logical[1:])
    imp.vals[node] = T(added, logical, x.dtype, k if k > 1 else 0)
    return True


def _translate(node: Any, args: tuple, kwargs: dict, x: T) -> tuple[tuple, dict] | str:
    """The call's arguments on the logical shape, or why it cannot be moved."""
    t, method = node.target, node.op == "call_method"
    name = _name(t)
    rank = len(x.shape) - 1
    rest = list(args[1:])
    if name in _SAME or t in ops.ACT_FUNCS or (method and t in ops.ACT_METHODS) or \
            t in ops.DROPOUT_FUNCS:
        return args, kwargs
    if name in _DIM_FIRST or t in ops.SOFTMAX or t in ops.REDUCE:
        key = "dim"
        pos = 1 if name == "normalize" else 0
        d = rest[pos] if len(rest) > pos else kwargs.get(key)
        if d is None:
            return f"{name} over every axis of a value folded into the batch"
        dims = d if isinstance(d, list | tuple) else (d,)
        moved = [_axis(v, rank) for v in dims]
        if None in moved:
            return f"{name} along the batch axis of a value folded into it"
        new = type(d)(moved) if isinstance(d, list | tuple) else moved[0]
        if len(rest) > pos:
            rest[pos] = new
        else:
            kwargs = {**kwargs, key: new}
        return (args[0], *rest), kwargs
    if name == "roll":
        dims = rest[1] if len(rest) > 1 else kwargs.get("dims")
        dims = dims if isinstance(dims, list | tuple) else (dims,)
        moved = [None if v is None else _axis(v, rank) for v in dims]
        if None in moved:
            return "a roll along the batch axis of a value folded into it"
        return (args[0], rest[0] if rest else kwargs["shifts"], tuple(moved)), {}
    if name in ("transpose", "swapaxes"):
        a, b = (_axis(v, rank) for v in rest[:2])
        if a is None or b is None:
            return "a transpose of the batch axis of a value folded into it"
        return (args[0], a, b, *rest[2:]), kwargs
    if name == "permute":
        perm = rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest
        perm = [int(p) % rank for p in perm]
        if not perm:
            return "a permute of no axes"
        # torch's axis 0 is the batch and the folded axis: both move together (the q, k, v
        # split of a ViT block moves them, and unbind(0) puts them back: fximport_moved)
        logical = [a for p in perm for a in ((0, 1) if p == 0 else (p + 1,))]
        return (args[0], *logical), kwargs
    if name in ("chunk", "split"):
        d = rest[1] if len(rest) > 1 else kwargs.get("dim", 0)
        a = _axis(d, rank)
        if a is None:
            return f"{name} along the batch axis of a value folded into it"
        return (args[0], rest[0], a), {k: v for k, v in kwargs.items() if k != "dim"}
    if t is operator.getitem or name == "__getitem__":
        idx = rest[0] if isinstance(rest[0], tuple) else (rest[0],)
        if idx and idx[0] is Ellipsis:
            return args, kwargs
        if not idx or not isinstance(idx[0], slice) or idx[0] != slice(None):
            return "indexing the batch axis of a value folded into it"
        return (args[0], (slice(None), *idx)), kwargs
    if name == "expand":
        sizes = rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest
        if len(sizes) != rank:
            return "an expand that adds axes to a value folded into the batch"
        return (args[0], -1, -1, *sizes[1:]), kwargs
    return f"{name or t} on a value folded into the batch axis"


def may_fold(node: Any) -> bool:
    """Whether :func:`call` can take ``node`` while no value is folded: only a reshape (that
    folds) or an ``unbind`` (of a tensor, not a module) can."""
    t = node.target
    if node.op == "call_method":
        return t in RESHAPES or t == "unbind"
    return node.op == "call_function" and (t in _RESHAPE_FUNCS or _name(t) == "unbind")


def call(imp: Any, node: Any, args: tuple, kwargs: dict, ids: set[int],
         inner: Callable[[Any, tuple, dict], None], unsupported: Callable[..., None]) -> bool:
    """Import ``node`` when it folds, unfolds or reads a folded value; False otherwise."""
    if _reshape(imp, node, args, kwargs, ids):
        return True
    t = node.target
    if isinstance(args[0] if args else None, Moved) and args[0].base.fold:
        inner(node, args, kwargs)  # q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        imp.vals[node] = _refold(imp.vals.get(node), args[0].base.shape[0])
        return True
    if _name(t) == "unbind" and node.op != "call_module" and isinstance(args[0], T) and \
            not args[0].fold:
        d = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        return int(d) % len(args[0].shape) != 0 and _unbind(imp, node, args[0], (
            (args[0], int(d) % len(args[0].shape)), {}))
    if not _any_folded((args, kwargs)):
        return False
    if t is operator.getitem and not isinstance(args[0], T):
        return False  # a part of a multi-output call (unbind, chunk): already folded
    x = next(v for v in [*args, *kwargs.values(), *(
        w for a in args if isinstance(a, list | tuple) for w in a)] if is_folded(v))
    if node.op == "call_function" and t is getattr or node.op == "call_method" and t in (
            "size", "dim", "numel"):
        return False  # a query: T.meta() has the real shape
    if node.op == "call_module":
        mod = imp.gm.get_submodule(t)
        ids.update(id(p) for p in mod.parameters())  # the same set the walk's rows count
        last = isinstance(mod, _LAST_AXIS) or isinstance(mod, nn.Softmax | nn.LogSoftmax) and \
            mod.dim is not None and mod.dim < 0  # Swin's nn.Softmax(dim=-1)
        why: tuple | str = (args, kwargs) if last else \
            f"{type(mod).__name__} on a value folded into the batch axis"
    elif t in ops.CAT or t in ops.STACK:
        seq = args[0]
        d = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        a = _axis(d, len(x.shape) - 1) if all(is_folded(v) for v in seq) else None
        why = f"{_name(t)} along the batch axis of values folded into it" if a is None \
            else ((seq, a), {k: v for k, v in kwargs.items() if k != "dim"})
    else:
        why = _translate(node, args, kwargs, x)
    if isinstance(why, str):
        return _unsupported(imp, node, args, kwargs, why, unsupported, x.shape[0])
    if _name(t) == "unbind" and node.op != "call_module":
        return _unbind(imp, node, x, why)
    before = len(imp.graph.nodes)
    inner(node, *why)
    added = imp.graph.nodes[before:]
    bad = next((n.op for n in added if isinstance(n.op, ir.Unsupported)), None)
    if bad is not None:  # its shape came from the moved arguments: again, on torch's own
        del imp.graph.nodes[before:]
        gone = {n.name for n in added}
        imp.first_use = {i: n for i, n in imp.first_use.items() if n not in gone}
        return _unsupported(imp, node, args, kwargs, f"{bad.reason} (on a value folded into "
                            "the batch)", unsupported, x.shape[0])
    imp.vals[node] = _refold(imp.vals.get(node), x.shape[0])
    return True


def _unsupported(imp: Any, node: Any, args: tuple, kwargs: dict, why: str,
                 unsupported: Callable[..., None], batch: int) -> bool:
    """An unsupported row whose output stays folded when torch's first axis is ``batch * k``
    (its shape per sample ``(k, ...)``), so that the windows can still be put back."""
    unsupported(node, args, kwargs, why)
    v = imp.vals.get(node)
    if isinstance(v, T) and len(v.shape) > 1 and v.shape[0] != batch and \
            v.shape[0] % batch == 0:
        logical = (batch, v.shape[0] // batch, *v.shape[1:])
        for i, n in enumerate(imp.graph.nodes):
            if n.name == v.name and isinstance(n.op, ir.Unsupported):
                imp.graph.nodes[i] = dataclasses.replace(
                    n, op=dataclasses.replace(n.op, shape=logical[1:]))
        imp.vals[node] = T(v.name, logical, v.dtype, logical[1])
    return True


def _unbind(imp: Any, node: Any, x: T, moved: tuple) -> bool:
    """``unbind`` along an axis other than the folded one: a slice and a reshape per part."""
    a = moved[0][1] if len(moved[0]) > 1 else moved[1].get("dim", 0)
    a %= len(x.shape)
    shape = x.shape[:a] + x.shape[a + 1:]
    parts = []
    for i in range(x.shape[a]):
        s = imp.add(ir.Slice(a - 1, i, i + 1), [x], f"{node.name}[{i}].0", node.name, set(),
                    ())
        cut = T(s, (*x.shape[:a], 1, *x.shape[a + 1:]), x.dtype, x.fold)
        r = imp.add(ir.Reshape(tuple(shape[1:])), [cut], f"{node.name}[{i}]", node.name,
                    set(), ())
        parts.append(T(r, shape, x.dtype, x.fold))
    imp.vals[node] = tuple(parts)
    return True


def _refold(v: Any, batch: int) -> Any:
    """The outputs of a call on folded values, folded (the axis stays second); an
    unsupported row's output keeps torch's shape (its first axis is not the batch)."""
    if isinstance(v, T) and len(v.shape) > 1 and v.fold == 0 and v.shape[0] == batch:
        return T(v.name, v.shape, v.dtype, v.shape[1])
    if isinstance(v, list | tuple):
        return type(v)(_refold(w, batch) for w in v)
    return v


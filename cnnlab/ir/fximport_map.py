"""One fx call -> one IR op (or several: chunk/split), for :mod:`cnnlab.ir.fximport`.

:func:`map_call` sees the node's arguments with traced tensors as :class:`T` (their torch
shapes, batch first) and every other value concrete; it returns ``(op, inputs, reason)``:
the IR op and the tensors it reads, or ``None`` and a one-line reason. ``imp`` is the
importer (its ``add`` appends the parts of a chunk/split, ``numel`` sizes parameters).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import fximport_tensor as tensor_ops
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_more import attention_module, more_call
from cnnlab.ir.fximport_more import binary as _binary
from cnnlab.ir.fximport_ops import T
from cnnlab.ir.fximport_tensor import arg

Mapped = tuple[ir.Op | None, list[T], str] | list[T]
_INTERP = (F.interpolate, F.upsample)
# the functions only _functional maps (tests/test_fximport_fast.py: none is in a table
# map_call or more_call looks at before)
_FUNCTIONAL = frozenset((*ops.POOL_FUNCS, *ops.ADAPTIVE_FUNCS, *_INTERP, F.pad,
                         *ops.DROPOUT_FUNCS, F.layer_norm, F.group_norm, F.rms_norm))


def _name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _parts(imp: Any, node: fx.Node, x: T, how: Any, dim: Any, chunks: bool) -> Mapped:
    axis = int(dim) % len(x.shape)
    if axis == 0:
        return None, [x], "splitting along the batch axis"
    out, start = [], 0
    for k, size in enumerate(tensor_ops.split_sizes(x.shape[axis], how, chunks)):
        op = ir.Slice(axis - 1, start, start + size)
        name = imp.add(op, [x], f"{node.name}[{k}]", node.name, set(), ())
        out.append(T(name, (*x.shape[:axis], size, *x.shape[axis + 1:]), x.dtype))
        start += size
    return out


def map_call(imp: Any, node: fx.Node, args: tuple, kwargs: dict, tensors: list[T],
             ids: set[int]) -> Mapped:
    t = node.target
    method = node.op == "call_method"
    x = args[0] if args and isinstance(args[0], T) else tensors[0]
    if node.op == "call_module":  # more_call's only module: nn.MultiheadAttention
        mod = imp.gm.get_submodule(t)
        if isinstance(mod, nn.MultiheadAttention):
            return attention_module(mod, args, kwargs)
        if not isinstance(args[0], T) or len(tensors) > 1:
            return None, tensors, f"{type(mod).__name__} called with several tensors"
        op, reason = ops.module_op(mod, x.shape, kwargs, t)
        return op, [x], reason
    name = _name(node)
    # activations, prelu and binary ops first, the most common calls: more_call maps none
    # of them (tests/test_fximport_fast.py)
    if (not method and t in ops.ACT_FUNCS) or (method and t in ops.ACT_METHODS):
        if len(tensors) != 1 or not isinstance(args[0], T):
            return None, tensors, f"{name} of several tensors"
        return ir.Act(ops.ACT_FUNCS[t] if not method else ops.ACT_METHODS[t]), [x], ""
    if not method and t is F.prelu and isinstance(args[1], torch.Tensor):
        return ir.PReLU(args[1].numel()), [x], ""
    fn = ops.BINARY_METHODS.get(t) if method else ops.BINARY_FUNCS.get(t)
    if fn is not None:
        return _binary(fn, args, kwargs, sum(imp.numel[i] for i in ids))
    if not method and t in _FUNCTIONAL:  # straight to them: no test below takes them
        return _functional(t, args, kwargs, x, name)
    more = more_call(imp, node, args, kwargs, x, name, ids)
    if more is not None:
        return more
    rest = args[1:]
    if not method and (t in ops.CAT or t in ops.STACK):
        seq = arg(args, kwargs, 0, "tensors")
        if not all(isinstance(v, T) for v in seq):
            return None, tensors, f"{name} of a constant tensor"
        ndim = len(seq[0].shape) + (t in ops.STACK)
        dim = int(arg(args, kwargs, 1, "dim", kwargs.get("axis", 0))) % ndim
        if dim == 0:
            return None, list(seq), f"{name} along the batch axis"
        return (ir.Stack(dim - 1) if t in ops.STACK else ir.Concat(dim - 1)), list(seq), ""
    if (method and t in ("chunk", "split", "tensor_split")) or \
            (not method and t in (torch.chunk, torch.split)):
        how = arg(rest, kwargs, 0, "chunks" if name == "chunk" else "split_size_or_sections")
        if name == "tensor_split":
            return None, [x], "tensor_split"
        return _parts(imp, node, x, how, arg(rest, kwargs, 1, "dim", 0), name == "chunk")
    if (method and t in ops.SOFTMAX) or (not method and t in ops.SOFTMAX):
        op, reason = tensor_ops.softmax_op(x.shape, arg(rest, kwargs, 0, "dim"), "log" in name)
        return op, [x], reason
    if (method and t in ops.RESHAPE_METHODS) or (not method and t in ops.RESHAPE_FUNCS):
        if name in ("view_as", "reshape_as"):
            other = args[1]
            out = tuple(other.shape) if isinstance(other, T | torch.Tensor) else None
        else:
            out = tensor_ops.method_shape(name, x.shape, rest, kwargs)
        op, reason = tensor_ops.reshape_op(x.shape, out)
        return op, [x], reason
    if (method and t in ops.PERMUTE) or (not method and t in ops.PERMUTE):
        op, reason = tensor_ops.permute_op(tensor_ops.permutation(name, len(x.shape), rest, kwargs))
        return op, [x], reason
    if t in ops.REDUCE and (method or not isinstance(t, str)):
        op, reason = tensor_ops.reduce_op(ops.REDUCE[t], x.shape, arg(rest, kwargs, 0, "dim"),
                                   arg(rest, kwargs, 1, "keepdim", False))
        return op, [x], reason
    if t in ops.VAR and (method or not isinstance(t, str)):
        op, reason = tensor_ops.var_op(ops.VAR[t], x.shape, rest, kwargs)
        return op, [x], reason
    if method and t in ("expand", "expand_as"):
        target = tuple(args[1].shape) if t == "expand_as" else tuple(
            rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest)
        shape = tuple(n if int(v) == -1 else int(v) for v, n in zip(
            target, (1,) * (len(target) - len(x.shape)) + x.shape, strict=True))
        if shape[0] != x.shape[0]:
            return None, [x], "an expand of the batch axis"
        return ir.Expand(shape[1:]), [x], ""
    if method and t == "__getitem__" or t is operator.getitem:
        op, reason = tensor_ops.index_op(x.shape, args[1])
        return op, [x], reason
    if not method:
        return _functional(t, args, kwargs, x, name)
    return None, tensors, f"no IR op for Tensor.{name}"


def _functional(t: Any, args: tuple, kwargs: dict, x: T, name: str) -> Mapped:
    dims = len(x.shape) - 2
    if t in ops.POOL_FUNCS:
        kind = ops.POOL_FUNCS[t]
        a = {k: arg(args, kwargs, i, k) for i, k in enumerate(ops.POOL_ARGS[kind])}
        if a.get("return_indices"):
            return None, [x], f"{name} with return_indices"
        op, reason = ops.window_pool(kind, a["kernel_size"], a["stride"], a["padding"] or 0,
                                     dims, bool(a["ceil_mode"]), a.get("dilation") or 1,
                                     a.get("count_include_pad") is not False,
                                     a.get("divisor_override"))
        return op, [x], reason
    if t in ops.ADAPTIVE_FUNCS:
        if arg(args, kwargs, 2, "return_indices"):
            return None, [x], f"{name} with return_indices"
        op, reason = ops.adaptive(ops.ADAPTIVE_FUNCS[t], arg(args, kwargs, 1, "output_size"),
                                  x.shape)
        return op, [x], reason
    if t in _INTERP:
        if arg(args, kwargs, 6, "antialias"):
            return None, [x], "interpolation with antialias"
        op, reason = tensor_ops.upsample_op(x.shape, arg(args, kwargs, 1, "size"),
                                     arg(args, kwargs, 2, "scale_factor"),
                                     arg(args, kwargs, 3, "mode", "nearest"),
                                     arg(args, kwargs, 4, "align_corners"),
                                     arg(args, kwargs, 5, "recompute_scale_factor"))
        return op, [x], reason
    if t is F.pad:
        pad = arg(args, kwargs, 1, "pad")
        mode = arg(args, kwargs, 2, "mode", "constant")
        if len(pad) // 2 > len(x.shape) - 1:
            return None, [x], "padding of the batch axis"
        value = arg(args, kwargs, 3, "value") or 0.0
        return ir.Pad(ops.torch_pads(pad), mode, float(value)), [x], ""
    if t in ops.DROPOUT_FUNCS:
        return ir.Dropout(float(arg(args, kwargs, 1, "p", 0.5))), [x], ""
    if t is F.layer_norm:
        shape = tuple(arg(args, kwargs, 1, "normalized_shape"))
        w, b = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
        if tuple(x.shape[len(x.shape) - len(shape):]) != shape:
            return None, [x], f"layer norm over {shape} on an input of shape {x.shape}"
        return ir.Norm("layer", shape=shape, affine=w is not None, bias=b is not None), [x], ""
    if t is F.rms_norm:
        shape = tuple(arg(args, kwargs, 1, "normalized_shape"))
        w, eps = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "eps")
        if tuple(x.shape[len(x.shape) - len(shape):]) != shape:
            return None, [x], f"RMS norm over {shape} on an input of shape {x.shape}"
        return ir.Norm("rms", shape=shape, affine=w is not None, bias=False,
                       eps=None if eps is None else float(eps)), [x], ""
    if t is F.group_norm:
        w, b = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
        return ir.Norm("group", int(arg(args, kwargs, 1, "num_groups")),
                       affine=w is not None, bias=b is not None), [x], ""
    return None, [x], f"no IR op for {name}"


"""The calls real models add to the fx importer's table (:mod:`cnnlab.ir.fximport_map`).

Functional forms called with a module's own tensors (``F.batch_norm`` as timm's
BatchNormAct, ``F.linear``, ``F.conv2d`` with a computed weight = weight standardisation),
products of tensors (``matmul``, ``@``, ``bmm``, ``einsum``), attention
(``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``), ``F.normalize`` and
``norm``, ``addcmul``, ``cat`` with a constant part (a class token) and indexing with several
slices, steps, integers and ``None``. :func:`more_call` returns ``(op, inputs, reason)`` like
:func:`~cnnlab.ir.fximport_map.map_call`, or None when the call is none of these.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import fximport_tensor as tensor_ops
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_ops import T
from cnnlab.ir.fximport_tensor import arg
from cnnlab.ir.mix import einsum_per_sample, matmul_equation
from cnnlab.ir.shapes import node_shape

CONV_FUNCS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
MATMUL_FUNCS = (torch.matmul, torch.bmm, torch.mm)
MATMUL_METHODS = ("matmul", "bmm", "mm", "__matmul__")
NORM_FUNCS = (torch.norm, torch.linalg.vector_norm)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def binary(fn: str, args: tuple, kwargs: dict, params: int) -> Any:
    a = args[0]
    b = args[1] if len(args) > 1 else kwargs.get("other")
    alpha = args[2] if len(args) > 2 else kwargs.get("alpha", 1)
    if alpha not in (None, 1):
        return None, [t for t in (a, b) if isinstance(t, T)], f"{fn} with alpha={alpha}"
    reverse = fn in ("rsub", "rdiv")
    fn = {"rsub": "sub", "rdiv": "div"}.get(fn, fn)
    if reverse:
        a, b = b, a
    if isinstance(a, T) and isinstance(b, T):
        if fn == "add" and a.shape == b.shape:
            return ir.Add(), [a, b], ""
        return ir.Binary(fn), [a, b], ""
    x, c, rev = (a, b, False) if isinstance(a, T) else (b, a, True)
    num = _number(c)
    if num is not None and not rev and fn in ("mul", "div"):
        if fn == "div" and num == 0:
            return None, [x], "division by the constant 0"
        return ir.Scale(num if fn == "mul" else 1.0 / num), [x], ""
    if num is not None and rev and fn == "mul":
        return ir.Scale(num), [x], ""
    if num is not None:
        return ir.Binary(fn, (), rev), [x], ""
    if isinstance(c, torch.Tensor):
        shape = tuple(c.shape)
        if len(shape) > len(x.shape) or len(shape) == len(x.shape) and shape[0] not in (
                1, x.shape[0]):  # one per sample (zeros_like(x), a token expanded): kept
            return None, [x], f"a constant of shape {shape} that spans the batch axis"
        if len(shape) == len(x.shape):
            shape = shape[1:]
        return ir.Binary(fn, shape, rev, params), [x], ""
    return None, [x], f"{fn} with an operand of type {type(c).__name__}"


def _params(imp: Any, ids: set[int]) -> int:
    return sum(imp.numel[i] for i in ids)


def _own(imp: Any, v: Any) -> set[int]:
    return {id(v)} if isinstance(v, torch.Tensor) and id(v) in imp.numel else set()


def _product(imp: Any, eq: str, operands: list[Any], ids: set[int]) -> Any:
    tensor = [isinstance(v, T) for v in operands]
    if len(operands) != 2 or sum(tensor) == 0:
        return None, [v for v in operands if isinstance(v, T)], \
            f"a product of {len(operands)} operands"
    shapes = [tuple(v.shape) for v in operands]
    # a constant expanded over the batch (stride 0: timm LambdaLayer's
    # pos_emb[idx].expand(B, -1, -1, -1)) is one constant for every sample
    shared = [not t and v.dim() > 0 and v.stride(0) == 0 for v, t in zip(operands, tensor,
                                                                         strict=True)]
    per = einsum_per_sample(eq, shapes, tensor, shared)
    ins = [v for v in operands if isinstance(v, T)]
    if isinstance(per, str):
        return None, ins, per
    equation, consts = per
    if consts:
        return ir.MatMul(equation, consts[0], tensor.index(False), _params(imp, ids)), ins, ""
    return ir.MatMul(equation), ins, ""


def attention_module(m: nn.MultiheadAttention, args: tuple, kwargs: dict) -> Any:
    q = args[0]
    k = arg(args, kwargs, 1, "key")
    v = arg(args, kwargs, 2, "value")
    ins = [t for t in (q, k, v) if isinstance(t, T)]
    if not all(isinstance(t, T) for t in (q, k, v)):
        return None, ins, "attention on a constant query, key or value"
    if not m.batch_first:
        return None, ins, "multi-head attention with batch_first=False (batch on axis 1)"
    if arg(args, kwargs, 3, "key_padding_mask") is not None or \
            isinstance(arg(args, kwargs, 5, "attn_mask"), T) or m.add_zero_attn:
        return None, ins, "multi-head attention with a mask from the input or add_zero_attn"
    return ir.Attention(m.num_heads, m.embed_dim, m.kdim, m.vdim, m.in_proj_bias is not None,
                        m.bias_k is not None), [q, k, v], ""


def _cat(imp: Any, seq: list[Any], dim: Any, ids: set[int]) -> Any:
    ins = [v for v in seq if isinstance(v, T)]
    x = ins[0]
    batch = x.shape[0]
    ax = int(dim) % len(x.shape)
    consts = []
    for pos, v in enumerate(seq):
        if isinstance(v, T):
            continue
        if not isinstance(v, torch.Tensor) or len(v.shape) != len(x.shape) or \
                v.shape[0] not in (1, batch):
            return None, ins, "a cat of a constant that is not one per sample"
        consts.append((pos, tuple(v.shape[1:])))
    if ax == 0:
        return None, ins, "cat along the batch axis"
    return ir.Concat(ax - 1, tuple(consts), _params(imp, ids)), ins, ""


def _addcmul(imp: Any, node: Any, args: tuple, kwargs: dict, ids: set[int]) -> Any:
    """``a + value * b * c``: a multiply node, a scale, then the add (the call's row)."""
    a, b, c = args[0], arg(args, kwargs, 1, "tensor1"), arg(args, kwargs, 2, "tensor2")
    value = kwargs.get("value", 1)
    own = (_own(imp, b) | _own(imp, c)) & ids
    op, ins, reason = binary("mul", (b, c), {}, _params(imp, own))
    if op is None or not ins:
        return None, [v for v in (a, b, c) if isinstance(v, T)], reason or "addcmul"
    cur = _step(imp, node, op, ins, own, "mul")
    if value != 1:
        cur = _step(imp, node, ir.Scale(float(value)), [cur], set(), "scale")
    ids.difference_update(own)
    return binary("add", (a, cur), {}, _params(imp, ids))


def _step(imp: Any, node: Any, op: ir.Op, ins: list[T], ids: set[int], what: str) -> T:
    shape = node_shape(ir.Node("?", op, tuple(t.name for t in ins)),
                       [t.shape[1:] for t in ins])
    name = imp.add(op, ins, f"{node.name}.{what}", node.name, ids, shape)
    return T(name, (ins[0].shape[0], *shape), ins[0].dtype)


def index_chain(x: tuple[int, ...], idx: Any) -> tuple[list[ir.Op], str]:
    """``x[idx]`` (torch shape ``x``, batch first) as slices then one reshape."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(v is Ellipsis for v in idx):
        e = next(i for i, v in enumerate(idx) if v is Ellipsis)
        n = sum(1 for v in idx if v is not None and v is not Ellipsis)
        idx = idx[:e] + (slice(None),) * (len(x) - n) + idx[e + 1:]
    idx = idx + (slice(None),) * (len(x) - sum(1 for v in idx if v is not None))
    if idx[0] != slice(None):
        return [], "indexing of the batch axis"
    chain: list[ir.Op] = []
    out: list[int] = []
    axis = 0
    for v in idx:
        if v is None:
            out.append(1)
            continue
        n = x[axis]
        if isinstance(v, int) and not isinstance(v, bool):
            i = v % n if -n <= v < n else None
            if i is None:
                return [], f"index {v} outside an axis of length {n}"
            chain.append(ir.Slice(axis - 1, i, i + 1))
        elif isinstance(v, slice):
            start, stop, step = v.indices(n)
            size = len(range(start, stop, step))
            if size <= 0 or step < 1:
                return [], "an empty or reversed slice"
            if (start, stop, step) != (0, n, 1):
                chain.append(ir.Slice(axis - 1, start, start + (size - 1) * step + 1, step))
            out.append(size)
        else:
            return [], "indexing by a tensor or a list (advanced indexing)"
        axis += 1
    sliced = list(x)
    for op in chain:
        sliced[op.axis + 1] = len(range(op.start, op.stop, op.step))
    if tuple(out) != tuple(sliced):
        chain.append(ir.Reshape(tuple(out[1:])))
    if not chain:
        chain.append(ir.Slice(0, 0, x[1]))
    return chain, ""


def _index(imp: Any, node: Any, x: T, idx: Any) -> Any:
    chain, reason = index_chain(x.shape, idx)
    if not chain:
        return None, [x], reason
    cur = x
    for k, op in enumerate(chain[:-1]):
        cur = _step(imp, node, op, [cur], set(), str(k))
    return chain[-1], [cur], ""


def more_call(imp: Any, node: Any, args: tuple, kwargs: dict, x: T, name: str,
              ids: set[int]) -> Any:
    """The op of one of the calls above, or None when the call is none of them."""
    t, method = node.target, node.op == "call_method"
    if node.op == "call_module":
        mod = imp.gm.get_submodule(t)
        return attention_module(mod, args, kwargs) if isinstance(
            mod, nn.MultiheadAttention) else None
    if not method and (t in CONV_FUNCS or t is F.linear):  # none of the calls below
        found = _functional(t, args, kwargs, x)
        if isinstance(found[0], ir.Conv | ir.Linear):
            return _conv_params(imp, found[0], args, kwargs, ids), found[1], found[2]
        return found
    if (method and t == "__getitem__" or t is operator.getitem) and isinstance(args[0], T):
        return _index(imp, node, args[0], args[1])
    if method and t == "norm":
        return norm_op(x, args[1:], kwargs)
    if (method and t in MATMUL_METHODS) or (not method and t in MATMUL_FUNCS):
        a, b = args[0], args[1]
        ra, rb = len(a.shape), len(b.shape)
        return _product(imp, matmul_equation(ra, rb), [a, b], ids)
    if not method and t is torch.einsum:
        eq = args[0]
        operands = list(args[1]) if len(args) == 2 and isinstance(args[1], list | tuple) \
            else list(args[1:])
        return _product(imp, eq, operands, ids)
    if not method and t is F.scaled_dot_product_attention:
        q, k, v = args[:3]
        if not all(isinstance(z, T) for z in (q, k, v)) or \
                isinstance(arg(args, kwargs, 3, "attn_mask"), T):
            return None, [z for z in (q, k, v) if isinstance(z, T)], \
                "attention with a constant query/key/value or a mask from the input"
        # a constant mask made from parameters (a relative-position bias table) is learned
        return ir.Attention(params=_params(imp, ids)), [q, k, v], ""
    if method and t == "roll" or not method and t is torch.roll:
        return roll_op(x, arg(args, kwargs, 1, "shifts"), arg(args, kwargs, 2, "dims"))
    if method and t == "addcmul" or not method and t is torch.addcmul:
        return _addcmul(imp, node, args, kwargs, ids)
    if not method and t in ops.CAT and any(not isinstance(v, T) for v in args[0]):
        return _cat(imp, list(arg(args, kwargs, 0, "tensors")),
                    arg(args, kwargs, 1, "dim", kwargs.get("axis", 0)), ids)
    if method:
        return None
    return _functional(t, args, kwargs, x)


def _conv_params(imp: Any, op: Any, args: tuple, kwargs: dict, ids: set[int]) -> Any:
    """``op`` (a conv or linear) with the values of the parameters its weight and bias come
    from, when they are not the weight/bias rule's: a fixed filter held in a buffer (timm's
    BlurPool) has none; a weight standardised with a gain (NFNet's ScaledStdConv2d) has the
    gain too; BEiT's bias ``cat(q_bias, zeros, v_bias)`` only its q and v parts."""
    w, b = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    rule = w.numel() + (b.numel() if isinstance(b, torch.Tensor) else 0)
    learned = _params(imp, ids)
    return op if learned == rule else dataclasses.replace(op, params=learned)


def _functional(t: Any, args: tuple, kwargs: dict, x: T) -> Any:
    if t is F.batch_norm:
        w, b = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
        if arg(args, kwargs, 5, "training", False) or arg(args, kwargs, 1, "running_mean") \
                is None:
            return None, [x], "batch norm with batch statistics (training=True)"
        if w is None or b is None:
            return None, [x], "batch norm without affine (the IR counts gamma and beta)"
        return ir.BatchNorm(float(arg(args, kwargs, 7, "eps", 1e-5))), [x], ""
    if t is F.linear:
        w, b = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if not isinstance(w, torch.Tensor) or isinstance(b, T) or w.dim() != 2 or \
                w.shape[1] != x.shape[-1]:
            return None, [x], "linear with a weight computed from the input"
        return ir.Linear(int(w.shape[0]), b is not None, last=len(x.shape) != 2), [x], ""
    if t in CONV_FUNCS:
        dims = CONV_FUNCS[t]
        w, b = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        groups = int(arg(args, kwargs, 6, "groups", 1))
        if not isinstance(w, torch.Tensor) or isinstance(b, T) or \
                w.shape[1] * groups != x.shape[1]:
            return None, [x], "convolution with a weight computed from the input"
        return ir.Conv(int(w.shape[0]), tuple(w.shape[2:]),
                       ops.tup(arg(args, kwargs, 3, "stride", 1), dims),
                       ops.pads_of(arg(args, kwargs, 4, "padding", 0), dims),
                       ops.tup(arg(args, kwargs, 5, "dilation", 1), dims), groups,
                       b is not None), [x], ""
    if t is F.normalize:
        dim = int(arg(args, kwargs, 2, "dim", 1)) % len(x.shape)
        if dim == 0:
            return None, [x], "normalize over the batch axis"
        return ir.Normalize(float(arg(args, kwargs, 1, "p", 2.0)), dim - 1), [x], ""
    if t in NORM_FUNCS:
        return norm_op(x, args[1:], kwargs)
    return None


def roll_op(x: T, shifts: Any, dims: Any) -> Any:
    """``torch.roll(x, shifts, dims)`` along axes other than the batch (Swin's shifts)."""
    if dims is None:
        return None, [x], "a roll of the flattened tensor"
    dims = tuple(dims) if isinstance(dims, list | tuple) else (dims,)
    shifts = tuple(shifts) if isinstance(shifts, list | tuple) else (shifts,) * len(dims)
    axes = tuple(int(d) % len(x.shape) for d in dims)
    if 0 in axes or len(shifts) != len(axes):
        return None, [x], "a roll along the batch axis"
    return ir.Roll(tuple(int(k) for k in shifts), tuple(a - 1 for a in axes)), [x], ""


def norm_op(x: T, rest: tuple, kwargs: dict) -> Any:
    """``x.norm(p, dim, keepdim)`` / ``torch.norm`` / ``vector_norm`` (2-norm, given axes)."""
    p = arg(rest, kwargs, 0, "p", kwargs.get("ord", 2))
    dim = arg(rest, kwargs, 1, "dim")
    if p not in (2, 2.0, "fro", None) or dim is None:
        return None, [x], f"a norm with p={p} over {'every axis' if dim is None else dim}"
    op, reason = tensor_ops.reduce_op("norm", x.shape, dim, bool(arg(rest, kwargs, 2, "keepdim",
                                                              False)))
    return op, [x], reason


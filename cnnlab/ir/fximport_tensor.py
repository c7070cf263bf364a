"""Tensor methods and functions -> IR ops, for the fx importer: softmax, interpolation,
view/reshape/flatten, permutes and transposes, chunk/split sizes, reductions (``mean``,
``sum``, ``amax``, ``var``/``std``...) and indexing. Each takes torch shapes (batch first) and
returns ``(op, reason)`` like :func:`cnnlab.ir.fximport_ops.module_op`, the op None with the
reason when the IR has no op for the call. Leaf modules are in :mod:`.fximport_ops`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from cnnlab.ir import graph as ir

Result = tuple[ir.Op | None, str]


def tup(v: Any, dims: int) -> tuple[int, ...]:
    return tuple(map(int, v)) if isinstance(v, list | tuple) else (int(v),) * dims


def arg(args: tuple, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[i] if len(args) > i else default


def softmax_op(x: tuple[int, ...], dim: Any, log: bool = False) -> Result:
    if not isinstance(dim, int) or dim % len(x) == 0:
        return None, f"softmax over axis {dim} (the batch axis or an implicit one)"
    return ir.Softmax(dim % len(x) - 1, log), ""


def upsample_op(x: tuple[int, ...], size: Any, scale: Any, mode: str, align: Any,
                recompute: Any = None) -> Result:
    dims = len(x) - 2
    mode = {"bilinear": "linear", "trilinear": "linear", "area": "area"}.get(mode, mode)
    if mode not in ("nearest", "nearest-exact", "linear", "bicubic"):
        return None, f"interpolation mode {mode!r}"
    if size is not None:
        return ir.Upsample(mode, tup(size, dims), None, bool(align)), ""
    scales = tuple(float(v) for v in scale) if isinstance(scale, list | tuple) else \
        (float(scale),) * dims
    if recompute:
        out = tuple(int(math.floor(n * f)) for n, f in zip(x[2:], scales, strict=True))
        return ir.Upsample(mode, out, None, bool(align)), ""
    return ir.Upsample(mode, None, scales, bool(align)), ""


def flat_shape(x: tuple[int, ...], start: int = 0, end: int = -1) -> tuple[int, ...]:
    s, e = start % len(x), end % len(x)
    return (*x[:s], math.prod(x[s:e + 1]), *x[e + 1:])


def view_shape(x: tuple[int, ...], sizes: Any) -> tuple[int, ...] | None:
    """torch's target shape of ``view(*sizes)`` (one -1 inferred); None if it does not fit."""
    if len(sizes) == 1 and isinstance(sizes[0], list | tuple | torch.Size):
        sizes = sizes[0]
    sizes = [int(v) for v in sizes]
    total = math.prod(x)
    if sizes.count(-1) == 1:
        rest = math.prod(v for v in sizes if v != -1)
        if rest == 0 or total % rest:
            return None
        sizes[sizes.index(-1)] = total // rest
    return tuple(sizes) if math.prod(sizes) == total else None


def reshape_op(x: tuple[int, ...], out: tuple[int, ...] | None) -> Result:
    """A reshape from torch shape ``x`` to ``out`` (both batch first)."""
    if out is None or not out or out[0] != x[0]:
        return None, f"reshape of {x} to {out} mixes the batch axis"
    if len(out) == 2:
        return ir.Flatten(), ""  # (N, features): the classifier's flatten
    return ir.Reshape(tuple(out[1:])), ""


def method_shape(name: str, x: tuple[int, ...], args: tuple, kwargs: dict
                 ) -> tuple[int, ...] | None:
    """Output shape (batch first) of a reshaping method/function ``name`` on ``x``."""
    if name in ("view", "reshape"):
        return view_shape(x, args)
    if name == "flatten":
        return flat_shape(x, arg(args, kwargs, 0, "start_dim", 0),
                           arg(args, kwargs, 1, "end_dim", -1))
    if name == "unflatten":
        d = arg(args, kwargs, 0, "dim") % len(x)
        sizes = view_shape((x[d],), (arg(args, kwargs, 1, "sizes"),))
        return None if sizes is None else (*x[:d], *sizes, *x[d + 1:])
    if name == "squeeze":
        d = arg(args, kwargs, 0, "dim")
        if d is None:
            return tuple(v for v in x if v != 1)
        ds = {v % len(x) for v in (d if isinstance(d, list | tuple) else (d,))}
        return tuple(v for i, v in enumerate(x) if not (i in ds and v == 1))
    if name == "unsqueeze":
        d = arg(args, kwargs, 0, "dim") % (len(x) + 1)
        return (*x[:d], 1, *x[d:])
    if name in ("view_as", "reshape_as"):
        return None
    return None


def permutation(name: str, ndim: int, args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """The axis order (batch included) of permute/transpose/movedim/t."""
    if name == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else \
            arg(args, kwargs, 0, "dims") if not args else args
        return tuple(int(d) % ndim for d in dims)
    if name in ("transpose", "swapaxes"):
        a = int(arg(args, kwargs, 0, "dim0")) % ndim
        b = int(arg(args, kwargs, 1, "dim1")) % ndim
        p = list(range(ndim))
        p[a], p[b] = p[b], p[a]
        return tuple(p)
    if name == "t":
        return (1, 0) if ndim == 2 else tuple(range(ndim))
    if name == "movedim":
        src, dst = arg(args, kwargs, 0, "source"), arg(args, kwargs, 1, "destination")
        src = [int(s) % ndim for s in (src if isinstance(src, list | tuple) else [src])]
        dst = [int(d) % ndim for d in (dst if isinstance(dst, list | tuple) else [dst])]
        rest = [i for i in range(ndim) if i not in src]
        order: list[int | None] = [None] * ndim
        for s, d in zip(src, dst, strict=True):
            order[d] = s
        it = iter(rest)
        return tuple(o if o is not None else next(it) for o in order)
    return None


def permute_op(perm: tuple[int, ...] | None) -> Result:
    if perm is None or perm[0] != 0:
        return None, "a permutation that moves the batch axis"
    return ir.Permute(tuple(p - 1 for p in perm[1:])), ""


def split_sizes(n: int, how: Any, chunks: bool) -> list[int]:
    """Part sizes of ``chunk(how)`` / ``split(how)`` of an axis of length ``n``."""
    if chunks:
        size = -(-n // int(how))
        return [min(size, n - i) for i in range(0, n, size)]
    if isinstance(how, int):
        return [min(how, n - i) for i in range(0, n, how)]
    return [int(v) for v in how]


def reduce_op(fn: str, x: tuple[int, ...], dim: Any, keepdim: bool) -> Result:
    if dim is None:
        return None, f"{fn} over every axis, the batch included"
    dims = {int(d) % len(x) for d in (dim if isinstance(dim, list | tuple) else (dim,))}
    if 0 in dims:
        return None, f"{fn} over the batch axis"
    if fn in ("mean", "amax") and dims == set(range(2, len(x))) and len(x) > 2:
        return ir.GlobalPool("avg" if fn == "mean" else "max", keepdim=bool(keepdim)), ""
    return ir.Reduce(fn, tuple(sorted(d - 1 for d in dims)), bool(keepdim)), ""


def var_op(fn: str, x: tuple[int, ...], rest: tuple, kwargs: dict) -> Result:
    """``x.var(dim, unbiased, keepdim, *, correction)`` (or ``std``) as a reduction that keeps
    the correction (EvoNorm's ``x.var(dim=(2, 3, 4), unbiased=False, keepdim=True)``)."""
    correction = kwargs.get("correction")
    if correction is None:
        correction = 1 if arg(rest, kwargs, 1, "unbiased", True) else 0
    if isinstance(correction, bool) or not isinstance(correction, int | float) or \
            correction != int(correction):
        return None, f"{fn} with correction={correction!r}"
    op, reason = reduce_op(fn, x, arg(rest, kwargs, 0, "dim"), arg(rest, kwargs, 2, "keepdim",
                                                                    False))
    return (dataclasses.replace(op, correction=int(correction)) if op is not None else None,
            reason)


def index_op(x: tuple[int, ...], idx: Any) -> Result:
    """``x[idx]`` as a slice of one axis (step 1), batch axis untouched."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        idx = idx[:e] + (slice(None),) * (len(x) - len(idx) + 1) + idx[e + 1:]
    if not idx or not all(isinstance(v, slice) for v in idx) or idx[0] != slice(None):
        return None, "tensor indexing other than a slice of one axis"
    cuts = [(ax, v) for ax, v in enumerate(idx) if v != slice(None)]
    if len(cuts) > 1:
        return None, "slicing more than one axis at once"
    if not cuts:
        return ir.Slice(0, 0, x[1]), ""
    ax, v = cuts[0]
    start, stop, step = v.indices(x[ax])
    if step != 1 or stop <= start:
        return None, "a strided or empty slice"
    return ir.Slice(ax - 1, start, stop), ""

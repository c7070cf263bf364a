"""Output tensors of common calls without their meta kernels, for :mod:`cnnlab.ir.capture`.

A meta kernel is a Python function (shape checks, strides, type promotion) that costs a
fraction of a millisecond per call; a capture only needs the output's shape and dtype. For the
calls below -- element-wise functions, normalisations, convolutions, linear layers and
broadcasting arithmetic -- :func:`shortcut` builds the empty meta output directly (in-place
methods return their input). Anything else, and any call whose arguments are not plain meta
tensors, runs its meta kernel as usual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from cnnlab.ir.fximport_ops import ACT_FUNCS

_SAME = {*ACT_FUNCS, F.batch_norm, F.layer_norm, F.group_norm, F.dropout, F.dropout2d,
         torch.batch_norm, torch.layer_norm, torch.group_norm, F.instance_norm}
_SAME_METHODS = {"relu", "sigmoid", "tanh"}
_INPLACE = {"add_", "mul_", "sub_", "div_", "relu_", "sigmoid_", "clamp_"}
_BINARY = {"add", "mul", "sub", "div", "__add__", "__mul__", "__sub__", "__truediv__",
           "__radd__", "__rmul__"}
_BINARY_FUNCS = {torch.add, torch.mul, torch.sub, torch.div}
_CONV = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}


def _meta(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.device.type == "meta"


def _tup(v: Any, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, list | tuple) else (int(v),) * n


def _conv(x: torch.Tensor, w: torch.Tensor, args: tuple, kwargs: dict, n: int) -> Any:
    def get(i: int, k: str, d: Any) -> Any:
        return kwargs.get(k, args[i] if len(args) > i else d)

    s, p, d = _tup(get(3, "stride", 1), n), get(4, "padding", 0), _tup(get(5, "dilation", 1), n)
    if isinstance(p, str) or x.dim() != n + 2 or x.shape[1] != w.shape[1] * get(6, "groups", 1):
        return None
    p = _tup(p, n)
    out = [(size + 2 * pp - dd * (k - 1) - 1) // ss + 1 for size, k, ss, pp, dd in zip(
        x.shape[2:], w.shape[2:], s, p, d, strict=True)]
    if any(o <= 0 for o in out):
        return None
    return torch.empty((x.shape[0], w.shape[0], *out), dtype=x.dtype, device="meta")


def shortcut(func: Any, args: tuple, kwargs: dict) -> Any:
    """The output of ``func(*args, **kwargs)`` built without its kernel, or None."""
    if not args or not _meta(args[0]):
        return None
    x = args[0]
    name = getattr(func, "__name__", "")
    method = (getattr(func, "__qualname__", "") or "").startswith(("TensorBase.", "Tensor."))
    if method and name in _INPLACE and all(not isinstance(v, torch.Tensor) or _meta(v)
                                           and v.dim() <= x.dim() for v in args[1:]):
        return x if name.endswith("_") and _fits(x, args[1:]) else None
    if not method and func in _SAME or method and name in _SAME_METHODS:
        return torch.empty_like(x)
    if not method and func in _CONV and len(args) > 1 and _meta(args[1]):
        return _conv(x, args[1], args, kwargs, _CONV[func])
    if (method and name in _BINARY or not method and func in _BINARY_FUNCS) and \
            len(args) == 2 and not kwargs:
        b = args[1]
        if isinstance(b, int | float) and not isinstance(b, bool):
            return torch.empty_like(x) if x.is_floating_point() else None
        if _meta(b) and b.dtype == x.dtype:
            try:
                shape = torch.broadcast_shapes(x.shape, b.shape)
            except RuntimeError:
                return None
            return torch.empty(shape, dtype=x.dtype, device="meta")
    return None


def _fits(x: torch.Tensor, rest: tuple) -> bool:
    for v in rest:
        if isinstance(v, torch.Tensor):
            try:
                if torch.broadcast_shapes(x.shape, v.shape) != x.shape or v.dtype != x.dtype:
                    return False
            except RuntimeError:
                return False
    return True

"""Output tensors of common calls without their meta kernels, for :mod:`cnnlab.ir.capture`.

A meta kernel is a Python function (shape checks, strides, type promotion) that costs a
fraction of a millisecond per call; a capture only needs the output's shape and dtype. For the
calls below -- element-wise functions, normalisations, convolutions, adaptive pools, constant
padding, concatenation and broadcasting arithmetic -- :func:`shortcut` builds the empty meta
output directly (in-place methods return their input), with the shape and strides the meta
kernel gives (``tests/test_capture_fast.py`` checks them against it). Even
``torch.empty_like`` on a meta tensor is a Python decomposition (~60x
``torch.empty_strided``), so a contiguous input's copy is made with the latter. Anything else,
and any call whose arguments are not plain meta tensors, runs its meta kernel as usual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.ir.fximport_ops import ACT_FUNCS, ACT_MODULES, DROPOUT_MODULES

_SAME = {*ACT_FUNCS, F.batch_norm, F.layer_norm, F.rms_norm, F.group_norm, F.dropout,
         F.dropout2d,
         torch.batch_norm, torch.layer_norm, torch.group_norm, F.instance_norm}
_SAME_METHODS = {"relu", "sigmoid", "tanh"}
_INPLACE = {"add_", "mul_", "sub_", "div_", "relu_", "sigmoid_", "clamp_"}
_BINARY = {"add", "mul", "sub", "div", "__add__", "__mul__", "__sub__", "__truediv__",
           "__radd__", "__rmul__"}
_BINARY_FUNCS = {torch.add, torch.mul, torch.sub, torch.div}
_CONV = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_ADAPTIVE_AVG = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3,
                 torch.adaptive_avg_pool1d: 1, torch._C._nn.adaptive_avg_pool2d: 2,
                 torch._C._nn.adaptive_avg_pool3d: 3}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_PAD = {F.pad, torch._C._nn.pad}


def _meta(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.is_meta


def _like(x: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(x)``: for a dense ``x`` its strides are kept, as empty_like does."""
    if x.is_contiguous():
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    return torch.empty_like(x)


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def meta_copy(t: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(t, device="meta")`` of a parameter or buffer (a capture copies
    each per run). For a plain contiguous one already on meta (a model built there),
    ``empty_like`` is a Python decomposition (~20 us; ~1 us from the CPU): the same strides
    through ``torch.empty`` instead (~1.5 us), when they are the plain contiguous ones (the
    decomposition renews odd strides of size-1 dims)."""
    if t.is_meta and type(t) in _PLAIN and t.layout is torch.strided and \
            t.is_contiguous() and not t.is_quantized and t.numel():
        out = torch.empty(t.shape, dtype=t.dtype, device="meta")
        if out.stride() == t.stride():
            return out
    return torch.empty_like(t, device="meta")


def _adaptive(x: torch.Tensor, args: tuple, kwargs: dict, n: int) -> Any:
    size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
    if len(args) > 2 or set(kwargs) - {"output_size"} or size is None or \
            x.dim() not in (n + 1, n + 2) or not x.is_contiguous() or x.numel() == 0:
        return None
    sizes = (size,) * n if isinstance(size, int) else tuple(size)
    if len(sizes) != n or any(v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                                 or v <= 0) for v in sizes):
        return None
    out = [x.shape[-n + i] if v is None else v for i, v in enumerate(sizes)]
    return torch.empty((*x.shape[:-n], *out), dtype=x.dtype, device="meta")


def _pad(x: torch.Tensor, args: tuple, kwargs: dict) -> Any:
    """``F.pad`` with constant padding: each padded axis grows by its two amounts."""
    pad = kwargs.get("pad", args[1] if len(args) > 1 else None)
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    if len(args) > 4 or set(kwargs) - {"pad", "mode", "value"} or mode != "constant" or \
            not isinstance(pad, list | tuple) or len(pad) % 2 or len(pad) // 2 > x.dim() or \
            not all(type(v) is int for v in pad) or not any(pad) or not x.is_contiguous():
        return None
    out = list(x.shape)
    for i in range(len(pad) // 2):
        out[-(i + 1)] += pad[2 * i] + pad[2 * i + 1]
    if any(v <= 0 for v in out):
        return None
    return torch.empty(out, dtype=x.dtype, device="meta")


def _cat(args: tuple, kwargs: dict) -> Any:
    seq = kwargs.get("tensors", args[0] if args else None)
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    if len(args) > 2 or set(kwargs) - {"tensors", "dim"} or not isinstance(seq, list | tuple) \
            or not seq or not isinstance(dim, int) or isinstance(dim, bool):
        return None
    first = seq[0]
    if not all(_meta(t) and t.dtype == first.dtype and t.dim() == first.dim()
               and t.is_contiguous() and t.numel() for t in seq) or first.dim() == 0:
        return None
    if not -first.dim() <= dim < first.dim():
        return None
    dim %= first.dim()
    shape = list(first.shape)
    for t in seq[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape, strict=True))
               if i != dim):
            return None
        shape[dim] += t.shape[dim]
    return torch.empty(shape, dtype=first.dtype, device="meta")


def _tup(v: Any, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, list | tuple) else (int(v),) * n


def _conv(x: torch.Tensor, w: torch.Tensor, args: tuple, kwargs: dict, n: int) -> Any:
    def get(i: int, k: str, d: Any) -> Any:
        return kwargs.get(k, args[i] if len(args) > i else d)

    s, p, d = _tup(get(3, "stride", 1), n), get(4, "padding", 0), _tup(get(5, "dilation", 1), n)
    if isinstance(p, str) or x.dim() != n + 2 or x.shape[1] != w.shape[1] * get(6, "groups", 1):
        return None
    return _conv_out(x, w.shape[0], w.shape[2:], s, _tup(p, n), d)


def _conv_out(x: torch.Tensor, channels: int, kernel: Any, stride: Any, padding: Any,
              dilation: Any) -> Any:
    """The meta output of a zero-padded convolution of ``x``, None if its window does not fit."""
    out = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in zip(
        x.shape[2:], kernel, stride, padding, dilation, strict=True)]
    if any(o <= 0 for o in out):
        return None
    return torch.empty((x.shape[0], channels, *out), dtype=x.dtype, device="meta")


_INFO: dict[Any, tuple[str, bool]] = {}


def func_info(func: Any) -> tuple[str, bool]:
    """(``__name__``, whether it is a Tensor method) of a torch function, remembered per
    function (a capture asks for each of its ~1,000 calls)."""
    try:
        found = _INFO.get(func)
    except TypeError:  # unhashable
        found = None
    if found is None:
        found = (getattr(func, "__name__", ""),
                 (getattr(func, "__qualname__", "") or "").startswith(("TensorBase.", "Tensor.")))
        if len(_INFO) < 4096:
            try:
                _INFO[func] = found
            except TypeError:
                pass
    return found


def shortcut(func: Any, args: tuple, kwargs: dict) -> Any:
    """The output of ``func(*args, **kwargs)`` built without its kernel, or None."""
    if func in _CAT:
        return _cat(args, kwargs)
    if not args or not _meta(args[0]):
        return None
    x = args[0]
    name, method = func_info(func)
    if method and name in _INPLACE and all(not isinstance(v, torch.Tensor) or _meta(v)
                                           and v.dim() <= x.dim() for v in args[1:]):
        return x if name.endswith("_") and _fits(x, args[1:]) else None
    if not method and func in _SAME or method and name in _SAME_METHODS:
        return _like(x)
    if not method and func in _ADAPTIVE_AVG:
        return _adaptive(x, args, kwargs, _ADAPTIVE_AVG[func])
    if not method and func in _PAD:
        return _pad(x, args, kwargs)
    if not method and func in _CONV and len(args) > 1 and _meta(args[1]):
        return _conv(x, args[1], args, kwargs, _CONV[func])
    if (method and name in _BINARY or not method and func in _BINARY_FUNCS) and \
            len(args) == 2 and not kwargs:
        b = args[1]
        if isinstance(b, int | float) and not isinstance(b, bool):
            return _like(x) if x.is_floating_point() else None
        if _meta(b) and b.dtype == x.dtype:
            shape = _broadcast(x.shape, b.shape)
            return None if shape is None else torch.empty(shape, dtype=x.dtype, device="meta")
    return None


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """``torch.broadcast_shapes(a, b)`` (a Python decomposition, slow), None if they clash."""
    if a == b:
        return tuple(a)
    n = max(len(a), len(b))
    out = []
    for u, v in zip((1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b),
                    strict=True):
        if u == v or v == 1:
            out.append(u)
        elif u == 1:
            out.append(v)
        else:
            return None
    return tuple(out)


def _fits(x: torch.Tensor, rest: tuple) -> bool:
    for v in rest:
        if isinstance(v, torch.Tensor) and (v.dtype != x.dtype or
                                            _broadcast(x.shape, v.shape) != tuple(x.shape)):
            return False
    return True


# leaf modules whose output a capture builds without running them (module_shortcut): each
# one's functional form would cost a Python dispatch through the recorder (F.batch_norm,
# F.silu: torch's handle_torch_function) on top of Module.__call__ and forward
_ACT_LIKE = frozenset(t for t, name in ACT_MODULES.items()
                      if name not in ("identity", "rrelu", "threshold"))
_RETURN_INPUT = frozenset((nn.Identity, *DROPOUT_MODULES[:4]))  # in eval: the input itself
_CONV_MODULES = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
_BN_MODULES = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}
# each class's own forward: one patched later (a library wrapping nn.Conv2d.forward) runs
_FORWARDS = {t: t.forward for t in (*_ACT_LIKE, *_RETURN_INPUT, *_CONV_MODULES, *_BN_MODULES,
                                    nn.Linear)}


def module_shortcut(m: nn.Module, x: Any) -> Any:
    """The output of the leaf ``m(x)`` in eval mode, built without running it, or None.

    For the most common leaves (activations, dropout, identity, convolutions, batch norms,
    linear layers) given one plain contiguous meta tensor they accept: the same shape, dtype
    and strides as the real call, and the input itself where the real call returns it
    (in-place activations, dropout and identity in eval; ``tests/test_capture_fast.py``
    checks each against the module's own run). Anything else, and anything the module would
    reject (a wrong channel count, another dtype), returns None: the module runs, and raises
    what it raises."""
    t = type(m)
    if type(x) is not torch.Tensor or not x.is_meta or not x.is_contiguous() or \
            not x.numel() or m.training or "forward" in m.__dict__ or \
            t.forward is not _FORWARDS.get(t):  # a forward of the instance's, or patched
        return None
    if t in _ACT_LIKE:
        if not x.is_floating_point():
            return None
        return x if getattr(m, "inplace", False) else \
            torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    if t in _RETURN_INPUT:
        return x
    n = _CONV_MODULES.get(t)
    if n is not None:
        w = m.weight
        if m.padding_mode != "zeros" or isinstance(m.padding, str) or x.dim() != n + 2 or \
                x.shape[1] != m.in_channels or w.dtype != x.dtype or not w.is_meta:
            return None
        return _conv_out(x, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation)
    dims = _BN_MODULES.get(t)
    if dims is not None:
        if x.dim() not in dims or x.shape[1] != m.num_features or not x.is_floating_point() \
                or not m.track_running_stats or m.running_mean is None:
            return None
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    if t is nn.Linear:
        w = m.weight
        if x.shape[-1] != m.in_features or w.dtype != x.dtype or not w.is_meta:
            return None
        return torch.empty((*x.shape[:-1], m.out_features), dtype=x.dtype, device="meta")
    return None

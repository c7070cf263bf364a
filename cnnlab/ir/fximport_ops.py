"""The torch -> IR op tables of the torch.fx importer (:mod:`cnnlab.ir.fximport`).

:func:`module_op` maps a leaf module (:mod:`.fximport_tensor` maps tensor methods and
functions, :mod:`.fximport_map` dispatches a call to them). They see concrete argument values
(sizes read from ``x.shape`` are already integers) and the full torch shapes (batch first) of
the tensor operands, and return ``(op, reason)``: the IR op, or None and a one-line reason
naming what the IR cannot model. :func:`layer_error` says why a leaf cannot take its input.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_tensor import (
    Result,
    flat_shape,
    reshape_op,
    softmax_op,
    tup,
    upsample_op,
)
from cnnlab.ir.layer_input import RANK, expect, input_error, rank_error
from cnnlab.ir.shapes import node_shape


@dataclass
class T:
    """A tensor computed from the graph input: its IR node and torch shape (batch first)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    fold: int = 0  # > 0: torch's first axis is the batch and this one (fximport_fold)

    @property
    def real(self) -> tuple[int, ...]:
        """The shape torch sees (a folded axis merged into the batch axis)."""
        return (self.shape[0] * self.shape[1], *self.shape[2:]) if self.fold else self.shape

    def meta(self) -> torch.Tensor:
        return torch.empty(self.real, dtype=self.dtype, device="meta")

ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu", nn.ELU: "elu",
    nn.LeakyReLU: "leakyrelu", nn.Softplus: "softplus", nn.Identity: "identity",
    nn.ReLU6: "relu6", nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid",
    nn.Mish: "mish", nn.SELU: "selu", nn.CELU: "celu", nn.Softsign: "softsign",
    nn.Hardtanh: "hardtanh", nn.LogSigmoid: "logsigmoid", nn.Tanhshrink: "tanhshrink",
    nn.Softshrink: "softshrink", nn.Hardshrink: "hardshrink", nn.RReLU: "rrelu",
    nn.Threshold: "threshold",
}
ACT_FUNCS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu",
    torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.gelu: "gelu", F.elu: "elu", F.leaky_relu: "leakyrelu", F.softplus: "softplus",
    F.relu6: "relu6", F.silu: "silu", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
    F.mish: "mish", F.selu: "selu", torch.selu: "selu", F.celu: "celu", F.softsign: "softsign",
    F.hardtanh: "hardtanh", F.logsigmoid: "logsigmoid", F.tanhshrink: "tanhshrink",
    F.softshrink: "softshrink", F.hardshrink: "hardshrink", F.rrelu: "rrelu",
    F.threshold: "threshold", torch.clamp: "clamp", torch.clip: "clamp", torch.abs: "abs",
    torch.neg: "neg", torch.exp: "exp", torch.log: "log", torch.sqrt: "sqrt",
    torch.rsqrt: "rsqrt", torch.square: "square", torch.reciprocal: "reciprocal",
    torch.sin: "sin", torch.cos: "cos", torch.erf: "erf", torch.floor: "floor",
    torch.round: "round", torch.sign: "sign", operator.neg: "neg", operator.abs: "abs",
}
ACT_METHODS = {m: m.rstrip("_") for m in (
    "relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_", "clamp", "clamp_", "clip", "abs",
    "neg", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "sin", "cos", "erf",
    "floor", "round", "sign", "exp_", "sqrt_")}
ACT_METHODS["clip"] = "clamp"
DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                   nn.FeatureAlphaDropout)
DROPOUT_FUNCS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
                 F.feature_alpha_dropout)
BINARY_FUNCS: dict[Any, str] = {
    operator.add: "add", operator.iadd: "add", torch.add: "add", operator.sub: "sub",
    operator.isub: "sub", torch.sub: "sub", torch.subtract: "sub", operator.mul: "mul",
    operator.imul: "mul", torch.mul: "mul", torch.multiply: "mul", operator.truediv: "div",
    operator.itruediv: "div", torch.div: "div", torch.divide: "div", torch.true_divide: "div",
    operator.pow: "pow", torch.pow: "pow", torch.maximum: "max", torch.minimum: "min",
    torch.rsub: "rsub",
}
BINARY_METHODS = {"add": "add", "add_": "add", "__add__": "add", "__radd__": "add",
                  "sub": "sub", "sub_": "sub", "__sub__": "sub", "__rsub__": "rsub",
                  "mul": "mul", "mul_": "mul", "__mul__": "mul", "__rmul__": "mul",
                  "div": "div", "div_": "div", "__truediv__": "div", "__rtruediv__": "rdiv",
                  "pow": "pow", "__pow__": "pow", "maximum": "max", "minimum": "min",
                  "__iadd__": "add", "__isub__": "sub", "__imul__": "mul",
                  "__itruediv__": "div", "__div__": "div"}
CAT = (torch.cat, torch.concat, torch.concatenate)
STACK = (torch.stack,)
SOFTMAX = (F.softmax, torch.softmax, F.log_softmax, torch.log_softmax, "softmax",
           "log_softmax")
RESHAPE_METHODS = ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                   "view_as", "reshape_as")
RESHAPE_FUNCS = (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
                 torch.unflatten)
PERMUTE = (torch.permute, torch.transpose, torch.swapaxes, torch.movedim, torch.t, "permute",
           "transpose", "swapaxes", "movedim", "t")
REDUCE = {torch.mean: "mean", "mean": "mean", torch.sum: "sum", "sum": "sum",
          torch.amax: "amax", "amax": "amax", torch.amin: "amin", "amin": "amin"}
VAR = {torch.var: "var", "var": "var", torch.std: "std", "std": "std"}  # (dim, unbiased, keepdim)
# shape- and value-preserving calls that need no node of their own
ALIAS = ("contiguous", "clone", "detach", "float", "cpu", "requires_grad_", "to", "type_as",
         "double", "cuda", "half")
POOL_FUNCS = {
    F.max_pool1d: "max", F.max_pool2d: "max", F.max_pool3d: "max",
    F.avg_pool1d: "avg", F.avg_pool2d: "avg", F.avg_pool3d: "avg",
}
POOL_ARGS = {"max": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                     "return_indices"),
             "avg": ("input", "kernel_size", "stride", "padding", "ceil_mode",
                     "count_include_pad", "divisor_override")}
ADAPTIVE_FUNCS = {F.adaptive_avg_pool1d: "avg", F.adaptive_avg_pool2d: "avg",
                  F.adaptive_avg_pool3d: "avg", F.adaptive_max_pool1d: "max",
                  F.adaptive_max_pool2d: "max", F.adaptive_max_pool3d: "max"}
_PAD_MODULES = {nn.ZeroPad1d: "constant", nn.ZeroPad2d: "constant", nn.ZeroPad3d: "constant",
                nn.ConstantPad1d: "constant", nn.ConstantPad2d: "constant",
                nn.ConstantPad3d: "constant", nn.ReflectionPad1d: "reflect",
                nn.ReflectionPad2d: "reflect", nn.ReflectionPad3d: "reflect",
                nn.ReplicationPad1d: "replicate", nn.ReplicationPad2d: "replicate",
                nn.ReplicationPad3d: "replicate", nn.CircularPad1d: "circular",
                nn.CircularPad2d: "circular", nn.CircularPad3d: "circular"}


def pads_of(p: Any, dims: int) -> ir.Padding:
    if isinstance(p, str):
        return p
    pads = tup(p, dims)
    return "valid" if not any(pads) else tuple((v, v) for v in pads)


def window_pool(kind: str, k: Any, s: Any, p: Any, dims: int, ceil: bool = False,
                dilation: Any = 1, include_pad: bool = True, divisor: Any = None) -> Result:
    kernel = tup(k, dims)
    stride = tup(s if s not in (None, [], ()) else k, dims)
    pads = tup(p, dims)
    if any(d != 1 for d in tup(dilation, dims)):
        return None, "dilated max pooling"
    if divisor is not None:
        return None, "avg pooling with divisor_override"
    exclude = kind == "avg" and not include_pad and any(pads)
    return ir.Pool(kind, kernel, stride, pads_of(pads, dims), bool(ceil), exclude), ""


def adaptive(kind: str, size: Any, x: tuple[int, ...]) -> Result:
    """``x``: the torch input shape (batch first)."""
    spatial = x[2:]
    if isinstance(size, list | tuple):
        sizes = tuple(n if o is None else int(o) for o, n in zip(size, spatial, strict=True))
    else:
        sizes = (int(size),) * len(spatial)
    if all(o == 1 for o in sizes):
        return ir.GlobalPool(kind, keepdim=True), ""
    return ir.AdaptivePool(kind, sizes), ""


def torch_pads(pad: Any) -> ir.Pads:
    """F.pad's flat ``(last_lo, last_hi, prev_lo, ...)`` -> ``(lo, hi)`` per axis, first first."""
    pad = [int(v) for v in pad]
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    return tuple(reversed(pairs))


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _conv(m: nn.Module, dims: int) -> Result:
    return ir.Conv(m.out_channels, tup(m.kernel_size, dims), tup(m.stride, dims),
                   pads_of(m.padding, dims), tup(m.dilation, dims), m.groups,
                   m.bias is not None), ("" if m.padding_mode == "zeros" else
                                         f"padding_mode={m.padding_mode}, counted as "
                                         "zero padding")


def _batch_norm(m: nn.Module) -> Result:
    if not m.affine:
        return None, "batch norm without affine (the IR counts gamma and beta)"
    return ir.BatchNorm(m.eps, m.momentum if m.momentum is not None else 0.1), ""


def module_op(m: nn.Module, x: tuple[int, ...], kwargs: dict, path: str = "") -> Result:
    """IR op of a leaf module called on a tensor of torch shape ``x`` (batch first); a size
    the module's weights contradict, or a rank its class does not take, is a one-line error."""
    dims = len(x) - 2
    t = type(m)
    rank = RANK.get(t)
    if rank is not None and rank != dims:  # a meta kernel may not check it (max_pool1d)
        raise CnnlabError(rank_error(m, path or t.__name__, x))
    if t in ACT_MODULES:  # an activation itself: none of the checks before its own applies
        return ir.Act(ACT_MODULES[t]), ""
    if t in _CONVS and m.in_channels and len(x) >= 2:  # the checks below, fewer of them
        expect(m, "channels", m.in_channels, x[1])
        return _conv(m, dims)
    if t in _BATCH_NORMS and m.num_features and len(x) >= 2:  # the check below, without
        expect(m, "channels", m.num_features, x[1])  # asking it for in_channels (a slow
        return _batch_norm(m)  # miss through Module.__getattr__)
    if isinstance(m, nn.modules.conv._ConvNd | nn.modules.batchnorm._NormBase | nn.GroupNorm):
        wrong = rank_error(m, path or t.__name__, x)  # a subclass: _RANK has exact types
        if wrong:
            raise CnnlabError(wrong)
        if len(x) < 2:
            raise CnnlabError(f"{type(m).__name__} needs a (channels, ...) input, gets {x[1:]}")
        expect(m, "channels", getattr(m, "in_channels", None) or
                getattr(m, "num_features", None) or m.num_channels, x[1])
        if t in _BATCH_NORMS:  # a batch norm itself: straight to its own rule
            return _batch_norm(m)
    if isinstance(m, nn.Linear):
        expect(m, "features (last axis)", m.in_features, x[-1])
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return _conv(m, dims)
    if isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        if kwargs.get("output_size") is not None:
            return None, "transposed conv called with output_size"
        return ir.ConvTranspose(m.out_channels, tup(m.kernel_size, dims), tup(m.stride, dims),
                                tup(m.padding, dims), tup(m.output_padding, dims),
                                tup(m.dilation, dims), m.groups, m.bias is not None), ""
    if isinstance(m, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d):
        if m.return_indices:
            return None, "max pooling with return_indices"
        return window_pool("max", m.kernel_size, m.stride, m.padding, dims, m.ceil_mode,
                           m.dilation)
    if isinstance(m, nn.AvgPool1d | nn.AvgPool2d | nn.AvgPool3d):
        return window_pool("avg", m.kernel_size, m.stride, m.padding, dims, m.ceil_mode,
                           include_pad=m.count_include_pad,
                           divisor=getattr(m, "divisor_override", None))
    if isinstance(m, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d | nn.AdaptiveAvgPool3d):
        return adaptive("avg", m.output_size, x)
    if isinstance(m, nn.AdaptiveMaxPool1d | nn.AdaptiveMaxPool2d | nn.AdaptiveMaxPool3d):
        if m.return_indices:
            return None, "adaptive max pooling with return_indices"
        return adaptive("max", m.output_size, x)
    if type(m) in ACT_MODULES:
        return ir.Act(ACT_MODULES[type(m)]), ""
    if isinstance(m, nn.PReLU):
        return ir.PReLU(m.num_parameters), ""
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
        return _batch_norm(m)
    if isinstance(m, nn.LayerNorm):
        shape = tuple(m.normalized_shape)
        if tuple(x[len(x) - len(shape):]) != shape:
            return None, f"layer norm over {shape} on an input of shape {x}"
        return ir.Norm("layer", shape=shape, affine=m.elementwise_affine,
                       bias=m.elementwise_affine and getattr(m, "bias", None) is not None,
                       eps=m.eps), ""
    if isinstance(m, nn.RMSNorm):
        shape = tuple(m.normalized_shape)
        if tuple(x[len(x) - len(shape):]) != shape:
            return None, f"RMS norm over {shape} on an input of shape {x}"
        return ir.Norm("rms", shape=shape, affine=m.elementwise_affine, bias=False,
                       eps=m.eps), ""
    if isinstance(m, nn.GroupNorm):
        return ir.Norm("group", m.num_groups, affine=m.affine, eps=m.eps), ""
    if isinstance(m, nn.InstanceNorm1d | nn.InstanceNorm2d | nn.InstanceNorm3d):
        return ir.Norm("instance", affine=m.affine, eps=m.eps,
                       running=m.track_running_stats), ""
    if isinstance(m, DROPOUT_MODULES):
        return ir.Dropout(m.p), ""
    if isinstance(m, nn.Flatten):
        return reshape_op(x, flat_shape(x, m.start_dim, m.end_dim))
    if isinstance(m, nn.Unflatten):
        d = m.dim % len(x)
        return reshape_op(x, (*x[:d], *m.unflattened_size, *x[d + 1:]))
    if isinstance(m, nn.Linear):
        return ir.Linear(m.out_features, m.bias is not None, last=len(x) != 2), ""
    if isinstance(m, nn.Softmax | nn.LogSoftmax):
        dim = m.dim if m.dim is not None else (0 if len(x) in (0, 1, 3) else 1)
        return softmax_op(x, dim, isinstance(m, nn.LogSoftmax))
    if isinstance(m, nn.Upsample):
        return upsample_op(x, m.size, m.scale_factor, m.mode, m.align_corners,
                           m.recompute_scale_factor)
    if type(m) in _PAD_MODULES:
        value = float(getattr(m, "value", 0.0))
        return ir.Pad(torch_pads(m.padding), _PAD_MODULES[type(m)], value), ""
    if isinstance(m, nn.Embedding):
        return ir.Embedding(m.num_embeddings, m.embedding_dim), ""
    return None, "no IR op for this module"


def layer_error(m: nn.Module, path: str, x: tuple[int, ...]) -> str | None:
    """Why the leaf ``m`` at ``path`` cannot take a batched input of torch shape ``x``, in
    the words of the spec path: the wrong number of axes or channels
    (:func:`~cnnlab.ir.layer_input.input_error`), or a window larger than its padded input
    (the IR's own shape rule); None if neither, when a failed call's own error stands."""
    wrong = input_error(m, path, x)
    if wrong or not isinstance(m, _WINDOWED):
        return wrong
    try:
        op, _ = module_op(m, x, {}, path)
        if op is not None:
            node_shape(ir.Node(path, op, ("x",)), [tuple(x[1:])])
    except CnnlabError as e:  # a ShapeError: "layer c: kernel 3 (axis 0) is larger than..."
        return str(e)
    return None


_WINDOWED = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
             nn.modules.pooling._AvgPoolNd)

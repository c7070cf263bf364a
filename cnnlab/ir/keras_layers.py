"""One Keras layer -> IR ops, channels-last Keras tensors read as the IR's channels-first ones.

A Keras tensor ``(*S, C)`` (no batch) is the IR tensor ``(C, *S)``; a vector ``(C,)`` is the
same in both. Each ``convert_*`` function receives the importer (:class:`Emitter`: it appends
ops and knows the IR shape of every value), the layer and the IR names of its inputs, and
returns the IR name of the layer's output. Layers that act on the channel axis map directly
(convs, pools, batch norm, concatenation); ``Dense`` on a feature map is a 1x1 convolution (the
same weights, MACs and receptive field); a layer norm over channels is wrapped in two permutes.
Keras' ``same`` padding is the IR's ``"same"`` (the TF rule; asymmetric for stride > 1).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from cnnlab.ir import graph as ir

# Keras activation names -> IR activation names (None: identity, skipped)
ACT_NAMES: dict[str, str | None] = {
    "linear": None, "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu",
    "elu": "elu", "selu": "selu", "softplus": "softplus", "softsign": "softsign",
    "mish": "mish", "celu": "celu", "relu6": "relu6", "exponential": "exp", "swish": "silu",
    "silu": "silu", "hard_sigmoid": "hardsigmoid", "hard_silu": "hardswish",
    "hard_swish": "hardswish", "leaky_relu": "leakyrelu", "hard_tanh": "hardtanh",
    "log_sigmoid": "logsigmoid", "tanh_shrink": "tanhshrink", "hard_shrink": "hardshrink",
    "soft_shrink": "softshrink",
}


class Emitter(Protocol):
    """What a converter needs from the importer."""

    def add(self, op: ir.Op, inputs: list[str] | str, name: str, origin: str = "") -> str: ...

    def shape(self, value: str) -> tuple[int, ...]: ...


def ir_axis(axis: int, rank: int) -> int:
    """A Keras axis (counting the batch axis, or negative) -> the IR axis (no batch)."""
    a = axis if axis < 0 else axis - 1
    a %= rank
    if rank < 2:
        return a
    return 0 if a == rank - 1 else a + 1


def to_ir_shape(keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(*S, C)`` -> ``(C, *S)``; a vector stays."""
    s = tuple(keras_shape)
    return (s[-1], *s[:-1]) if len(s) >= 2 else s


def as_tuple(v: Any) -> tuple[int, ...]:
    return tuple(int(a) for a in v) if isinstance(v, list | tuple) else (int(v),)


def _padding(layer: Any, pads: ir.Pads | None) -> ir.Padding:
    mode = str(getattr(layer, "padding", "valid")).lower()
    if mode == "causal":  # Conv1D: all padding on the left
        k, d = as_tuple(layer.kernel_size)[0], as_tuple(layer.dilation_rate)[0]
        return ((d * (k - 1), 0),)
    if pads is not None:  # a folded ZeroPadding (cnnlab export writes X_pad before X)
        if mode != "valid":
            raise ValueError("a folded padding needs a 'valid' layer")
        return pads
    return "same" if mode == "same" else "valid"


def activation(em: Emitter, value: str, fn: Any, name: str, origin: str) -> str:
    """Append the activation ``fn`` (a name or a Keras function) after ``value``."""
    from keras import activations

    key = fn if isinstance(fn, str) else activations.serialize(fn)
    if isinstance(key, dict):
        key = key.get("config", key.get("class_name", "?"))
    key = str(key)
    if key in ("softmax", "log_softmax"):
        return em.add(ir.Softmax(0, log=key == "log_softmax"), value, name, origin)
    if key in ACT_NAMES:
        act = ACT_NAMES[key]
        return value if act is None else em.add(ir.Act(act), value, name, origin)
    return em.add(ir.Unsupported(f"activation {key}", em.shape(value)), value, name, origin)


def _fused_act(em: Emitter, value: str, layer: Any, name: str) -> str:
    """A conv/dense layer's own ``activation=``: a row ``<name>.<fn>`` after it."""
    fn = getattr(layer, "activation", None)
    if fn is None:
        return value
    from keras import activations

    key = str(activations.serialize(fn)) if not isinstance(fn, str) else fn
    if key == "linear":
        return value
    # the layer's own row keeps its name; its activation is the row <name>.<fn>
    return activation(em, value, fn, f"{name}.{ACT_NAMES.get(key) or key}",
                      type(layer).__name__)


def convert_conv(em: Emitter, layer: Any, x: str, name: str, pads: ir.Pads | None) -> str:
    cls = type(layer).__name__
    core = name
    cin = em.shape(x)[0]
    dims = len(em.shape(x)) - 1
    kernel = ir.broadcast(as_tuple(layer.kernel_size), dims, "kernel")
    stride = ir.broadcast(as_tuple(layer.strides), dims, "stride")
    dil = ir.broadcast(as_tuple(layer.dilation_rate), dims, "dilation")
    padding = _padding(layer, pads)
    bias = bool(layer.use_bias)
    if cls.startswith("Conv") and "Transpose" in cls:
        return _fused_act(em, _deconv(em, layer, x, core, kernel, stride, dil, bias), layer,
                          name)
    if cls.startswith("Depthwise"):
        m = int(layer.depth_multiplier)
        out = em.add(ir.Conv(cin * m, kernel, stride, padding, dil, cin, bias), x, core, cls)
    elif cls.startswith("Separable"):
        m = int(layer.depth_multiplier)
        dw = em.add(ir.Conv(cin * m, kernel, stride, padding, dil, cin, False), x,
                    f"{name}.depthwise", cls)
        out = em.add(ir.Conv(int(layer.filters), (1,) * dims, bias=bias), dw, core, cls)
    else:
        groups = int(getattr(layer, "groups", 1) or 1)
        out = em.add(ir.Conv(int(layer.filters), kernel, stride, padding, dil, groups, bias),
                     x, core, cls)
    return _fused_act(em, out, layer, name)


def _deconv(em: Emitter, layer: Any, x: str, name: str, kernel: ir.Axes, stride: ir.Axes,
            dil: ir.Axes, bias: bool) -> str:
    """Keras' transposed-conv lengths as the IR's ``(n-1)s - 2p + d(k-1) + op + 1``."""
    same = str(layer.padding).lower() == "same"
    opad = getattr(layer, "output_padding", None)
    pads, ops = [], []
    for i, (k, s, d) in enumerate(zip(kernel, stride, dil, strict=True)):
        span = d * (k - 1) + 1
        if opad is not None:
            p = span // 2 if same else 0
            pads.append(p)
            ops.append(as_tuple(opad)[i % len(as_tuple(opad))])
            continue
        # valid: n*s + max(span - s, 0); same: n*s
        extra = span - s
        if same:
            p = max(-(-extra // 2), 0)
            pads.append(p)
            ops.append(2 * p - extra)
        else:
            pads.append(0)
            ops.append(max(-extra, 0))
    return em.add(ir.ConvTranspose(int(layer.filters), kernel, stride, tuple(pads),
                                   tuple(ops), dil, 1, bias), x, name, type(layer).__name__)


def convert_pool(em: Emitter, layer: Any, x: str, name: str, pads: ir.Pads | None) -> str:
    kind = "max" if "Max" in type(layer).__name__ else "avg"
    dims = len(em.shape(x)) - 1
    kernel = ir.broadcast(as_tuple(layer.pool_size), dims, "pool_size")
    stride = ir.broadcast(as_tuple(layer.strides or layer.pool_size), dims, "strides")
    return em.add(ir.Pool(kind, kernel, stride, _padding(layer, pads)), x, name,
                  type(layer).__name__)


def convert_dense(em: Emitter, layer: Any, x: str, name: str, flatten: bool) -> str:
    """A Dense on a vector (or after a folded Flatten) is a fc layer; on a feature map it acts
    on the channels at every position: a 1x1 convolution."""
    core = name
    shape = em.shape(x)
    units, bias = int(layer.units), bool(layer.use_bias)
    if len(shape) == 1 or flatten:
        out = em.add(ir.Linear(units, bias), x, core, "Dense")
    else:
        out = em.add(ir.Conv(units, (1,) * (len(shape) - 1), bias=bias), x, core, "Dense")
    return _fused_act(em, out, layer, name)


def _to_last(rank: int) -> tuple[int, ...]:
    return tuple(range(1, rank)) + (0,)


def to_first(rank: int) -> tuple[int, ...]:
    return (rank - 1,) + tuple(range(rank - 1))


def _trivial_perm(shape: tuple[int, ...]) -> bool:
    """Moving the channel axis of ``shape`` keeps the memory order (one of the parts is 1)."""
    return len(shape) < 2 or shape[0] == 1 or math.prod(shape[1:]) == 1


def convert_reshape(em: Emitter, layer: Any, x: str, name: str) -> str:
    """Keras reshapes the channels-last data: permute to channels-last, reshape, permute back
    (each permute left out where it does not change the order of the values)."""
    shape = em.shape(x)
    target = list(as_tuple(layer.target_shape))
    if -1 in target:
        known = math.prod(v for v in target if v != -1)
        target[target.index(-1)] = math.prod(shape) // max(known, 1)
    target_ir = to_ir_shape(tuple(target))
    if not _trivial_perm(shape):
        x = em.add(ir.Permute(_to_last(len(shape))), x, f"{name}.to_last", "Reshape")
    if _trivial_perm(target_ir):
        return em.add(ir.Reshape(target_ir), x, name, "Reshape")
    x = em.add(ir.Reshape(tuple(target)), x, f"{name}.reshape", "Reshape")
    return em.add(ir.Permute(to_first(len(target))), x, name, "Reshape")


def convert_permute(em: Emitter, layer: Any, x: str, name: str) -> str:
    rank = len(em.shape(x))
    dims = [d - 1 for d in as_tuple(layer.dims)]  # keras output axis j <- input axis dims[j]
    k_of_ir = {ir_axis(a + 1, rank): a for a in range(rank)}
    perm = tuple(ir_axis(dims[k_of_ir[i]] + 1, rank) for i in range(rank))
    return em.add(ir.Permute(perm), x, name, "Permute")


def convert_layernorm(em: Emitter, layer: Any, x: str, name: str) -> str:
    shape = em.shape(x)
    rank = len(shape)
    axes = as_tuple(layer.axis)
    if [ir_axis(a, rank) for a in axes] != [0]:
        return em.add(ir.Unsupported("LayerNormalization over non-channel axes", shape,
                                     weight_count(layer)), x, name, "LayerNormalization")
    op = ir.Norm("layer", shape=(shape[0],), affine=bool(layer.scale),
                 bias=bool(layer.center), eps=float(layer.epsilon))
    if rank == 1:
        return em.add(op, x, name, "LayerNormalization")
    y = em.add(ir.Permute(_to_last(rank)), x, f"{name}.to_last", "LayerNormalization")
    y = em.add(op, y, f"{name}.norm", "LayerNormalization")
    return em.add(ir.Permute(to_first(rank)), y, name, "LayerNormalization")


def weight_count(layer: Any) -> int:
    return sum(math.prod(w.shape) for w in layer.trainable_weights)


def keras_pads(layer: Any, dims: int, crop: bool = False) -> ir.Pads:
    """``(low, high)`` per spatial axis of a ZeroPadding (or, negated, a Cropping) layer."""
    raw = layer.cropping if crop else layer.padding
    pads = []
    for v in (raw if isinstance(raw, list | tuple) else (raw,) * dims):
        lo, hi = (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
        pads.append((-lo, -hi) if crop else (lo, hi))
    return tuple(pads) * (dims if len(pads) == 1 and dims > 1 else 1)


def convert_pad(em: Emitter, layer: Any, x: str, name: str, crop: bool) -> str:
    pads = keras_pads(layer, len(em.shape(x)) - 1, crop)
    return em.add(ir.Pad(pads), x, name, type(layer).__name__)


def convert_upsample(em: Emitter, layer: Any, x: str, name: str) -> str:
    dims = len(em.shape(x)) - 1
    size = ir.broadcast(as_tuple(layer.size), dims, "size")
    interp = str(getattr(layer, "interpolation", "nearest"))
    mode = {"bilinear": "linear", "linear": "linear", "bicubic": "bicubic"}.get(interp,
                                                                                "nearest")
    return em.add(ir.Upsample(mode, scale=tuple(float(s) for s in size)), x, name,
                  type(layer).__name__)


def convert_relu(em: Emitter, layer: Any, x: str, name: str) -> str:
    mx = layer.max_value
    slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
    thr = float(getattr(layer, "threshold", 0.0) or 0.0)
    if mx is not None and float(mx) == 6.0 and slope == 0 and thr == 0:
        return em.add(ir.Act("relu6"), x, name, "ReLU")
    if mx is None and thr == 0:
        return em.add(ir.Act("leakyrelu" if slope else "relu"), x, name, "ReLU")
    return em.add(ir.Act("clamp"), x, name, "ReLU")

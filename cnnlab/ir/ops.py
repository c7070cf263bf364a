"""The layers of the IR: one frozen dataclass per op, and the per-axis types they use.

:mod:`cnnlab.ir.graph` wires them into a :class:`~cnnlab.ir.graph.Graph` (and re-exports
them, so ``from cnnlab.ir.graph import Conv`` keeps working). Tensors are described without
the batch axis, channels first; per-axis hyper-parameters are tuples with one entry per
spatial axis after :func:`cnnlab.ir.graph.resolve` (a 1-tuple means "same on every axis").
Padding modes and their output sizes: see :mod:`cnnlab.ir.graph`. The ops that move and
combine tensors in traced models (reshape, slice, matmul, attention, ...) are defined in
:mod:`cnnlab.ir.ops_tensor` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# the tensor-moving ops of traced models live in their own module (re-exported here)
from cnnlab.ir.ops_tensor import (
    Attention,
    Embedding,
    Expand,
    MatMul,
    Normalize,
    Permute,
    Reduce,
    Reshape,
    Roll,
    Slice,
    Stack,
)

Axes = tuple[int, ...]
Pads = tuple[tuple[int, int], ...]
PadMode = Literal["valid", "same", "full"]
Padding = PadMode | Pads


@dataclass(frozen=True)
class Input:
    """The graph's input placeholder (its shape is given at analysis/build time).

    ``dtype`` is a torch dtype name; an integer dtype (token ids for an ``Embedding``) means
    every axis of the input is a position (``(L,)`` tokens), not ``(C, *spatial)``.
    """

    dtype: str = "float32"
    kind = "input"

    @property
    def tokens(self) -> bool:
        return self.dtype.startswith(("int", "uint", "long"))


@dataclass(frozen=True)
class Conv:
    """N-d convolution (cross-correlation, as in every framework), ``dims`` spatial axes.

    weight ``(out_channels, in_channels/groups, *kernel)``, bias ``(out_channels,)``.
    ``params``: the learned values when they are not that rule's (a captured ``F.conv2d``
    whose weight is a fixed filter in a buffer: 0; a weight computed from parameters, as
    weight standardisation with a gain: the values of those parameters).
    """

    out_channels: int
    kernel: Axes
    stride: Axes = (1,)
    padding: Padding = "valid"
    dilation: Axes = (1,)
    groups: int = 1
    bias: bool = True
    params: int | None = None
    kind = "conv"


@dataclass(frozen=True)
class Pool:
    """Max or average pooling; ``stride`` defaults to the kernel (non-overlapping windows)."""

    op: Literal["max", "avg"]
    kernel: Axes
    stride: Axes | None = None
    padding: Padding = "valid"
    ceil: bool = False  # torch's ceil_mode: a last, partial window when it starts in the input
    # average pooling only: divide by the window's positions inside the input (torch's
    # count_include_pad=False), not by the kernel size
    exclude_pad: bool = False
    kind = "pool"


@dataclass(frozen=True)
class GlobalPool:
    """Average (or max) over all spatial positions: ``(C, *S) -> (C,)``; with ``keepdim``
    ``(C, 1, ..., 1)`` (torch's ``AdaptiveAvgPool2d(1)``, ``mean(dim, keepdim=True)``)."""

    op: Literal["max", "avg"] = "avg"
    keepdim: bool = False
    kind = "globalpool"


@dataclass(frozen=True)
class AdaptivePool:
    """torch's adaptive pooling to ``size`` per spatial axis: unit ``i`` of an axis of length
    ``n`` pools ``[floor(i n/o), ceil((i+1) n/o))`` (windows of varying length)."""

    op: Literal["max", "avg"]
    size: Axes
    kind = "adaptivepool"


# the spec language's activations (cnnlab.ir.spec reads this list)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leakyrelu", "softplus", "identity")
# element-wise functions a traced module may use besides (cnnlab.ir.fximport); the builder
# builds all but clamp (its bounds are not in the IR), the NumPy reference none of them
TRACED_ACTIVATIONS = (
    "relu6", "silu", "hardswish", "hardsigmoid", "mish", "selu", "celu", "softsign",
    "hardtanh", "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "rrelu", "threshold",
    "clamp", "abs", "neg", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "sin", "cos",
    "erf", "floor", "round", "sign")


@dataclass(frozen=True)
class Act:
    """Element-wise non-linearity; ``fn`` is one of :data:`ACTIVATIONS` (or, from a traced
    module, :data:`TRACED_ACTIVATIONS`)."""

    fn: str = "relu"
    kind = "act"


@dataclass(frozen=True)
class PReLU:
    """Parametric ReLU: ``max(0,x) + a min(0,x)``, ``num_parameters`` slopes (1 or C)."""

    num_parameters: int = 1
    kind = "prelu"


@dataclass(frozen=True)
class Norm:
    """Layer/group/instance normalisation (inference: statistics of the sample itself).

    ``norm="layer"``: over the last ``len(shape)`` axes, affine weight+bias of ``shape``;
    ``"rms"``: the same axes, divided by their root mean square (no mean subtracted, no
    bias: ``nn.RMSNorm``; ``eps`` None is torch's default, the dtype's machine epsilon);
    ``"group"``: ``groups`` groups of channels over all positions, affine ``(C,)``;
    ``"instance"``: per channel over all positions, affine ``(C,)``; ``running``: an
    InstanceNorm with ``track_running_stats`` uses fixed statistics in eval (point-wise).
    """

    norm: Literal["layer", "group", "instance", "rms"]
    groups: int = 1
    shape: Axes = ()
    affine: bool = True
    bias: bool = True
    eps: float | None = 1e-5
    running: bool = False
    kind = "norm"


@dataclass(frozen=True)
class ConvTranspose:
    """Transposed convolution (the gradient of a conv), ``dims`` spatial axes.

    Output ``(n-1)s - 2p + d(k-1) + output_padding + 1``; weight
    ``(in_channels, out_channels/groups, *kernel)``, bias ``(out_channels,)``.
    """

    out_channels: int
    kernel: Axes
    stride: Axes = (1,)
    padding: Axes = (0,)
    output_padding: Axes = (0,)
    dilation: Axes = (1,)
    groups: int = 1
    bias: bool = True
    kind = "deconv"


@dataclass(frozen=True)
class Upsample:
    """Resampling of the spatial axes to ``size`` or by ``scale`` (torch's ``interpolate``).

    ``mode``: nearest, nearest-exact, linear (bi/trilinear by rank) or bicubic.
    """

    mode: str = "nearest"
    size: Axes | None = None
    scale: tuple[float, ...] | None = None
    align_corners: bool = False
    kind = "upsample"


@dataclass(frozen=True)
class Pad:
    """Explicit padding of the spatial axes (``F.pad``, ``nn.ZeroPad2d``, ``ReflectionPad``...).

    ``pads``: ``(low, high)`` per spatial axis, first axis first (negative values crop).
    """

    pads: Pads
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: float = 0.0
    kind = "pad"


BINARY = ("add", "sub", "mul", "div", "max", "min", "pow")


@dataclass(frozen=True)
class Binary:
    """Element-wise binary op with torch broadcasting: ``x op y`` of the inputs (shapes
    broadcast from the trailing axis) or, with ``const``, of one input and a constant tensor
    of shape ``const`` (a buffer such as a mean, or a parameter: ``params`` of its values).
    ``reverse``: the constant is the left operand (``mean - x``)."""

    fn: str = "add"
    const: tuple[int, ...] | None = None
    reverse: bool = False
    params: int = 0
    kind = "binary"


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over the channel axis (1D/2D/3D from the input rank).

    ``scale``/``center``: whether it learns gamma/beta (Keras' ``scale=False``, as in
    InceptionV3, has no gamma); the running statistics are buffers, not parameters.
    """

    eps: float = 1e-5
    momentum: float = 0.1
    scale: bool = True
    center: bool = True
    kind = "batchnorm"


@dataclass(frozen=True)
class Dropout:
    """Dropout: drop probability ``p`` in training (keep probability ``1-p``); identity in eval."""

    p: float = 0.5
    kind = "dropout"


@dataclass(frozen=True)
class Flatten:
    """``(C, *S) -> (C*prod(S),)`` in channels-first order (as ``torch.flatten``)."""

    kind = "flatten"


@dataclass(frozen=True)
class Linear:
    """Fully connected layer; a multi-axis input is flattened first (as TF's Dense after reshape).

    With ``last`` it acts on the last axis only, as torch's ``nn.Linear`` on an N-D input
    (``(*S, in) -> (*S, out)``, ConvNeXt's channels-last MLP).
    weight ``(out_features, in_features)``, bias ``(out_features,)``. ``params``: the learned
    values when they are not that rule's (BEiT's q/k/v bias with a fixed zero k part).
    """

    out_features: int
    bias: bool = True
    last: bool = False
    params: int | None = None
    kind = "linear"


@dataclass(frozen=True)
class Softmax:
    """Softmax over the feature axis (the 'loss' layer of the sheets' tables), or over
    ``axis`` (no batch axis) of a traced ``softmax(dim)``; ``log`` for log_softmax."""

    axis: int = 0
    log: bool = False
    kind = "softmax"


@dataclass(frozen=True)
class Add:
    """Join node: ``gamma * sum(inputs)``; all inputs must have the same shape.

    ``gamma`` is TTIC Problem 3(b)'s multiplier; 1.0 is a plain residual sum.
    """

    gamma: float = 1.0
    kind = "add"


@dataclass(frozen=True)
class Concat:
    """Join node: concatenate inputs along ``axis`` (0: channels; no batch axis); the other
    axes must agree. One input is allowed (``torch.cat([x])``)."""

    axis: int = 0
    # constant parts (a class token): (position among the parts, shape without batch)
    consts: tuple[tuple[int, tuple[int, ...]], ...] = ()
    params: int = 0
    kind = "concat"


@dataclass(frozen=True)
class Scale:
    """Multiply by a constant (e.g. a traced ``x * gamma``)."""

    factor: float = 1.0
    kind = "scale"


@dataclass(frozen=True)
class Unsupported:
    """A traced operation the IR cannot model. Carries what tracing observed; never counted as 0.

    ``shape`` is the observed output shape (no batch), ``params`` the module's parameter count.
    """

    target: str
    shape: tuple[int, ...] | None = None
    params: int = 0
    reason: str = ""
    kind = "unsupported"


Op = (
    Input | Conv | Pool | GlobalPool | Act | BatchNorm | Dropout | Flatten | Linear | Softmax
    | Add | Concat | Scale | Unsupported | AdaptivePool | PReLU | Norm | ConvTranspose
    | Upsample | Pad | Binary | Reshape | Permute | Slice | Stack | Embedding | Reduce | Expand
    | MatMul | Attention | Normalize | Roll
)

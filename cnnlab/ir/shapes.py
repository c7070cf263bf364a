"""Shape inference over the IR: the output shape of every node for a given input shape.

One rule per op, each raising :class:`~cnnlab.common.errors.ShapeError` naming the layer and the
reason (kernel larger than its input, non-positive output, channel mismatch at an add...).
Shapes exclude the batch axis and are channels-first: ``(C, *spatial)``.

:func:`window_params` resolves a conv/pool's per-axis kernel, stride, dilation and explicit
padding for a concrete input -- the builder and the NumPy reference use it, so the meaning of
``"same"`` lives in one place (:func:`cnnlab.ir.graph.resolve_padding`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import graph as ir
from cnnlab.ir import scope
from cnnlab.ir.mix import mix_shape

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Window:
    """A conv/pool window resolved for a concrete input: one entry per spatial axis.

    The one window geometry of the project: the analyzer, the torch builder and the NumPy
    reference (:mod:`cnnlab.ref.conv`, :mod:`cnnlab.ref.pool`) all read it. ``size`` is the
    unpadded input size (empty when only the hyper-parameters were resolved) and
    ``out[i] = floor((size[i] + lo[i] + hi[i] - dilation[i](kernel[i]-1) - 1) / stride[i]) + 1``.
    """

    kernel: ir.Axes
    stride: ir.Axes
    dilation: ir.Axes
    pads: ir.Pads
    size: ir.Axes = ()

    @property
    def dims(self) -> int:
        return len(self.kernel)

    @property
    def span(self) -> ir.Axes:
        """Effective kernel extent ``d(k-1)+1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    @property
    def padded(self) -> ir.Axes:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.size, self.pads, strict=True))

    @property
    def out(self) -> ir.Axes:
        return tuple(ir.out_size(n, k, s, d, lo, hi) for n, k, s, d, (lo, hi) in zip(
            self.size, self.kernel, self.stride, self.dilation, self.pads, strict=True))

    def window(self, o: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the padded input read by output position ``o``."""
        return tuple(
            slice(i * s, i * s + sp, d)
            for i, s, sp, d in zip(o, self.stride, self.span, self.dilation, strict=True)
        )

    def tap(self, t: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the padded input that kernel tap ``t`` reads, across all outputs."""
        out = self.out
        return tuple(
            slice(j * d, j * d + s * (o - 1) + 1, s)
            for j, d, s, o in zip(t, self.dilation, self.stride, out, strict=True)
        )


def window_params(node: ir.Node, in_shape: Shape) -> Window:
    """The window of the conv/pool/transposed conv ``node`` on an input of ``in_shape``."""
    memo = scope.windows
    if memo is None:
        return _window_params(node, in_shape)
    try:
        key = (node.op, tuple(in_shape))
        found = memo.get(key)
    except TypeError:  # an unhashable field (a list): resolved every time
        return _window_params(node, in_shape)
    if found is None:
        found = memo[key] = _window_params(node, in_shape)
    return found


def _window_params(node: ir.Node, in_shape: Shape) -> Window:
    op = node.op
    if isinstance(op, ir.ConvTranspose):
        return _deconv_window(node, in_shape)
    dims = len(in_shape) - 1
    if dims < 1:
        raise ShapeError(node.name, f"{op.kind} needs a feature map (C, ...) but got a vector "
                         f"of shape {in_shape}; put it before flatten/fc")
    try:
        kernel = ir.broadcast(op.kernel, dims, "kernel")
        if isinstance(op, ir.Pool):
            stride = ir.broadcast(op.stride or op.kernel, dims, "stride")
            dilation = (1,) * dims
        else:
            stride = ir.broadcast(op.stride, dims, "stride")
            dilation = ir.broadcast(op.dilation, dims, "dilation")
        pads = ir.resolve_padding(op.padding, in_shape[1:], kernel, stride, dilation)
    except ValueError as e:
        raise ShapeError(node.name, f"{e}; give one value per axis or a single value") from None
    if any(v <= 0 for v in kernel + stride + dilation):
        raise ShapeError(node.name, "kernel, stride and dilation must be positive")
    return Window(kernel, stride, dilation, pads, tuple(in_shape[1:]))


def _deconv_window(node: ir.Node, in_shape: Shape) -> Window:
    """A transposed conv's kernel/stride/dilation; ``pads`` holds (padding, output_padding)."""
    op = node.op
    dims = len(in_shape) - 1
    if dims < 1:
        raise ShapeError(node.name, f"a transposed conv needs a feature map, got {in_shape}")
    try:
        kernel, stride, dilation, pad, opad = (ir.broadcast(v, dims, what) for v, what in (
            (op.kernel, "kernel"), (op.stride, "stride"), (op.dilation, "dilation"),
            (op.padding, "padding"), (op.output_padding, "output_padding")))
    except ValueError as e:
        raise ShapeError(node.name, f"{e}; give one value per axis or a single value") from None
    if any(v <= 0 for v in kernel + stride + dilation) or any(v < 0 for v in pad + opad):
        raise ShapeError(node.name, "kernel, stride and dilation must be positive, padding >= 0")
    return Window(kernel, stride, dilation, tuple(zip(pad, opad, strict=True)),
                  tuple(in_shape[1:]))


def deconv_out(n: int, k: int, s: int, d: int, p: int, op: int) -> int:
    """Output length of a transposed conv: ``(n-1)s - 2p + d(k-1) + output_padding + 1``."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def pool_out(n: int, k: int, s: int, lo: int, hi: int, ceil: bool) -> int:
    """torch's pooled length: floor (or ceil) of ``(n+lo+hi-k)/s`` + 1; in ceil mode the last
    window must start inside the input or the low padding."""
    if not ceil:
        return ir.out_size(n, k, s, 1, lo, hi)
    o = -(-(n + lo + hi - k) // s) + 1
    if (o - 1) * s >= n + lo:
        o -= 1
    return o


def upsample_size(op: ir.Upsample, size: Shape) -> tuple[int, ...]:
    """Output spatial size of an upsample: ``size`` or ``floor(n * scale)`` per axis."""
    dims = len(size)
    if op.size is not None:
        return ir.broadcast(tuple(op.size), dims, "size")
    scale = tuple(op.scale or (1.0,))
    scale = scale * dims if len(scale) == 1 else scale
    return tuple(int(math.floor(n * float(f))) for n, f in zip(size, scale, strict=True))


def broadcast_shapes(node: ir.Node, shapes: list[Shape]) -> Shape:
    """torch broadcasting of shapes (trailing axes aligned; 1 stretches)."""
    rank = max(len(s) for s in shapes)
    out = []
    for ax in range(rank):
        vals = {s[ax - rank + len(s)] for s in shapes if ax - rank + len(s) >= 0} - {1}
        if len(vals) > 1:
            raise ShapeError(node.name, f"cannot broadcast shapes {', '.join(map(str, shapes))}"
                             f": axis {ax} has sizes {sorted(vals)}")
        out.append(vals.pop() if vals else 1)
    return tuple(out)


_SHEET_OPS = frozenset((ir.Act, ir.BatchNorm, ir.Dropout, ir.Conv, ir.Pool, ir.Add,
                        ir.Linear, ir.Flatten, ir.GlobalPool))


def _other_shape(node: ir.Node, op: ir.Op, in_shapes: list[Shape]) -> Shape | None:
    """Shape rules of the ops beyond the sheets' (None: not one of them)."""
    if type(op) in _SHEET_OPS:  # none of the rules below: at once
        return None
    x = in_shapes[0] if in_shapes else ()
    mixed = mix_shape(node, in_shapes)
    if mixed is not None:
        return mixed
    if isinstance(op, ir.Concat) and op.consts:
        in_shapes = list(in_shapes)
        for pos, shape in op.consts:
            in_shapes.insert(pos, tuple(shape))
        x = in_shapes[0]
    if isinstance(op, ir.Roll):
        return x
    if isinstance(op, ir.Binary):
        extra = [tuple(op.const)] if op.const is not None else []
        if len(in_shapes) + len(extra) < 2 and op.fn not in ("pow",):
            raise ShapeError(node.name, f"{op.fn} needs two operands")
        return broadcast_shapes(node, list(in_shapes) + extra)
    if isinstance(op, ir.Expand):
        return broadcast_shapes(node, [x, tuple(op.shape)])
    if isinstance(op, ir.Reduce):
        axes = {a % len(x) for a in op.axes}
        return tuple(1 if i in axes else n for i, n in enumerate(x)
                     if op.keepdim or i not in axes)
    if isinstance(op, ir.Stack):
        if any(s != x for s in in_shapes):
            raise ShapeError(node.name, f"cannot stack shapes {in_shapes}: they must be equal")
        ax = op.axis % (len(x) + 1)
        return x[:ax] + (len(in_shapes),) + x[ax:]
    if isinstance(op, ir.Concat) and (op.axis != 0 or len(in_shapes) == 1 or op.consts):
        ax = op.axis % len(x)
        for s in in_shapes[1:]:
            if len(s) != len(x) or s[:ax] + s[ax + 1:] != x[:ax] + x[ax + 1:]:
                raise ShapeError(node.name, f"cannot concatenate {x} and {s} along axis {ax}")
        return x[:ax] + (sum(s[ax] for s in in_shapes),) + x[ax + 1:]
    if len(in_shapes) != 1 or not isinstance(op, (
            ir.AdaptivePool, ir.PReLU, ir.Norm, ir.ConvTranspose, ir.Upsample, ir.Pad,
            ir.Reshape, ir.Permute, ir.Slice, ir.Embedding)):
        return None
    if isinstance(op, ir.ConvTranspose):
        w = window_params(node, x)
        if op.groups < 1 or x[0] % op.groups or op.out_channels % op.groups:
            raise ShapeError(node.name, f"groups={op.groups} must divide both the input "
                             f"channels ({x[0]}) and the filters ({op.out_channels})")
        sizes = tuple(deconv_out(n, k, s, d, p, o) for n, k, s, d, (p, o) in zip(
            x[1:], w.kernel, w.stride, w.dilation, w.pads, strict=True))
        if any(v <= 0 for v in sizes):
            raise ShapeError(node.name, f"output size {sizes} is not positive; less padding")
        return (op.out_channels,) + sizes
    if isinstance(op, ir.AdaptivePool):
        size = ir.broadcast(tuple(op.size), len(x) - 1, "size")
        if any(n < 1 for n in size):
            raise ShapeError(node.name, f"adaptive pool to {size}: every output size must be "
                             ">= 1 (a 0 leaves an empty tensor)")
        return (x[0],) + size
    if isinstance(op, ir.Upsample):
        return (x[0],) + upsample_size(op, x[1:])
    if isinstance(op, ir.Pad):
        dims = len(x) - len(op.pads)
        sizes = tuple(n + lo + hi for n, (lo, hi) in zip(x[dims:], op.pads, strict=True))
        if dims < 0 or any(v <= 0 for v in sizes):
            raise ShapeError(node.name, f"padding {op.pads} does not fit the input {x}")
        return x[:dims] + sizes
    if isinstance(op, ir.Reshape):
        if math.prod(op.shape) != math.prod(x):
            raise ShapeError(node.name, f"cannot reshape {x} to {op.shape}: sizes differ")
        return tuple(op.shape)
    if isinstance(op, ir.Permute):
        if sorted(op.perm) != list(range(len(x))):
            raise ShapeError(node.name, f"permutation {op.perm} does not fit the input {x}")
        return tuple(x[i] for i in op.perm)
    if isinstance(op, ir.Slice):
        ax = op.axis % len(x)
        if not 0 <= op.start < op.stop <= x[ax] or op.step < 1:
            raise ShapeError(node.name, f"slice {op.start}:{op.stop} outside axis {ax} of {x}")
        return x[:ax] + (len(range(op.start, op.stop, op.step)),) + x[ax + 1:]
    if isinstance(op, ir.Embedding):
        return tuple(x) + (op.dim,)
    if isinstance(op, ir.Norm) and op.norm == "group" and x[0] % op.groups:
        raise ShapeError(node.name, f"{op.groups} groups do not divide {x[0]} channels")
    return x  # prelu, norm: element-wise


def _window_out(node: ir.Node, in_shape: Shape, w: Window) -> tuple[int, ...]:
    sizes = []
    for ax, (n, k, s, d, (lo, hi)) in enumerate(
        zip(in_shape[1:], w.kernel, w.stride, w.dilation, w.pads, strict=True)
    ):
        o = ir.out_size(n, k, s, d, lo, hi)
        if o <= 0 or n + lo + hi < d * (k - 1) + 1:
            raise ShapeError(
                node.name,
                f"kernel {d * (k - 1) + 1} (axis {ax}) is larger than its padded input "
                f"{n + lo + hi}; use a smaller kernel, padding=same, or a larger input",
            )
        sizes.append(o)
    return tuple(sizes)


#: element-wise ops of one input (exact types; the ops are final classes): the rules below
#: end in ``return x`` for them
SAME_SHAPE = frozenset((ir.Act, ir.BatchNorm, ir.Dropout, ir.Scale, ir.Softmax))


def node_shape(node: ir.Node, in_shapes: list[Shape]) -> Shape:
    """Output shape of ``node`` given the shapes of its inputs."""
    op = node.op
    if type(op) in SAME_SHAPE and len(in_shapes) == 1:  # most rows of a CNN: at once
        return in_shapes[0]
    if isinstance(op, ir.Input):
        raise ShapeError(node.name, "the input's shape is given, not inferred")
    other = _other_shape(node, op, in_shapes)
    if other is not None:
        return other
    if isinstance(op, ir.Add | ir.Concat):
        if len(in_shapes) < 2:
            raise ShapeError(node.name, f"{op.kind} needs at least two inputs")
        first = in_shapes[0]
        if isinstance(op, ir.Add):
            for s in in_shapes[1:]:
                if s != first:
                    raise ShapeError(node.name, f"cannot add shapes {first} and {s}: the "
                                     "branches must produce the same shape (channels, size)")
            return first
        for s in in_shapes[1:]:
            if s[1:] != first[1:]:
                raise ShapeError(node.name, f"cannot concatenate {first} and {s}: spatial "
                                 "sizes differ; use padding=same in the branches")
        return (sum(s[0] for s in in_shapes),) + first[1:]
    if isinstance(op, ir.Unsupported):
        # a traced op may take any number of inputs (x * mask, matmul); its shape was observed
        if op.shape is None:
            raise ShapeError(node.name, f"unsupported op {op.target} with unknown shape")
        return tuple(op.shape)
    if len(in_shapes) != 1:
        raise ShapeError(node.name, f"{op.kind} takes one input, got {len(in_shapes)}")
    x = in_shapes[0]
    if isinstance(op, ir.Conv):
        w = window_params(node, x)
        cin = x[0]
        if op.groups < 1 or cin % op.groups or op.out_channels % op.groups:
            raise ShapeError(node.name, f"groups={op.groups} must divide both the input "
                             f"channels ({cin}) and the filters ({op.out_channels})")
        if op.out_channels < 1:
            raise ShapeError(node.name, "a conv needs at least one filter")
        return (op.out_channels,) + _window_out(node, x, w)
    if isinstance(op, ir.Pool):
        w = window_params(node, x)
        sizes = _window_out(node, x, w)
        if op.ceil:
            sizes = tuple(pool_out(n, k, s, lo, hi, True) for n, k, s, (lo, hi) in zip(
                x[1:], w.kernel, w.stride, w.pads, strict=True))
        return (x[0],) + sizes
    if isinstance(op, ir.GlobalPool):
        if len(x) < 2:
            raise ShapeError(node.name, f"global pooling needs a feature map, got {x}")
        return (x[0],) + ((1,) * (len(x) - 1) if op.keepdim else ())
    if isinstance(op, ir.Flatten):
        return (math.prod(x),)
    if isinstance(op, ir.Linear):
        if op.out_features < 1:
            raise ShapeError(node.name, "a fully connected layer needs at least one output")
        return (*x[:-1], op.out_features) if op.last else (op.out_features,)
    # element-wise: act, batchnorm, dropout, softmax, scale
    return x


def infer_shapes(graph: ir.Graph, input_shape: Shape) -> dict[str, Shape]:
    """Output shape of every node, in graph order; raises ShapeError on the first bad layer."""
    if not input_shape or any(int(v) <= 0 for v in input_shape):
        raise ShapeError("input", f"input shape {input_shape} must be positive, e.g. 1x28x28")
    if (any(int(v) > MAX_INPUT_SIZE for v in input_shape)
            or math.prod(int(v) for v in input_shape) > MAX_INPUT_ELEMENTS):
        raise ShapeError("input", f"input shape {tuple(input_shape)} is too large (at most "
                         f"{MAX_INPUT_SIZE:,} per axis, {MAX_INPUT_ELEMENTS:,} values)")
    shapes: dict[str, Shape] = {}
    for node in graph.nodes:
        if isinstance(node.op, ir.Input):
            shapes[node.name] = tuple(int(v) for v in input_shape)
            continue
        shapes[node.name] = node_shape(node, [shapes[i] for i in node.inputs])
    return shapes


def parse_input(text: str, layout: str = "nchw") -> tuple[tuple[int, ...], str]:
    """``"3x224x224"`` -> ((3, 224, 224), "float32"); ``"50:int64"`` -> ((50,), "int64"):
    token ids for a net that starts with an embedding (the dtype after a colon)."""
    sizes, _, dtype = (text or "").partition(":")
    dtype = dtype.strip() or "float32"
    known = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
             "uint8", "long", "int")
    if dtype not in known:
        raise CnnlabError(f"--input {text!r}: unknown dtype {dtype!r}; use e.g. 50:int64 for "
                          f"50 token ids or 3x224x224 for an image ({', '.join(known)})")
    return parse_shape(sizes, layout), {"long": "int64", "int": "int64"}.get(dtype, dtype)


#: Bounds on ``--input``: the analysis is arithmetic, but its receptive-field bookkeeping is
#: linear in each axis's length, so a bound per axis keeps any input to about a second and
#: 160 MB (2**20 samples is a minute of 16 kHz audio; 2**40 values a 1M x 1M image).
MAX_INPUT_SIZE = 1 << 20
MAX_INPUT_ELEMENTS = 1 << 40


def parse_shape(text: str, layout: str = "nchw") -> tuple[int, ...]:
    """``"1x28x28"`` -> (1, 28, 28); with layout nhwc ``"28x28x1"`` -> (1, 28, 28)."""
    num = r"\s*[+-]?[0-9]+\s*"  # ASCII digits: '²' and '٣' are not sizes
    if not re.fullmatch(rf"{num}([x,]{num})*", text or ""):
        raise CnnlabError(f"--input {text!r}: expected sizes joined by 'x', e.g. 1x28x28 "
                          "(channels x height x width)")
    words = re.split(r"\s*[x,]\s*", text.strip())
    # more than 18 digits is over any bound (and int() refuses 4,300 digits)
    dims = tuple(int(v) if len(v.lstrip("+-0")) <= 18 else -1 if v.startswith("-")
                 else MAX_INPUT_ELEMENTS + 1 for v in words)
    if any(d <= 0 for d in dims):
        raise CnnlabError(f"--input {text!r}: every size must be >= 1, got "
                          f"{next(d for d in dims if d <= 0)}")
    if any(d > MAX_INPUT_SIZE for d in dims) or math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise CnnlabError(f"--input {text!r}: too large (at most {MAX_INPUT_SIZE:,} per axis "
                          f"and {MAX_INPUT_ELEMENTS:,} values per example), e.g. 3x224x224")
    if layout == "nhwc" and len(dims) > 1:
        dims = (dims[-1], *dims[:-1])
    return dims


INPUT_FORM = "--input is CxHxW, e.g. 1x28x28; for HxWxC use --layout nhwc"


def input_hint(text: str, layout: str = "nchw") -> str:
    """What a shape error under ``--input text`` most likely means, for the error message: a
    missing channel axis (``28x28``), channels last (``28x28x1``), else the expected form."""
    try:
        dims = [int(v) for v in re.split(r"\s*[x,]\s*", text.partition(":")[0].strip())]
    except ValueError:
        return INPUT_FORM
    if layout == "nhwc":
        if len(dims) == 2:
            return (f"--input {text} has no channel axis: with --layout nhwc give HxWxC, "
                    f"e.g. {dims[0]}x{dims[1]}x1")
        return "with --layout nhwc, --input is HxWxC, e.g. 28x28x1"
    if len(dims) == 2:
        return (f"--input {text} has no channel axis: {INPUT_FORM}; a grey "
                f"{dims[0]}x{dims[1]} image is 1x{dims[0]}x{dims[1]}")
    if len(dims) == 3 and dims[2] in (1, 3, 4) and dims[0] > 4:
        return (f"--input {text} looks channels-last (HxWxC): {INPUT_FORM} "
                f"(or give {dims[2]}x{dims[0]}x{dims[1]})")
    return INPUT_FORM


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
    op = node.op
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


def node_shape(node: ir.Node, in_shapes: list[Shape]) -> Shape:
    """Output shape of ``node`` given the shapes of its inputs."""
    op = node.op
    if isinstance(op, ir.Input):
        raise ShapeError(node.name, "the input's shape is given, not inferred")
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
        return (x[0],) + _window_out(node, x, w)
    if isinstance(op, ir.GlobalPool):
        if len(x) < 2:
            raise ShapeError(node.name, f"global pooling needs a feature map, got {x}")
        return (x[0],)
    if isinstance(op, ir.Flatten):
        return (math.prod(x),)
    if isinstance(op, ir.Linear):
        if op.out_features < 1:
            raise ShapeError(node.name, "a fully connected layer needs at least one output")
        return (op.out_features,)
    # element-wise: act, batchnorm, dropout, softmax, scale
    return x


def infer_shapes(graph: ir.Graph, input_shape: Shape) -> dict[str, Shape]:
    """Output shape of every node, in graph order; raises ShapeError on the first bad layer."""
    if not input_shape or any(int(v) <= 0 for v in input_shape):
        raise ShapeError("input", f"input shape {input_shape} must be positive, e.g. 1x28x28")
    shapes: dict[str, Shape] = {}
    for node in graph.nodes:
        if isinstance(node.op, ir.Input):
            shapes[node.name] = tuple(int(v) for v in input_shape)
            continue
        shapes[node.name] = node_shape(node, [shapes[i] for i in node.inputs])
    return shapes


def parse_shape(text: str, layout: str = "nchw") -> tuple[int, ...]:
    """``"1x28x28"`` -> (1, 28, 28); with layout nhwc ``"28x28x1"`` -> (1, 28, 28)."""
    if not re.fullmatch(r"\s*\d+(\s*[x,]\s*\d+)*\s*", text or ""):
        raise CnnlabError(f"--input {text!r}: expected sizes joined by 'x', e.g. 1x28x28 "
                          "(channels x height x width)")
    dims = tuple(int(v) for v in re.split(r"\s*[x,]\s*", text.strip()))
    if any(d <= 0 for d in dims):
        raise CnnlabError(f"--input {text!r}: every size must be positive")
    if layout == "nhwc" and len(dims) > 1:
        dims = (dims[-1], *dims[:-1])
    return dims

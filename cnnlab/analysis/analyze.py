"""The analyzer: per-layer numbers of an IR graph, returned as data (dataclasses).

For each node: output shape, receptive field and jump (effective stride) per spatial axis,
parameters (weights + biases), multiplications (MACs), FLOPs and activation memory; totals
with a training-memory estimate; with ``compare=True`` the parameter counts of the
locally-connected and fully-connected layers that have the same connectivity as each conv
(ETH Problem 2). Rendering lives in :mod:`cnnlab.analysis.render`.

The receptive-field recurrence and its treatment of joins and vector layers are in
:mod:`cnnlab.analysis.receptive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cnnlab.analysis.costs import other_cost, other_desc, other_params
from cnnlab.analysis.field import Field, input_field
from cnnlab.analysis.receptive import check_field_work, node_field
from cnnlab.analysis.units import BYTES
from cnnlab.ir import graph as ir
from cnnlab.ir.scope import analysis_scope
from cnnlab.ir.shapes import Shape, infer_shapes, window_params


@dataclass(frozen=True)
class Compare:
    """One conv layer against the layers with the same connectivity but less sharing.

    ``local``: locally connected (same windows, weights not shared, one bias per output unit);
    ``full``: fully connected with the same number of outputs (one bias per output unit).
    """

    conv: int
    local: int
    full: int
    conv_weights: int
    local_weights: int
    full_weights: int
    #: the symbols of ETH Problem 2: input channels and spatial sides, kernel sides, output
    #: sides, output channels (K), groups, whether there are biases
    channels: int = 0
    in_sides: tuple[int, ...] = ()
    kernel: tuple[int, ...] = ()
    out_sides: tuple[int, ...] = ()
    kernels: int = 0
    groups: int = 1
    bias: bool = True

    @property
    def conv_over_local(self) -> float:
        return self.conv / self.local

    @property
    def conv_over_full(self) -> float:
        return self.conv / self.full

    @property
    def weights_conv_over_local(self) -> float:
        return self.conv_weights / self.local_weights

    @property
    def weights_conv_over_full(self) -> float:
        return self.conv_weights / self.full_weights


@dataclass
class LayerStats:
    """The numbers of one node. MACs/FLOPs/memory are for the whole batch.

    ``macs``/``flops`` are ``None`` (never 0) for an op the IR cannot model.
    """

    name: str
    kind: str
    desc: str
    inputs: tuple[str, ...]
    output_shape: Shape
    rf: tuple[int, ...] | None
    jump: tuple[int | Fraction, ...] | None  # a fraction after upsampling (1/2)
    weights: int
    biases: int
    macs: int | None
    flops: int | None
    activations: int
    supported: bool = True
    compare: Compare | None = None
    # "whole input" when every unit sees all that was read (SE gate, group norm); else, when
    # rf is None, the one-line reason
    rf_note: str = ""
    shared: int = 0  # parameter values counted at an earlier row (``shared_with``)
    shared_with: str = ""
    # per output axis (no batch): the image axis it runs along, None for a feature axis
    layout: tuple[int | None, ...] | None = None

    @property
    def params(self) -> int:
        return self.weights + self.biases

    def memory(self, precision: str = "fp32") -> int:
        """Bytes of this layer's output for the batch."""
        return self.activations * BYTES[precision]


@dataclass
class Totals:
    params: int
    weights: int
    biases: int
    macs: int
    flops: int
    activations: int
    param_bytes: int
    activation_bytes: dict[str, int]
    train_memory_bytes: int
    complete: bool  # False when some op was unsupported: MACs/FLOPs are then lower bounds


@dataclass
class Analysis:
    """Result of :func:`analyze`: per-layer rows and totals; ``str()`` is the terminal table."""

    input_shape: Shape
    batch: int
    layers: list[LayerStats]
    total: Totals
    source: str = ""
    unsupported: list[str] = field(default_factory=list)
    # parameters of a captured module that no row uses in forward: (path, values)
    unused: tuple[tuple[str, int], ...] = ()

    def layer(self, name: str) -> LayerStats:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        from cnnlab.analysis.render import to_dict

        return to_dict(self)

    def __str__(self) -> str:
        from cnnlab.analysis.render import table

        return table(self)

    def _repr_html_(self) -> str:
        from cnnlab.analysis.render import html

        return html(self)


# ------------------------------------------------------------------------- per-op rules


def _desc(node: ir.Node, in_shape: Shape) -> str:
    op = node.op
    other = other_desc(op, in_shape)
    if other is not None:
        return other
    if isinstance(op, ir.Conv | ir.Pool):
        w = window_params(node, in_shape)
        k = "x".join(map(str, w.kernel))
        parts = [f"{k}" + (f"x{op.out_channels}" if isinstance(op, ir.Conv) else "")]
        if any(s != 1 for s in w.stride) or isinstance(op, ir.Pool):
            parts.append("s" + "x".join(map(str, w.stride)))
        if isinstance(op, ir.Conv) and any(d != 1 for d in w.dilation):
            parts.append("d" + "x".join(map(str, w.dilation)))
        if isinstance(op, ir.Conv) and op.groups != 1:
            parts.append(f"g{op.groups}")
        pad = op.padding if isinstance(op.padding, str) else "p" + ",".join(
            f"{lo}" if lo == hi else f"{lo}:{hi}" for lo, hi in w.pads)
        if pad != "valid":
            parts.append(pad)
        if isinstance(op, ir.Pool) and op.exclude_pad:
            parts.append("excl. pad")
        name = "conv" if isinstance(op, ir.Conv) else f"{op.op}pool"
        return f"{name} " + " ".join(parts)
    if isinstance(op, ir.Linear):
        return f"fc {op.out_features}" + ("" if op.bias else " nobias") + \
            (" (last axis)" if op.last else "")
    if isinstance(op, ir.Act):
        return op.fn
    if isinstance(op, ir.Dropout):
        return f"dropout p={op.p:g}"
    if isinstance(op, ir.Add):
        return "add" + (f" x{op.gamma:.4g}" if op.gamma != 1.0 else "")
    if isinstance(op, ir.Scale):
        return f"scale x{op.factor:g}"
    if isinstance(op, ir.GlobalPool):
        return f"global {op.op}pool"
    if isinstance(op, ir.Unsupported):
        return f"unsupported: {op.target}" + (f" ({op.reason})" if op.reason else "")
    if isinstance(op, ir.Pool) and op.ceil:
        return _desc(ir.Node(node.name, ir.Pool(op.op, op.kernel, op.stride, op.padding)),
                     in_shape) + " ceil"
    return op.kind


def _params(node: ir.Node, in_shape: Shape) -> tuple[int, int]:
    """(weights, biases) of one op."""
    op = node.op
    if isinstance(op, ir.Conv):
        k = math.prod(window_params(node, in_shape).kernel)
        bias = op.out_channels * op.bias if op.params is None else min(
            op.params, op.out_channels * op.bias)  # a fixed filter in a buffer: none
        if op.params is not None:
            return op.params - bias, bias
        return op.out_channels * (in_shape[0] // op.groups) * k, bias
    if isinstance(op, ir.Linear):
        fan_in = in_shape[-1] if op.last else math.prod(in_shape)
        if op.params is not None:  # a bias or weight partly fixed (not learned)
            return op.params - min(op.params, op.out_features * op.bias), min(
                op.params, op.out_features * op.bias)
        return fan_in * op.out_features, op.out_features * op.bias
    other = other_params(op, in_shape)
    if other is not None:
        return other
    if isinstance(op, ir.BatchNorm):
        # gamma, beta (running stats are buffers)
        return in_shape[0] * op.scale, in_shape[0] * op.center
    if isinstance(op, ir.Unsupported):
        return op.params, 0
    return 0, 0


def _cost(node: ir.Node, in_shapes: list[Shape], out: Shape) -> tuple[int | None, int | None]:
    """(MACs, FLOPs) per sample. FLOPs count every arithmetic op; see docs/analyze.md."""
    op = node.op
    n_out = math.prod(out)
    x = in_shapes[0] if in_shapes else ()
    other = other_cost(node, in_shapes, out)
    if other is not None:
        return other
    if isinstance(op, ir.Conv):
        w = window_params(node, x)
        macs = n_out * (x[0] // op.groups) * math.prod(w.kernel)
        return macs, 2 * macs
    if isinstance(op, ir.Linear):
        macs = n_out * (x[-1] if op.last else math.prod(x))
        return macs, 2 * macs
    if isinstance(op, ir.Pool):
        k = math.prod(window_params(node, x).kernel)
        if op.op == "max":
            return 0, n_out * (k - 1)
        return n_out, n_out * k  # k-1 additions and one multiplication by 1/k per output
    if isinstance(op, ir.GlobalPool):
        k = math.prod(x[1:])
        return (0, n_out * (k - 1)) if op.op == "max" else (n_out, n_out * k)
    if isinstance(op, ir.BatchNorm):
        return n_out, 2 * n_out  # inference: y = a*x + b per element
    if isinstance(op, ir.Act):
        return 0, (0 if op.fn == "identity" else n_out)
    if isinstance(op, ir.Add):
        extra = n_out if op.gamma != 1.0 else 0
        return extra, n_out * (len(in_shapes) - 1) + extra
    if isinstance(op, ir.Scale):
        return n_out, n_out
    if isinstance(op, ir.Softmax):
        return n_out, 3 * n_out  # exp, sum, divide
    if isinstance(op, ir.Unsupported):
        return None, None
    return 0, 0  # input, flatten, concat, dropout (eval): data movement only


def _compare(node: ir.Node, in_shape: Shape, out: Shape) -> Compare:
    op = node.op
    n_out = math.prod(out)
    fan_in = (in_shape[0] // op.groups) * math.prod(window_params(node, in_shape).kernel)
    conv_w = op.out_channels * fan_in
    local_w = n_out * fan_in
    full_w = math.prod(in_shape) * n_out
    conv_b = op.out_channels if op.bias else 0
    unit_b = n_out if op.bias else 0
    return Compare(conv_w + conv_b, local_w + unit_b, full_w + unit_b, conv_w, local_w, full_w,
                   channels=in_shape[0], in_sides=tuple(in_shape[1:]),
                   kernel=tuple(window_params(node, in_shape).kernel),
                   out_sides=tuple(out[1:]), kernels=op.out_channels, groups=op.groups,
                   bias=bool(op.bias))


# ------------------------------------------------------------------------- the pass


def analyze_graph(graph: ir.Graph, input_shape: Shape, batch: int = 1,
                  compare: bool = False, optimizer_states: int = 2) -> Analysis:
    """Analyze ``graph`` for inputs of ``input_shape`` (channels first, no batch).

    ``optimizer_states``: extra fp32 copies of the parameters kept by the optimizer for the
    training-memory estimate (2 for Adam, 1 for momentum SGD, 0 for plain SGD).
    """
    if batch < 1:
        from cnnlab.common.errors import CnnlabError

        raise CnnlabError(f"batch must be >= 1, got {batch}")
    with analysis_scope():
        return _analyze(graph, input_shape, batch, compare, optimizer_states)


def _analyze(graph: ir.Graph, input_shape: Shape, batch: int, compare: bool,
             optimizer_states: int) -> Analysis:
    shapes = infer_shapes(graph, input_shape)
    tokens = isinstance(graph.nodes[0].op, ir.Input) and graph.nodes[0].op.tokens
    image = tuple(input_shape) if tokens else tuple(input_shape[1:])
    check_field_work(shapes, len(image))
    fields: dict[str, Field | str] = {}
    rows: list[LayerStats] = []
    unsupported: list[str] = []
    # a field holds a value per unit of each image axis: drop it after its last reader, so
    # memory is one (or a few, across branches) field(s) deep, not layers x input size
    last_use = {i: n for n, node in enumerate(graph.nodes) for i in node.inputs}
    joins: dict = {}  # node_field's memo for this analysis
    for n, node in enumerate(graph.nodes):
        out = shapes[node.name]
        if isinstance(node.op, ir.Input):
            fields[node.name] = input_field(image, tokens)
            rows.append(LayerStats(node.name, "input", "input" + (
                f" tokens ({node.op.dtype})" if tokens else ""), (), out, (1,) * len(image),
                (1,) * len(image), 0, 0, 0, 0, batch * math.prod(out)))
            continue
        in_shapes = [shapes[i] for i in node.inputs]
        x = in_shapes[0] if in_shapes else ()
        fld = node_field(node, [fields[i] for i in node.inputs], in_shapes, out, image, joins)
        fields[node.name] = fld
        for i in set(node.inputs):
            if last_use[i] == n:
                del fields[i]
        weights, biases = _params(node, x)
        # a parameter tensor used by several nodes is counted at its first use
        dup = min(node.shared, weights + biases)
        weights, biases = weights - min(dup, weights), biases - max(dup - weights, 0)
        known = not isinstance(fld, str)
        macs, flops = _cost(node, in_shapes, out)
        supported = not isinstance(node.op, ir.Unsupported)
        if not supported:
            unsupported.append(node.name)
        rows.append(LayerStats(
            name=node.name, kind=node.op.kind, desc=_desc(node, x), inputs=node.inputs,
            output_shape=out,
            rf=fld.rf if known and image else None,
            jump=fld.jump if known and not fld.vector and image else None,
            weights=weights, biases=biases,
            macs=None if macs is None else macs * batch,
            flops=None if flops is None else flops * batch,
            activations=batch * math.prod(out), supported=supported,
            compare=_compare(node, x, out) if compare and isinstance(node.op, ir.Conv)
            else None,
            rf_note=fld if not known else _note(node.op, fld, image),
            shared=dup, shared_with=node.shared_with,
            layout=fld.axes if known else None,
        ))
    return Analysis(tuple(input_shape), batch, rows, _totals(rows, optimizer_states),
                    graph.source, unsupported, tuple(graph.unused))


def _note(op: ir.Op, fld: Field, image: tuple[int, ...]) -> str:
    """"whole input" when every unit sees all that was read; an attention row sees its
    attention window (the whole input when its tokens are the whole image)."""
    if isinstance(op, ir.Attention):
        return "whole input" if image and fld.rf == image else "attention window"
    return "whole input" if fld.whole and not fld.vector else ""


def _totals(rows: list[LayerStats], optimizer_states: int) -> Totals:
    weights = sum(r.weights for r in rows)
    biases = sum(r.biases for r in rows)
    params = weights + biases
    acts = sum(r.activations for r in rows)
    # training keeps every node's output for backward, plus weights, grads, optimizer state
    train = 4 * params * (2 + optimizer_states) + 4 * acts
    return Totals(
        params=params, weights=weights, biases=biases,
        macs=sum(r.macs or 0 for r in rows), flops=sum(r.flops or 0 for r in rows),
        activations=acts, param_bytes=4 * params,
        activation_bytes={p: acts * b for p, b in BYTES.items()},
        train_memory_bytes=train, complete=all(r.supported for r in rows),
    )

"""The PyTorch builder: IR graph -> ``torch.nn.Module``.

Each IR node becomes a submodule named after the node (``model.layers["conv1"]`` is the
``nn.Conv2d`` of node ``conv1``), so the analyzer's rows, checkpoints and the NumPy reference
all speak of the same names. Shapes come from :mod:`cnnlab.ir.shapes`; the padding arithmetic is
:func:`cnnlab.ir.shapes.window_params`, never re-derived here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import infer_shapes, window_params

_ACT = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU,
    "leakyrelu": nn.LeakyReLU, "softplus": nn.Softplus, "identity": nn.Identity,
    "relu6": nn.ReLU6, "silu": nn.SiLU, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
    "mish": nn.Mish, "selu": nn.SELU, "celu": nn.CELU, "softsign": nn.Softsign,
    "hardtanh": nn.Hardtanh, "logsigmoid": nn.LogSigmoid, "tanhshrink": nn.Tanhshrink,
    "softshrink": nn.Softshrink, "hardshrink": nn.Hardshrink, "rrelu": nn.RReLU,
}
# element-wise functions without a module of their own (clamp's bounds are not in the IR)
_UNARY = ("abs", "neg", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "sin", "cos",
          "erf", "floor", "round", "sign")


class Call(nn.Module):
    """A tensor method or torch function with fixed arguments (the batch axis is kept):
    ``Call("permute", 0, 2, 1)`` runs ``x.permute(0, 2, 1)``; a callable ``fn`` runs
    ``fn(*xs, *args)``."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if isinstance(self.fn, str):
            return getattr(xs[0], self.fn)(*self.args, **self.kwargs)
        return self.fn(*xs, *self.args, **self.kwargs)


class Batched(nn.Module):
    """``x.view/expand(N, *shape)``: the IR's shapes have no batch axis."""

    def __init__(self, method: str, shape: tuple[int, ...]):
        super().__init__()
        self.method, self.shape = method, tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(x, self.method)(x.shape[0], *self.shape)


_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
           "pow": torch.pow, "max": torch.maximum, "min": torch.minimum}


class BinaryOp(nn.Module):
    """``x op y`` (broadcasting), or ``x op c`` with a constant ``c`` of the op's neutral value
    (a parameter when the traced one was: its values are not in the IR)."""

    def __init__(self, op: ir.Binary):
        super().__init__()
        self.fn, self.reverse = _BINARY[op.fn], op.reverse
        value = None
        if op.const is not None:
            one = op.fn in ("mul", "div", "pow")
            value = torch.ones(op.const) if one else torch.zeros(op.const)
        if value is not None and op.params:
            self.const = nn.Parameter(value)
        else:
            self.register_buffer("const", value)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.const is None:
            return self.fn(xs[0], xs[1])
        return self.fn(self.const, xs[0]) if self.reverse else self.fn(xs[0], self.const)


def _other(node: ir.Node, x: tuple[int, ...]) -> nn.Module | None:
    """Modules of the ops traced modules bring (None: not one of them)."""
    op = node.op
    dims = len(x) - 1
    if isinstance(op, ir.PReLU):
        return nn.PReLU(op.num_parameters)
    if isinstance(op, ir.Norm):
        if op.norm == "layer":
            return nn.LayerNorm(op.shape, eps=op.eps, elementwise_affine=op.affine,
                                bias=op.bias)
        if op.norm == "rms":
            return nn.RMSNorm(op.shape, eps=op.eps, elementwise_affine=op.affine)
        if op.norm == "group":
            return nn.GroupNorm(op.groups, x[0], eps=op.eps, affine=op.affine)
        cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims]
        return cls(x[0], eps=op.eps, affine=op.affine, track_running_stats=op.running)
    if isinstance(op, ir.ConvTranspose):
        w = window_params(node, x)
        cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
        return cls(x[0], op.out_channels, w.kernel, w.stride, tuple(p for p, _ in w.pads),
                   tuple(o for _, o in w.pads), op.groups, op.bias, w.dilation)
    if isinstance(op, ir.Upsample):
        mode = op.mode if op.mode != "linear" else {1: "linear", 2: "bilinear",
                                                    3: "trilinear"}[dims]
        align = op.align_corners if op.mode in ("linear", "bicubic") else None
        return nn.Upsample(op.size, op.scale, mode, align)
    if isinstance(op, ir.AdaptivePool):
        kind = "Avg" if op.op == "avg" else "Max"
        return getattr(nn, f"Adaptive{kind}Pool{dims}d")(tuple(op.size))
    if isinstance(op, ir.Pad):
        flat = tuple(v for lo_hi in reversed(op.pads) for v in lo_hi)
        kw = {"value": op.value} if op.mode == "constant" else {}
        return Call(F.pad, flat, op.mode, **kw)
    if isinstance(op, ir.Binary):
        return BinaryOp(op)
    if isinstance(op, ir.Reshape):
        return Batched("reshape", op.shape)
    if isinstance(op, ir.Expand):
        return Batched("expand", op.shape)
    if isinstance(op, ir.Permute):
        return Call("permute", 0, *(p + 1 for p in op.perm))
    if isinstance(op, ir.Slice) and op.step != 1:
        return Call("__getitem__", (slice(None),) * (op.axis + 1) + (slice(op.start, op.stop,
                                                                          op.step),))
    if isinstance(op, ir.Slice):
        return Call("narrow", op.axis + 1, op.start, op.stop - op.start)
    if isinstance(op, ir.Concat) and op.consts:  # the constant (a class token) is not in the IR
        raise CnnlabError(f"layer {node.name}: cannot build a concat with a constant part")
    if isinstance(op, ir.Stack):
        return Call(lambda *xs, dim: torch.stack(xs, dim), dim=op.axis + 1)
    if isinstance(op, ir.Concat) and (op.axis != 0 or len(node.inputs) == 1):
        return Call(lambda *xs, dim: torch.cat(xs, dim), dim=op.axis + 1)
    if isinstance(op, ir.Reduce) and op.fn in ("var", "std"):
        return Call(op.fn, tuple(a + 1 for a in op.axes), keepdim=op.keepdim,
                    correction=op.correction)
    if isinstance(op, ir.Reduce):
        return Call(op.fn, tuple(a + 1 for a in op.axes), keepdim=op.keepdim)
    if isinstance(op, ir.Embedding):
        return nn.Embedding(op.num, op.dim)
    if isinstance(op, ir.Act) and op.fn in _UNARY:
        return Call(op.fn)
    if isinstance(op, ir.Act) and op.fn == "threshold":
        return nn.Threshold(0.0, 0.0)
    return None


class Pad(nn.Module):
    """Asymmetric padding before a conv/pool (torch's own ``padding=`` is symmetric only)."""

    def __init__(self, pads: ir.Pads, value: float = 0.0):
        super().__init__()
        # F.pad wants the last axis first: (W_lo, W_hi, H_lo, H_hi, ...)
        self.pad = tuple(v for lo_hi in reversed(pads) for v in lo_hi)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad, value=self.value)


class FlattenLinear(nn.Module):
    """``nn.Linear`` on a flattened input: TF's Dense after reshape, as the sheets write it."""

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))  # (N, C*H*W) -> (N, out)


class Join(nn.Module):
    def __init__(self, op: ir.Add | ir.Concat):
        super().__init__()
        self.concat = isinstance(op, ir.Concat)
        self.gamma = getattr(op, "gamma", 1.0)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.concat:
            return torch.cat(xs, dim=1)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out if self.gamma == 1.0 else self.gamma * out


class ScaleBy(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class GlobalPoolModule(nn.Module):
    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.dim()))
        return x.amax(dim=dims) if self.op == "max" else x.mean(dim=dims)


def _window_module(node: ir.Node, in_shape: tuple[int, ...]) -> nn.Module:
    op = node.op
    dims = len(in_shape) - 1
    w = window_params(node, in_shape)
    symmetric = all(lo == hi for lo, hi in w.pads)
    pad = tuple(lo for lo, _ in w.pads) if symmetric else 0
    if isinstance(op, ir.Conv):
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}.get(dims)
        if cls is None:
            raise CnnlabError(f"layer {node.name}: {dims}D convolution is not supported by torch")
        core = cls(in_shape[0], op.out_channels, w.kernel, stride=w.stride, padding=pad,
                   dilation=w.dilation, groups=op.groups, bias=op.bias)
        fill = 0.0
    else:
        # torch pools reject padding > kernel/2, and AvgPool3d an input smaller than the
        # kernel even when padded; pad explicitly in those cases
        if symmetric and all(2 * p <= k for p, k in zip(pad, w.kernel, strict=True)) and all(
                n >= k for n, k in zip(in_shape[1:], w.kernel, strict=True)):
            pass
        else:
            symmetric, pad = False, 0
        if op.op == "max":
            cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[dims]
            core = cls(w.kernel, stride=w.stride, padding=pad, ceil_mode=op.ceil)
            fill = float("-inf")
        else:
            cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
            # count_include_pad=True: padded zeros count, as in a conv with a box kernel
            if op.exclude_pad and not symmetric:
                raise CnnlabError(f"layer {node.name}: cannot build an average pool that "
                                  "excludes asymmetric or oversized padding")
            core = cls(w.kernel, stride=w.stride, padding=pad,
                       count_include_pad=not op.exclude_pad, ceil_mode=op.ceil)
            fill = 0.0
    if symmetric:
        return core
    return nn.Sequential(Pad(w.pads, fill), core)


def _module(node: ir.Node, in_shapes: list[tuple[int, ...]]) -> nn.Module:
    op = node.op
    x = in_shapes[0] if in_shapes else ()
    other = _other(node, x)
    if other is not None:
        return other
    if isinstance(op, ir.Linear) and op.last:
        return nn.Linear(x[-1], op.out_features, bias=op.bias)
    if isinstance(op, ir.Softmax) and (op.axis or op.log):
        return (nn.LogSoftmax if op.log else nn.Softmax)(dim=op.axis + 1)
    if isinstance(op, ir.GlobalPool) and op.keepdim:
        return getattr(nn, f"Adaptive{'Avg' if op.op == 'avg' else 'Max'}Pool{len(x) - 1}d")(1)
    if isinstance(op, ir.Conv | ir.Pool):
        return _window_module(node, x)
    if isinstance(op, ir.Linear):
        n_in = 1
        for v in x:
            n_in *= v
        if len(x) == 1:
            return nn.Linear(n_in, op.out_features, bias=op.bias)
        return FlattenLinear(n_in, op.out_features, op.bias)
    if isinstance(op, ir.Act):
        if op.fn not in _ACT:
            raise CnnlabError(f"layer {node.name}: cannot build activation {op.fn} (its "
                              "arguments are not in the IR)")
        return _ACT[op.fn]()
    if isinstance(op, ir.BatchNorm):
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(x)]
        if op.scale != op.center:
            raise CnnlabError(f"layer {node.name}: torch has no batchnorm with only "
                              f"{'gamma' if op.scale else 'beta'}")
        return cls(x[0], eps=op.eps, momentum=op.momentum, affine=op.scale)
    if isinstance(op, ir.Dropout):
        return nn.Dropout(op.p)
    if isinstance(op, ir.Flatten):
        return nn.Flatten(1)
    if isinstance(op, ir.Softmax):
        return nn.Softmax(dim=1)
    if isinstance(op, ir.GlobalPool):
        return GlobalPoolModule(op.op)
    if isinstance(op, ir.Add | ir.Concat):
        return Join(op)
    if isinstance(op, ir.Scale):
        return ScaleBy(op.factor)
    raise CnnlabError(f"layer {node.name}: cannot build {op.kind} ({getattr(op, 'target', '')})")


def layer_key(name: str) -> str:
    """The ``GraphNet.layers`` key of a node: its name, with ``/`` for the ``.`` of a traced
    module path (a module name cannot contain a dot)."""
    return name.replace(".", "/")


class GraphNet(nn.Module):
    """Runs an IR graph: nodes in topological order, each fed by the outputs it names.

    A purely sequential graph runs as a plain loop without the value dictionary.
    """

    def __init__(self, graph: ir.Graph, input_shape: tuple[int, ...]):
        super().__init__()
        self.graph = graph
        self.input_shape = tuple(input_shape)
        shapes = infer_shapes(graph, input_shape)
        self.layers = nn.ModuleDict()
        self._plan: list[tuple[str, tuple[str, ...]]] = []
        for node in graph.nodes[1:]:
            self.layers[layer_key(node.name)] = _module(node, [shapes[i] for i in node.inputs])
            self._plan.append((layer_key(node.name), tuple(map(layer_key, node.inputs))))
        self._sequential = graph.is_sequential() and graph.out == graph.nodes[-1].name
        self._out = graph.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sequential:
            for layer in self.layers.values():
                x = layer(x)
            return x
        values = {layer_key(self.graph.nodes[0].name): x}
        for name, inputs in self._plan:
            values[name] = self.layers[name](*(values[i] for i in inputs))
        return values[layer_key(self._out)]

    def layer(self, name: str) -> nn.Module:
        """The module of IR node ``name`` (traced names such as ``layer1.0.conv1`` are stored
        under :func:`layer_key`)."""
        return self.layers[layer_key(name)]


def build(graph: ir.Graph, input_shape: tuple[int, ...], seed: int | None = None) -> GraphNet:
    """Build the ``nn.Module`` of ``graph`` for inputs of ``input_shape`` (no batch axis)."""
    if seed is not None:
        torch.manual_seed(seed)
    return GraphNet(graph, tuple(input_shape))

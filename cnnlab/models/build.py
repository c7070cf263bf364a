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
}


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
            core = cls(w.kernel, stride=w.stride, padding=pad)
            fill = float("-inf")
        else:
            cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
            # count_include_pad=True: padded zeros count, as in a conv with a box kernel
            core = cls(w.kernel, stride=w.stride, padding=pad, count_include_pad=True)
            fill = 0.0
    if symmetric:
        return core
    return nn.Sequential(Pad(w.pads, fill), core)


def _module(node: ir.Node, in_shapes: list[tuple[int, ...]]) -> nn.Module:
    op = node.op
    x = in_shapes[0] if in_shapes else ()
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
        return _ACT[op.fn]()
    if isinstance(op, ir.BatchNorm):
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(x)]
        return cls(x[0], eps=op.eps, momentum=op.momentum)
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
            self.layers[node.name] = _module(node, [shapes[i] for i in node.inputs])
            self._plan.append((node.name, node.inputs))
        self._sequential = graph.is_sequential() and graph.out == graph.nodes[-1].name
        self._out = graph.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sequential:
            for layer in self.layers.values():
                x = layer(x)
            return x
        values = {self.graph.nodes[0].name: x}
        for name, inputs in self._plan:
            values[name] = self.layers[name](*(values[i] for i in inputs))
        return values[self._out]


def build(graph: ir.Graph, input_shape: tuple[int, ...], seed: int | None = None) -> GraphNet:
    """Build the ``nn.Module`` of ``graph`` for inputs of ``input_shape`` (no batch axis)."""
    if seed is not None:
        torch.manual_seed(seed)
    return GraphNet(graph, tuple(input_shape))

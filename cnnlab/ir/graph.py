"""The intermediate representation (IR): a typed graph of layers, the single source of truth.

A spec string, a TOML/JSON file or a traced ``torch.nn.Module`` becomes a :class:`Graph`; the
analyzer (numbers), the PyTorch builder (``nn.Module``) and the NumPy reference
(forward/backward) all read it and never re-derive its meaning.

Tensors are described without the batch axis, channels first: ``(C,)`` for vectors,
``(C, L)``, ``(C, H, W)``, ``(C, T, H, W)`` for 1D/2D/3D feature maps.

Every layer is a frozen dataclass (in :mod:`cnnlab.ir.ops`, re-exported here). Per-axis
hyper-parameters (kernel, stride, dilation) are tuples with one entry per spatial axis
*after* :func:`resolve` has broadcast scalars to the input's rank; before that a 1-tuple
means "same value on every axis".

Padding of a conv or pool is either a mode or explicit:
  * ``"valid"`` -- no padding; output ``floor((n - d(k-1) - 1)/s) + 1``
  * ``"same"``  -- TF/Keras rule: output ``ceil(n/s)``, total padding
                  ``max((ceil(n/s)-1)s + d(k-1) + 1 - n, 0)`` split low = total//2, high = rest
  * ``"full"``  -- ``d(k-1)`` on both sides; output ``n + d(k-1)`` for stride 1
  * explicit   -- a tuple of ``(low, high)`` pairs, one per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cnnlab.ir.ops import (
    ACTIVATIONS,
    BINARY,
    TRACED_ACTIVATIONS,
    Act,
    AdaptivePool,
    Add,
    Attention,
    Axes,
    BatchNorm,
    Binary,
    Concat,
    Conv,
    ConvTranspose,
    Dropout,
    Embedding,
    Expand,
    Flatten,
    GlobalPool,
    Input,
    Linear,
    MatMul,
    Norm,
    Normalize,
    Op,
    Pad,
    Padding,
    PadMode,
    Pads,
    Permute,
    Pool,
    PReLU,
    Reduce,
    Reshape,
    Roll,
    Scale,
    Slice,
    Softmax,
    Stack,
    Unsupported,
    Upsample,
)

# the ops are part of the graph's API: `from cnnlab.ir.graph import Conv` keeps working
__all__ = [
    "ACTIVATIONS",
    "Act",
    "AdaptivePool",
    "Add",
    "Attention",
    "Axes",
    "BINARY",
    "BatchNorm",
    "Binary",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Dropout",
    "Embedding",
    "Expand",
    "Flatten",
    "GlobalPool",
    "Graph",
    "Input",
    "Linear",
    "MatMul",
    "Node",
    "Norm",
    "Normalize",
    "Op",
    "PReLU",
    "Pad",
    "PadMode",
    "Padding",
    "Pads",
    "Permute",
    "Pool",
    "Reduce",
    "Reshape",
    "Roll",
    "Scale",
    "Slice",
    "Softmax",
    "Stack",
    "TRACED_ACTIVATIONS",
    "Unsupported",
    "Upsample",
    "base_name",
    "broadcast",
    "out_size",
    "resolve_padding",
]

@dataclass(frozen=True)
class Node:
    """One vertex: a named op applied to the outputs of ``inputs`` (node names)."""

    name: str
    op: Op
    inputs: tuple[str, ...] = ()
    # the spec token / module path this node came from, for error messages
    origin: str = ""
    # parameter values of this node already counted at the node ``shared_with`` (a module
    # called twice, a tied weight): the analyzer counts them once, at their first use
    shared: int = 0
    shared_with: str = ""


@dataclass
class Graph:
    """A DAG of nodes in topological order; the first node is the :class:`Input`.

    ``output`` names the node whose value the network returns (default: the last one).
    """

    nodes: list[Node] = field(default_factory=list)
    output: str | None = None
    source: str = ""
    # parameters of a captured module that no node uses in forward: (path, values)
    unused: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [Node("input", Input())]

    @property
    def out(self) -> str:
        return self.output or self.nodes[-1].name

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def add(self, op: Op, inputs: tuple[str, ...] | str | None = None, name: str | None = None,
            origin: str = "") -> str:
        """Append ``op`` (fed by ``inputs``, default: the last node) and return its name."""
        if inputs is None:
            inputs = (self.nodes[-1].name,)
        elif isinstance(inputs, str):
            inputs = (inputs,)
        if name is None:
            base = base_name(op)
            idx = 1 + sum(1 for n in self.nodes if base_name(n.op) == base)
            name = f"{base}{idx}"
            taken = {n.name for n in self.nodes}
            while name in taken:
                idx += 1
                name = f"{base}{idx}"
        self.nodes.append(Node(name, op, tuple(inputs), origin))
        return name

    def is_sequential(self) -> bool:
        return all(
            n.inputs == (self.nodes[i - 1].name,) for i, n in enumerate(self.nodes) if i > 0
        )


# ---------------------------------------------------------------- per-axis helpers


def base_name(op: Op) -> str:
    """Short name used for auto-numbered nodes, in the sheets' words: conv1, maxpool1, fc1."""
    if isinstance(op, Linear):
        return "fc"
    if isinstance(op, Act):
        return op.fn
    if isinstance(op, Pool):
        return f"{op.op}pool"
    if isinstance(op, GlobalPool):
        return f"global{op.op}pool"
    if isinstance(op, BatchNorm):
        return "bn"
    return op.kind


def broadcast(values: Axes | None, dims: int, what: str = "value") -> Axes:
    """Broadcast a 1-tuple to ``dims`` axes; a tuple of another length must match exactly."""
    if values is None:
        return (1,) * dims
    if len(values) == 1:
        return tuple(values) * dims
    if len(values) != dims:
        raise ValueError(f"{what} has {len(values)} axes but the input has {dims} spatial axes")
    return tuple(values)


def resolve_padding(padding: Padding, size: Axes, kernel: Axes, stride: Axes,
                    dilation: Axes) -> Pads:
    """Explicit ``(low, high)`` padding per axis for a mode or an explicit value."""
    dims = len(size)
    if isinstance(padding, str):
        out = []
        for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
            span = d * (k - 1) + 1
            if padding == "valid":
                out.append((0, 0))
            elif padding == "full":
                out.append((span - 1, span - 1))
            elif padding == "same":
                o = math.ceil(n / s)
                total = max((o - 1) * s + span - n, 0)
                out.append((total // 2, total - total // 2))
            else:
                raise ValueError(f"unknown padding mode {padding!r}")
        return tuple(out)
    if len(padding) == 1 and dims > 1:
        return tuple(padding) * dims
    if len(padding) != dims:
        raise ValueError(f"padding has {len(padding)} axes but the input has {dims}")
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def out_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    """Output length of a window op: ``floor((n + lo + hi - d(k-1) - 1) / s) + 1``."""
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


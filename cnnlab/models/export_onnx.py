"""Any cnnlab architecture -> an ONNX file (``cnnlab export ARCH --to onnx``).

The IR is built as a PyTorch module (:func:`cnnlab.models.build.build`, seeded) and written by
``torch.onnx.export`` (the TorchScript exporter, opset 17, a dynamic batch axis). Before
export every parameter or buffer whose values are all equal (batch norm's ones and zeros, a
PReLU slope) is given random values: otherwise the exporter merges equal tensors into one
initializer, and the file would no longer say which layer owns which parameter. The ONNX
nodes are renamed after the IR nodes that produced them (``conv1``; a second node of the same
layer ``conv1.<op>``), so ``cnnlab analyze model.onnx`` shows the same row names. Batch norm
stays a ``BatchNormalization`` node (``TrainingMode.PRESERVE`` on the eval-mode module: the
exporter's eval mode would fold it into the conv before it, changing the parameter count).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import write_bytes
from cnnlab.ir import graph as ir
from cnnlab.models.build import GraphNet, build, layer_key

OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise CnnlabError("writing ONNX models needs onnx: pip install 'cnnlab[onnx]'") from None
    return onnx


def distinct_values(net: torch.nn.Module, seed: int = 0) -> None:
    """Give random values to every float tensor of ``net`` whose values are all equal."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.is_floating_point() and t.numel() and bool((t == t.reshape(-1)[0]).all()):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen, dtype=t.dtype))


def onnx_model(graph: ir.Graph, input_shape: tuple[int, ...], seed: int = 0
               ) -> tuple[GraphNet, Any]:
    """The seeded torch module of ``graph`` and its ONNX model (nodes named after the IR)."""
    onnx = _onnx()
    net = build(graph, input_shape, seed=seed).eval()
    distinct_values(net, seed)
    dtype = torch.long if graph.nodes[0].op.tokens else torch.float32
    x = torch.zeros((1, *input_shape), dtype=dtype)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              training=torch.onnx.TrainingMode.PRESERVE,
                              do_constant_folding=True)
        except Exception as e:  # the exporter's own errors name an op it cannot write
            line = " ".join(str(e).split())[:200]
            raise CnnlabError(f"torch.onnx cannot export this model ({type(e).__name__}: "
                              f"{line})") from None
    model = onnx.load_from_string(buf.getvalue())
    rename_nodes(model, graph)
    model.graph.name = graph.source or "cnnlab"
    return net, model


def rename_nodes(model: Any, graph: ir.Graph) -> None:
    """``/layers/conv1/Conv`` -> ``conv1`` (the IR node's name); the other nodes of one layer
    ``conv1.<op>``."""
    keys = {layer_key(n.name): n.name for n in graph.nodes}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        parts = [p for p in node.name.strip("/").split("/")[:-1] if p]
        if parts and parts[0] == "layers":
            parts = parts[1:]
        owner = next((keys["/".join(parts[:k])] for k in range(len(parts), 0, -1)
                      if "/".join(parts[:k]) in keys), None)
        if owner is not None:
            groups.setdefault(owner, []).append(node)
    taken: set[str] = set()
    for owner, nodes in groups.items():
        for i, node in enumerate(nodes):
            name = owner if i == len(nodes) - 1 else f"{owner}.{node.op_type.lower()}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def export_onnx(graph: ir.Graph, input_shape: tuple[int, ...], out: str | Path,
                seed: int = 0) -> Path:
    """Write the ONNX file of ``graph`` (atomically) and return its path."""
    _, model = onnx_model(graph, input_shape, seed)
    path = Path(out)
    write_bytes(path, model.SerializeToString())
    return path

"""An ONNX model -> IR graph (``cnnlab analyze model.onnx``).

ONNX tensors are ``(N, C, *spatial)`` like the IR's (less the batch). Shapes come from
``onnx.shape_inference`` run with the batch fixed to 1 (and the input sizes from ``input`` when
the file leaves them open); the hyper-parameters of each node (kernel, strides, pads, groups)
from its attributes and the shapes of its weight initializers. Only nodes on the data path
(fed, through other such nodes, by the graph's input) become rows: shape arithmetic
(``Shape``, ``Gather`` on shapes, ``Constant``...) is folded away. Parameters are the
initializers the rows use, except batch norm's running statistics (buffers, as in torch) and
scalar constants; an initializer used by several nodes is counted once (``shared_with``).
The op rules are in :mod:`cnnlab.ir.onnx_ops`.
"""

from __future__ import annotations

import math
import os
from typing import Any

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Shape, node_shape

MISSING = "reading or writing ONNX models needs onnx: pip install 'cnnlab[onnx]'"


def onnx_module() -> Any:
    try:
        import onnx
    except ImportError:
        raise CnnlabError(MISSING) from None
    return onnx


def load_onnx(path: str) -> Any:
    """Read an ``.onnx`` file (with its external data) with a one-line error."""
    onnx = onnx_module()
    if not os.path.isfile(path):
        raise CnnlabError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as e:  # DecodeError, ValidationError, OSError...
        line = " ".join(str(e).split())[:200]
        raise CnnlabError(f"{path}: not a valid ONNX model ({type(e).__name__}: {line})"
                          ) from None
    return model


def node_name(node: Any, index: int) -> str:
    """``/layer1/conv1/Conv`` (torch's scope names) -> ``layer1.conv1``; else the node's name
    or ``<optype><index>``."""
    name = node.name or f"{node.op_type.lower()}{index}"
    if name.startswith("/"):
        parts = [p for p in name.strip("/").split("/") if p]
        if len(parts) > 1 and parts[-1].split("_")[0] == node.op_type:
            parts = parts[:-1]
        name = ".".join(parts) or node.op_type.lower()
    return name


class OnnxImporter:
    """Walks the data path of an ONNX graph; ``outputs`` maps ONNX tensor names to IR values."""

    def __init__(self, model: Any, shapes: dict[str, tuple[int, ...]]):
        from onnx import numpy_helper

        self.model = model
        self.inits = {t.name: t for t in model.graph.initializer}
        self.np = numpy_helper
        self.onnx_shapes = shapes
        self.consts: dict[str, Any] = {}
        self.graph = ir.Graph()
        self.shapes: dict[str, Shape] = {}
        self.outputs: dict[str, str] = {}
        self.used: dict[str, str] = {}  # initializer -> first IR node using it
        self.users: dict[str, list[Any]] = {}
        for n in model.graph.node:
            for i in n.input:
                self.users.setdefault(i, []).append(n)
        self.skip: set[str] = set()  # first outputs of ONNX nodes folded into another
        self.folded: set[str] = set()  # ONNX tensors with no row of their own

    # ------------------------------------------------------------------ helpers for rules
    def const(self, name: str) -> Any | None:
        """The value of a constant input (initializer, Constant node, or folded), or None."""
        if name in self.inits:
            return self.np.to_array(self.inits[name])
        return self.consts.get(name)

    def is_data(self, name: str) -> bool:
        return name in self.outputs

    def oshape(self, tensor: str) -> Shape:
        """The inferred shape of an ONNX tensor without its batch axis."""
        s = self.onnx_shapes.get(tensor)
        if s is None:
            raise CnnlabError(f"ONNX tensor {tensor!r} has no inferred shape")
        return tuple(s[1:])

    def add(self, op: ir.Op, inputs: list[str], name: str, origin: str = "",
            weights: tuple[str, ...] = ()) -> str:
        taken = {n.name for n in self.graph.nodes}
        base, i = name, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        shared, first = 0, ""
        for w in weights:
            if w in self.used:
                shared += math.prod(self.inits[w].dims)
                first = first or self.used[w]
            else:
                self.used[w] = name
        self.graph.nodes.append(ir.Node(name, op, tuple(inputs), origin, shared, first))
        self.shapes[name] = node_shape(self.graph.nodes[-1], [self.shapes[v] for v in inputs])
        return name

    def shape(self, value: str) -> Shape:
        return self.shapes[value]

    # ------------------------------------------------------------------ the walk
    def run(self, input_name: str) -> str:
        from cnnlab.ir.onnx_ops import convert

        self.outputs[input_name] = "input"
        for index, node in enumerate(self.model.graph.node):
            if node.output and node.output[0] in self.skip:
                continue
            data = [i for i in node.input if i and self.is_data(i)]
            if not data or node.op_type in ("Shape", "Size"):
                self._fold_constant(node)
                continue
            name = node_name(node, index)
            try:
                outs = convert(self, node, name)
            except (ShapeError, CnnlabError) as e:
                raise CnnlabError(f"ONNX node {node.name or index} ({node.op_type}): {e}"
                                  ) from None
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise CnnlabError(f"ONNX node {node.name or index} ({node.op_type}): cannot "
                                  f"import it ({type(e).__name__}: {e})") from None
            for t, v in zip(node.output, outs, strict=False):
                if t and v:
                    self.outputs[t] = v
        out = self.model.graph.output[0].name
        if out not in self.outputs:
            raise CnnlabError(f"the ONNX output {out!r} does not depend on the input")
        return self.outputs[out]

    def _fold_constant(self, node: Any) -> None:
        """Evaluate a node off the data path (shape arithmetic: ``Shape`` of a data tensor is
        its inferred shape) with ONNX's reference implementation; unknown inputs: skip."""
        import numpy as np

        if node.op_type in ("Shape", "Size") and node.input[0] in self.outputs:
            full = np.array((1, *self.shape(self.outputs[node.input[0]])), dtype=np.int64)
            a = {t.name: t for t in node.attribute}
            if node.op_type == "Size":
                self.consts[node.output[0]] = np.array(full.prod(), dtype=np.int64)
                return
            start = a["start"].i if "start" in a else 0
            end = a["end"].i if "end" in a else len(full)
            self.consts[node.output[0]] = full[start:end]
            return
        feeds = {}
        for t in node.input:
            if t:
                v = self.const(t)
                if v is None:
                    return
                feeds[t] = v
        from onnx.reference import ReferenceEvaluator

        try:
            outs = ReferenceEvaluator(node).run(None, feeds)
        except Exception:  # an op the reference cannot run: its outputs stay unknown
            return
        for t, v in zip(node.output, outs, strict=False):
            self.consts[t] = np.asarray(v)


def _light_copy(model: Any) -> Any:
    """A copy for shape inference in which large float weights are typed graph inputs (no
    data): inference needs their shapes only, and copying VGG-16's 550 MB would take seconds."""
    from onnx import TensorProto, helper

    m = type(model)()
    m.CopyFrom(type(model)(ir_version=model.ir_version, opset_import=model.opset_import))
    g = type(model.graph)()
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(g, field).extend(getattr(model.graph, field))
    g.name = model.graph.name
    have = {i.name for i in g.input}
    for t in model.graph.initializer:
        if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE) and len(
                t.dims) and int(math.prod(t.dims)) > 64:
            if t.name not in have:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, t.dims))
        else:
            g.initializer.append(t)
    m.graph.CopyFrom(g)
    return m


def _inferred_shapes(model: Any, input_shape: Shape | None) -> tuple[dict[str, tuple], Shape,
                                                                     str]:
    onnx = onnx_module()
    from onnx import TensorProto

    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    m = _light_copy(model)
    if len(inputs) != 1:
        raise CnnlabError(f"the ONNX model has {len(inputs)} inputs; cnnlab analyzes models "
                          "with one input")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    given = [d.dim_value if d.HasField("dim_value") else None for d in dims][1:]
    shape = tuple(input_shape) if input_shape is not None else tuple(given)
    if any(v is None or v <= 0 for v in shape) or len(shape) != len(given):
        raise CnnlabError(f"the ONNX input {inp.name!r} has sizes {given}; give --input with "
                          f"{len(given)} sizes, e.g. --input 3x224x224")
    for d, v in zip(dims, (1, *shape), strict=True):
        d.Clear()
        d.dim_value = int(v)
    for o in m.graph.output:  # let inference recompute the outputs with the fixed batch
        o.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception as e:
        raise CnnlabError(f"ONNX shape inference failed: {' '.join(str(e).split())[:200]}"
                          ) from None
    out: dict[str, tuple] = {}
    for vi in [*m.graph.value_info, *m.graph.output, *m.graph.input]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    elem = inp.type.tensor_type.elem_type
    dtype = "int64" if elem in (TensorProto.INT64, TensorProto.INT32) else "float32"
    return out, tuple(int(v) for v in shape), dtype


def from_onnx(model: Any, input_shape: Shape | None = None
              ) -> tuple[ir.Graph, Shape, dict[str, str]]:
    """The IR of an ONNX model, its input shape (no batch) and, per ONNX tensor on the data
    path, the IR value holding it. ``input_shape`` overrides the file's (needed when the file
    leaves sizes other than the batch open)."""
    shapes, shape, dtype = _inferred_shapes(model, input_shape)
    imp = OnnxImporter(model, shapes)
    imp.graph = ir.Graph([ir.Node("input", ir.Input(dtype))])
    imp.shapes["input"] = shape
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    imp.graph.output = imp.run(inp.name)
    imp.graph.source = f"onnx:{model.graph.name or 'model'}"
    return imp.graph, shape, {t: v for t, v in imp.outputs.items() if t not in imp.folded}

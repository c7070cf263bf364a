"""A Keras model (``.keras`` file or live ``keras.Model``) -> IR graph.

Keras 3 runs on the PyTorch backend (``KERAS_BACKEND=torch`` is set here when unset, before
keras is imported), so no TensorFlow is needed. The functional graph is walked node by node
(``Sequential`` through its functional form, nested models inline); each layer becomes the IR
ops of :mod:`cnnlab.ir.keras_layers`, named after the layer (extra rows of one layer are
``<layer>.<part>``). Keras tensors are channels-last, the IR channels-first: ``(H, W, C)`` is
read as ``(C, H, W)``.

Two folds undo what ``cnnlab export --to keras`` has to write: a ``ZeroPadding`` layer named
``<X>_pad`` feeding only layer ``X`` (a conv or pool with ``valid`` padding) becomes X's explicit
padding, and a ``Flatten`` named ``<X>_flatten`` feeding only the Dense layer ``X`` becomes the
IR's flattening fc layer -- so export, import and analyze give the same table.
"""

from __future__ import annotations

import math
import os
from typing import Any

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import graph as ir
from cnnlab.ir import keras_layers as kl
from cnnlab.ir.shapes import Shape, node_shape

MISSING = "reading or writing Keras models needs keras: pip install 'cnnlab[keras]'"


def keras_module() -> Any:
    """``import keras`` on the PyTorch backend, or a one-line error naming the extra."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise CnnlabError(MISSING) from None
    return keras


def is_keras_model(obj: Any) -> bool:
    """Whether ``obj`` is a Keras model (checked without importing keras)."""
    return any(c.__module__.split(".")[0] == "keras" and c.__name__ in (
        "Model", "Functional", "Sequential") for c in type(obj).__mro__)


def load_keras(path: str) -> Any:
    """Read a ``.keras`` file (safe mode: no arbitrary code) with a one-line error."""
    keras = keras_module()
    if not os.path.isfile(path):
        raise CnnlabError(f"{path}: no such Keras file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # keras raises ValueError, OSError, zipfile errors...
        line = " ".join(str(e).split())[:200]
        raise CnnlabError(f"{path}: cannot read this Keras model ({type(e).__name__}: {line});"
                          " save it with model.save('model.keras') in Keras 3") from None


class KerasImporter:
    """Builds the IR of one Keras model; ``outputs`` maps every Keras layer (and op) name to
    the IR value it produced (a folded padding or flatten has none)."""

    def __init__(self, keras: Any):
        self.keras = keras
        self.graph = ir.Graph()
        self.shapes: dict[str, Shape] = {}
        self.tensors: dict[int, str] = {}
        self.outputs: dict[str, str] = {}
        self.folded_pads: dict[int, ir.Pads] = {}
        self.folded_flat: set[int] = set()
        self.seen_layers: dict[int, str] = {}

    # ---------------------------------------------------------------- the Emitter protocol
    def add(self, op: ir.Op, inputs: list[str] | str, name: str, origin: str = "") -> str:
        taken = {n.name for n in self.graph.nodes}
        base, i = name, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        self.graph.add(op, tuple(inputs), name, origin)
        self.shapes[name] = node_shape(self.graph.nodes[-1], [self.shapes[v] for v in inputs])
        return name

    def shape(self, value: str) -> Shape:
        return self.shapes[value]

    # ---------------------------------------------------------------- traversal
    def run(self, model: Any, inputs: list[str]) -> list[str]:
        func = model if hasattr(model, "_nodes_by_depth") else getattr(model, "_functional",
                                                                          None)
        if func is None:
            raise CnnlabError(f"Keras model {model.name!r} is not built; give its input shape "
                              "(keras.Input(shape=...) as its first layer, or --input)")
        for t, v in zip(self.keras.tree.flatten(func.inputs), inputs, strict=True):
            self.tensors[id(t)] = v
        users: dict[int, list[Any]] = {}
        nodes = [n for d in sorted(func._nodes_by_depth, reverse=True)
                 for n in func._nodes_by_depth[d] if not n.is_input]
        for node in nodes:
            for t in node.arguments.keras_tensors:
                users.setdefault(id(t), []).append(node)
        for node in nodes:
            self.node(node, users)
        return [self.tensors[id(t)] for t in self.keras.tree.flatten(func.outputs)]

    def node(self, node: Any, users: dict[int, list[Any]]) -> None:
        op = node.operation
        args = node.arguments.keras_tensors
        ins = [self.tensors[id(t)] for t in args]
        outs = self.keras.tree.flatten(node.outputs)
        name = op.name
        try:
            if isinstance(op, self.keras.Model):
                res = self.run(op, ins)
            elif isinstance(op, self.keras.layers.Layer):
                start = len(self.graph.nodes)
                res = [self.layer(op, ins, args, outs, users)]
                self.share(op, start)
            else:
                res = [self.operation(op, node, ins, outs)]
        except ShapeError:
            raise
        except CnnlabError as e:
            raise CnnlabError(f"Keras layer {name} ({type(op).__name__}): {e}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise CnnlabError(f"Keras layer {name} ({type(op).__name__}): cannot import it "
                              f"({type(e).__name__}: {e})") from None
        for t, v in zip(outs, res, strict=False):
            self.tensors[id(t)] = v
        if not any(id(t) in self.folded_pads or id(t) in self.folded_flat for t in outs):
            self.outputs[name] = res[0]

    def share(self, layer: Any, start: int) -> None:
        """A layer called a second time reuses its weights: its rows count them once."""
        if id(layer) not in self.seen_layers:
            self.seen_layers[id(layer)] = self.graph.nodes[start].name if len(
                self.graph.nodes) > start else ""
            return
        total = kl.weight_count(layer)
        for i in range(start, len(self.graph.nodes)):
            n = self.graph.nodes[i]
            self.graph.nodes[i] = ir.Node(n.name, n.op, n.inputs, n.origin, total,
                                          self.seen_layers[id(layer)])

    def _fold(self, layer: Any, args: list[Any], outs: list[Any],
              users: dict[int, list[Any]], suffix: str, kinds: tuple[str, ...]) -> bool:
        """Is ``layer`` cnnlab export's ``<X><suffix>`` feeding only the layer ``X``?"""
        if not layer.name.endswith(suffix) or len(outs) != 1:
            return False
        after = users.get(id(outs[0]), [])
        if len(after) != 1:
            return False
        nxt = after[0].operation
        return nxt.name == layer.name[: -len(suffix)] and type(nxt).__name__.startswith(kinds) \
            and str(getattr(nxt, "padding", "valid")).lower() == "valid"

    def layer(self, layer: Any, ins: list[str], args: list[Any], outs: list[Any],
              users: dict[int, list[Any]]) -> str:
        cls, name = type(layer).__name__, layer.name
        x = ins[0] if ins else ""
        arg = id(args[0]) if args else 0
        if cls.startswith(("Conv", "DepthwiseConv", "SeparableConv")):
            return kl.convert_conv(self, layer, x, name, self.folded_pads.get(arg))
        if cls.startswith(("MaxPooling", "AveragePooling")):
            return kl.convert_pool(self, layer, x, name, self.folded_pads.get(arg))
        if cls.startswith(("ZeroPadding", "Cropping")):
            crop = cls.startswith("Cropping")
            if not crop and self._fold(layer, args, outs, users, "_pad",
                                       ("Conv", "AveragePooling", "MaxPooling")):
                self.folded_pads[id(outs[0])] = kl.keras_pads(layer, len(self.shape(x)) - 1)
                return x
            return kl.convert_pad(self, layer, x, name, crop)
        if cls == "Flatten" and self._fold(layer, args, outs, users, "_flatten", ("Dense",)):
            self.folded_flat.add(id(outs[0]))
            return x
        if cls == "Dense":
            return kl.convert_dense(self, layer, x, name, arg in self.folded_flat)
        simple = self.simple(layer, cls, ins)
        if simple is not None:
            return simple
        shape = kl.to_ir_shape(tuple(outs[0].shape[1:])) if outs else ()
        if any(v is None for v in shape):
            shape = self.shape(x)
        return self.add(ir.Unsupported(cls, shape, kl.weight_count(layer),
                                       "no IR rule for this Keras layer"), ins, name, cls)

    def simple(self, layer: Any, cls: str, ins: list[str]) -> str | None:
        """The layers that become one or two plain IR ops (None: not one of them)."""
        name, x = layer.name, ins[0] if ins else ""
        rank = len(self.shape(x)) if x else 0
        if cls in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                   "GaussianDropout", "AlphaDropout"):
            return self.add(ir.Dropout(float(layer.rate)), x, name, cls)
        if cls in ("Identity", "GaussianNoise", "ActivityRegularization", "Masking"):
            return x
        if cls == "Activation":
            return kl.activation(self, x, layer.activation, name, cls)
        if cls == "ReLU":
            return kl.convert_relu(self, layer, x, name)
        if cls in ("LeakyReLU", "ELU"):
            return self.add(ir.Act("leakyrelu" if cls == "LeakyReLU" else "elu"), x, name, cls)
        if cls == "PReLU":
            return self.add(ir.PReLU(kl.weight_count(layer)), x, name, cls)
        if cls == "Softmax":
            axis = kl.as_tuple(layer.axis)[0]
            return self.add(ir.Softmax(kl.ir_axis(axis, rank)), x, name, cls)
        if cls.startswith(("GlobalAveragePooling", "GlobalMaxPooling")):
            op = "max" if "Max" in cls else "avg"
            return self.add(ir.GlobalPool(op, bool(layer.keepdims)), x, name, cls)
        if cls == "BatchNormalization":
            if kl.ir_axis(int(layer.axis), rank) != 0:
                return None
            return self.add(ir.BatchNorm(float(layer.epsilon), 1.0 - float(layer.momentum),
                                         bool(layer.scale), bool(layer.center)), x, name, cls)
        if cls in ("Add", "Average"):
            return self.add(ir.Add(1.0 if cls == "Add" else 1.0 / len(ins)), ins, name, cls)
        if cls in ("Subtract", "Multiply", "Maximum", "Minimum"):
            fn = {"Subtract": "sub", "Multiply": "mul", "Maximum": "max", "Minimum": "min"}[cls]
            out = ins[0]
            for i, other in enumerate(ins[1:]):
                last = i == len(ins) - 2
                out = self.add(ir.Binary(fn), [out, other], name if last else f"{name}.{i}",
                               cls)
            return out
        if cls == "Concatenate":
            return self.add(ir.Concat(kl.ir_axis(int(layer.axis), rank)), ins, name, cls)
        if cls == "Flatten":
            return self.add(ir.Flatten(), x, name, cls)
        if cls == "Reshape":
            return kl.convert_reshape(self, layer, x, name)
        if cls == "Permute":
            return kl.convert_permute(self, layer, x, name)
        if cls.startswith("UpSampling"):
            return kl.convert_upsample(self, layer, x, name)
        if cls == "LayerNormalization":
            return kl.convert_layernorm(self, layer, x, name)
        if cls == "GroupNormalization" and kl.ir_axis(int(layer.axis), rank) == 0:
            return self.add(ir.Norm("group", int(layer.groups), affine=bool(layer.scale),
                                    bias=bool(layer.center), eps=float(layer.epsilon)),
                            x, name, cls)
        return self.special(layer, cls, ins)

    def special(self, layer: Any, cls: str, ins: list[str]) -> str | None:
        name, x = layer.name, ins[0] if ins else ""
        shape = self.shape(x) if x else ()
        per_channel = (shape[0],) + (1,) * (len(shape) - 1) if shape else ()
        if cls == "Rescaling":
            if not isinstance(layer.scale, int | float) or not isinstance(layer.offset,
                                                                         int | float):
                return self.add(ir.Binary("mul", per_channel), x, name, cls)
            if float(layer.offset) == 0.0:
                return self.add(ir.Scale(float(layer.scale)), x, name, cls)
            y = self.add(ir.Scale(float(layer.scale)), x, f"{name}.scale", cls)
            return self.add(ir.Binary("add", ()), y, name, cls)
        if cls == "Normalization":
            y = self.add(ir.Binary("sub", per_channel), x, f"{name}.center", cls)
            return self.add(ir.Binary("div", per_channel), y, name, cls)
        if cls == "LayerScale":  # ConvNeXt: a learned per-channel gamma
            return self.add(ir.Binary("mul", per_channel, params=kl.weight_count(layer)), x, name,
                            cls)
        if cls == "CustomScaleLayer" and len(ins) == 2:  # InceptionResNetV2: x + scale * y
            y = self.add(ir.Scale(float(layer.scale)), ins[1], f"{name}.scale", cls)
            return self.add(ir.Add(), [ins[0], y], name, cls)
        if cls == "Embedding":
            y = self.add(ir.Embedding(int(layer.input_dim), int(layer.output_dim)), x,
                         f"{name}.lookup" if shape else name, cls)
            r = len(self.shape(y))
            return self.add(ir.Permute(kl.to_first(r)), y, name, cls) if shape else y
        return None

    def operation(self, op: Any, node: Any, ins: list[str], outs: list[Any]) -> str:
        """A ``keras.ops`` call on symbolic tensors (``x + 3.0``, ``inputs + x``)."""
        cls = type(op).__name__.lower()
        name = op.name
        fn = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
              "truedivide": "div", "maximum": "max", "minimum": "min", "power": "pow"}.get(cls)
        args = list(node.arguments.args)
        if fn is not None and len(ins) == 2:
            if fn == "add" and self.shape(ins[0]) == self.shape(ins[1]):
                return self.add(ir.Add(), ins, name, cls)
            return self.add(ir.Binary(fn), ins, name, cls)
        if fn is not None and len(ins) == 1 and len(args) == 2:
            const = next(a for a in args if isinstance(a, int | float) or not hasattr(
                a, "shape"))
            tensor_first = hasattr(args[0], "shape") and not isinstance(args[0], int | float)
            if fn == "mul" or fn == "div" and tensor_first:
                factor = float(const) if fn == "mul" else 1.0 / float(const)
                return self.add(ir.Scale(factor), ins, name, cls)
            return self.add(ir.Binary(fn, (), reverse=not tensor_first), ins, name, cls)
        act = cls.replace("_", "")
        if len(ins) == 1 and act in ir.ACTIVATIONS + ir.TRACED_ACTIVATIONS:
            return self.add(ir.Act(act), ins, name, cls)
        shape = kl.to_ir_shape(tuple(outs[0].shape[1:])) if outs else ()
        return self.add(ir.Unsupported(f"keras.ops.{cls}", shape, 0, "no IR rule"), ins, name,
                        cls)


def from_keras(model: Any, input_shape: Shape | None = None
               ) -> tuple[ir.Graph, Shape, dict[str, str]]:
    """The IR of a Keras model, its input shape ``(C, *spatial)`` and, per Keras layer name,
    the IR value holding that layer's output. ``input_shape`` (channels first) overrides the
    model's own and is needed when the model leaves sizes open (``shape=(None, None, 3)``)."""
    keras = keras_module()
    if not hasattr(model, "_nodes_by_depth") and getattr(model, "_functional", None) is None:
        if input_shape is None:
            raise CnnlabError(f"Keras model {model.name!r} has no input shape: give --input "
                              "CxHxW, or start it with keras.Input(shape=...)")
        model.build((None, *input_shape[1:], input_shape[0]))
    func = model if hasattr(model, "_nodes_by_depth") else model._functional
    inputs = keras.tree.flatten(func.inputs)
    if len(inputs) != 1:
        raise CnnlabError(f"Keras model {model.name!r} has {len(inputs)} inputs; cnnlab "
                          "analyzes models with one input")
    given = tuple(inputs[0].shape[1:])
    dtype = str(inputs[0].dtype)
    shape = tuple(input_shape) if input_shape is not None else (
        kl.to_ir_shape(given) if not dtype.startswith("int") else given)
    if any(v is None for v in shape):
        raise CnnlabError(f"Keras model {model.name!r} has input shape {given} with open "
                          "sizes; give --input CxHxW (e.g. --input 3x224x224)")
    imp = KerasImporter(keras)
    imp.graph = ir.Graph([ir.Node("input", ir.Input(dtype if dtype.startswith("int")
                                                    else "float32"))])
    imp.shapes["input"] = tuple(int(v) for v in shape)
    outs = imp.run(model, ["input"])
    imp.graph.output = outs[0]
    imp.graph.source = f"keras:{model.name}"
    if math.prod(shape) <= 0:
        raise CnnlabError(f"input shape {shape} must be positive")
    return imp.graph, imp.shapes["input"], imp.outputs

"""Any cnnlab architecture -> readable Keras code and a ``.keras`` model
(``cnnlab export ARCH --to keras``).

:func:`keras_code` writes a Python module whose ``build_model()`` returns the functional Keras
model of the IR, channels last (the IR's ``(C, H, W)`` is Keras' ``(H, W, C)``), one Keras layer
per IR node under the node's name; :func:`export_keras` runs that very code and saves the model,
so the file and the code cannot disagree. What Keras cannot say in one layer is written as two,
named so that the importer (:mod:`cnnlab.ir.keras_import`) folds them back: explicit padding
before a conv or pool is a ``ZeroPadding`` layer ``<name>_pad``; a fc layer on a feature map is
``Flatten`` ``<name>_flatten`` then ``Dense``. An op with no Keras layer (a traced reshape, an
unsupported row...) is a one-line error naming the layer.
"""

from __future__ import annotations

import keyword
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import write_bytes, write_text
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import infer_shapes, window_params

_ACTS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu", "elu": "elu",
         "softplus": "softplus", "relu6": "relu6", "silu": "silu", "selu": "selu",
         "softsign": "softsign", "mish": "mish", "hardsigmoid": "hard_sigmoid",
         "hardswish": "hard_silu", "exp": "exponential"}


def _keras_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[1:], shape[0]) if len(shape) >= 2 else tuple(shape)


def _keras_axis(axis: int, rank: int) -> int:
    """IR axis (no batch) -> Keras axis (with batch, channels last)."""
    axis %= rank
    if rank < 2:
        return axis + 1
    return -1 if axis == 0 else axis


class _Writer:
    def __init__(self, graph: ir.Graph, shape: tuple[int, ...]):
        self.graph = graph
        self.shapes = infer_shapes(graph, shape)
        self.lines: list[str] = []
        self.vars: dict[str, str] = {}

    def var(self, name: str) -> str:
        if name in self.vars:
            return self.vars[name]
        v = re.sub(r"\W", "_", name)
        if not v or v[0].isdigit() or keyword.iskeyword(v) or v in (
                "keras", "layers", "input"):
            v = f"x_{v}"
        while v in self.vars.values():
            v += "_"
        self.vars[name] = v
        return v

    def emit(self, node: ir.Node, layer: str, inputs: list[str]) -> None:
        arg = inputs[0] if len(inputs) == 1 else f"[{', '.join(inputs)}]"
        self.lines.append(f"    {self.var(node.name)} = layers.{layer}({arg})")

    def pads(self, node: ir.Node, x: tuple[int, ...], src: str, pads: ir.Pads) -> str:
        dims = len(x) - 1
        v = f"{self.var(node.name)}_pad"
        self.lines.append(f"    {v} = layers.ZeroPadding{dims}D({_tuple(pads)}, "
                          f"name={_q(node.name + '_pad')})({src})")
        return v


def _q(s: str) -> str:
    return repr(re.sub(r"[^\w.-]", "_", s))


def _tuple(v: Any) -> str:
    v = tuple(tuple(a) if isinstance(a, list | tuple) else a for a in v)
    return repr(v)


def _args(**values: tuple[Any, Any]) -> str:
    """``key=value, `` for each value that is not its default."""
    out = ""
    for key, (v, default) in values.items():
        if v != default:
            out += f"{key}={_tuple(v) if isinstance(v, tuple) else repr(v)}, "
    return out


def _layer(w: _Writer, node: ir.Node, src: list[str]) -> tuple[str, list[str]]:
    """The Keras layer call (without its input) of one IR node, and its inputs."""
    op = node.op
    x = w.shapes[node.inputs[0]] if node.inputs else ()
    dims = len(x) - 1
    name = f"name={_q(node.name)}"
    if isinstance(op, ir.Conv | ir.Pool):
        win = window_params(node, x)
        if isinstance(op, ir.Pool) and op.ceil:
            raise CnnlabError(f"layer {node.name}: Keras pooling has no ceil mode")
        pad = op.padding if op.padding in ("same", "valid") else "valid"
        if pad == "valid" and any(lo or hi for lo, hi in win.pads):
            src = [w.pads(node, x, src[0], win.pads)]
        if isinstance(op, ir.Pool):
            kind = "MaxPooling" if op.op == "max" else "AveragePooling"
            args = _args(strides=(win.stride, win.kernel), padding=(pad, "valid"))
            return f"{kind}{dims}D({_tuple(win.kernel)}, {args}{name})", src
        common = _args(strides=(win.stride, (1,) * dims), padding=(pad, "valid"),
                       dilation_rate=(win.dilation, (1,) * dims), use_bias=(op.bias, True))
        common += name
        if op.groups == x[0] and op.groups > 1 and op.out_channels % x[0] == 0 and dims <= 2:
            return (f"DepthwiseConv{dims}D({_tuple(win.kernel)}, depth_multiplier="
                    f"{op.out_channels // x[0]}, {common})", src)
        groups = f"groups={op.groups}, " if op.groups != 1 else ""
        return f"Conv{dims}D({op.out_channels}, {_tuple(win.kernel)}, {groups}{common})", src
    if isinstance(op, ir.Linear):
        if op.last:
            raise CnnlabError(f"layer {node.name}: a fc layer on the last axis of a feature "
                              "map has no channels-last Keras equivalent")
        if len(x) > 1:
            v = f"{w.var(node.name)}_flatten"
            w.lines.append(f"    {v} = layers.Flatten(name={_q(node.name + '_flatten')})"
                           f"({src[0]})")
            src = [v]
        return f"Dense({op.out_features}, {_args(use_bias=(op.bias, True))}{name})", src
    if isinstance(op, ir.Act):
        if op.fn == "leakyrelu":
            return f"LeakyReLU(negative_slope=0.01, {name})", src  # torch's default slope
        if op.fn not in _ACTS:
            raise CnnlabError(f"layer {node.name}: no Keras activation for {op.fn}")
        return f"Activation({_ACTS[op.fn]!r}, {name})", src
    if isinstance(op, ir.BatchNorm):
        return (f"BatchNormalization(epsilon={op.eps!r}, momentum={1 - op.momentum!r}, "
                f"scale={op.scale}, center={op.center}, {name})", src)
    if isinstance(op, ir.Dropout):
        return f"Dropout({op.p!r}, {name})", src
    if isinstance(op, ir.Flatten):
        return f"Flatten({name})", src
    if isinstance(op, ir.GlobalPool):
        kind = "GlobalMaxPooling" if op.op == "max" else "GlobalAveragePooling"
        return f"{kind}{dims}D(keepdims={op.keepdim}, {name})", src
    if isinstance(op, ir.Softmax) and not op.log:
        return f"Softmax(axis={_keras_axis(op.axis, len(x))}, {name})", src
    if isinstance(op, ir.Add) and op.gamma == 1.0:
        return f"Add({name})", src
    if isinstance(op, ir.Concat):
        return f"Concatenate(axis={_keras_axis(op.axis, len(x))}, {name})", src
    if isinstance(op, ir.Scale):
        return f"Rescaling({op.factor!r}, {name})", src
    if isinstance(op, ir.Pad) and op.mode == "constant" and op.value == 0.0 and len(
            op.pads) == dims:
        if all(lo >= 0 and hi >= 0 for lo, hi in op.pads):
            return f"ZeroPadding{dims}D({_tuple(op.pads)}, {name})", src
        if all(lo <= 0 and hi <= 0 for lo, hi in op.pads):
            crop = tuple((-lo, -hi) for lo, hi in op.pads)
            return f"Cropping{dims}D({_tuple(crop)}, {name})", src
    if isinstance(op, ir.Upsample) and op.scale and op.size is None and not op.align_corners \
            and all(float(s).is_integer() for s in op.scale) and op.mode in (
                "nearest", "linear") and (dims == 2 or op.mode == "nearest"):
        size = tuple(int(s) for s in op.scale) * (dims if len(op.scale) == 1 else 1)
        interp = f", interpolation={'bilinear' if op.mode == 'linear' else 'nearest'!r}" \
            if dims == 2 else ""
        return f"UpSampling{dims}D({_tuple(size)}{interp}, {name})", src
    raise CnnlabError(f"layer {node.name}: no Keras layer for {op.kind} "
                      f"({getattr(op, 'target', '') or op.kind}); export it with --to onnx")


def keras_code(graph: ir.Graph, input_shape: tuple[int, ...], title: str = "") -> str:
    """Python source whose ``build_model()`` returns the Keras model of ``graph``."""
    if graph.nodes[0].op.tokens:
        raise CnnlabError("a token-id input (embedding) has no Keras export yet")
    w = _Writer(graph, tuple(input_shape))
    first = graph.nodes[0]
    w.lines.append(f"    {w.var(first.name)} = keras.Input(shape="
                   f"{_keras_shape(w.shapes[first.name])!r}, name={_q(first.name)})")
    for node in graph.nodes[1:]:
        call, src = _layer(w, node, [w.vars[i] for i in node.inputs])
        w.emit(node, call, src)
    model_name = re.sub(r"\W", "_", title or graph.source or "cnnlab")[:60] or "cnnlab"
    head = (f'"""{title or "cnnlab model"}: written by `cnnlab export --to keras`.\n\n'
            "Keras 3, channels last: the input is (height, width, channels) without the batch.\n"
            '"""\n\nimport keras\nfrom keras import layers\n\n\n'
            "def build_model() -> keras.Model:\n")
    tail = (f"    return keras.Model({w.vars[first.name]}, {w.vars[graph.out]}, "
            f"name={model_name!r})\n\n\nif __name__ == \"__main__\":\n"
            "    build_model().summary()\n")
    return head + "\n".join(w.lines) + "\n" + tail


def build_keras(code: str) -> Any:
    """Run the code of :func:`keras_code` and return its model (keras on the torch backend)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras  # noqa: F401
    except ImportError:
        raise CnnlabError("writing Keras models needs keras: pip install 'cnnlab[keras]'"
                          ) from None
    scope: dict[str, Any] = {"__name__": "cnnlab_export"}
    exec(compile(code, "<cnnlab keras export>", "exec"), scope)  # our own generated code
    try:
        return scope["build_model"]()
    except ValueError as e:  # a layer Keras refuses (stride with dilation...)
        raise CnnlabError(f"Keras refuses the model: {' '.join(str(e).split())[:200]}"
                          ) from None


def export_keras(graph: ir.Graph, input_shape: tuple[int, ...], out: str | Path | None,
                 code_out: str | Path | None, title: str = "") -> Any:
    """Write the ``.keras`` model (``out``) and/or its Python code (``code_out``)."""
    code = keras_code(graph, input_shape, title)
    if code_out is not None:
        write_text(code_out, code)
    if out is None:
        return None
    model = build_keras(code)
    path = Path(out)
    if path.suffix != ".keras":
        raise CnnlabError(f"--out {out}: a Keras model file must end in .keras")
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as d:
        tmp = Path(d) / "model.keras"
        model.save(tmp)
        write_bytes(path, tmp.read_bytes())
    return model

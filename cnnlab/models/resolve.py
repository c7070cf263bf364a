"""Any model source -> (IR graph, input shape), and ``cnnlab.analyze`` on top of it.

The API (``cnnlab.analyze``) and the CLI (``cnnlab analyze``) both go through :func:`model_graph`,
so they accept the same things: a registered model name, a spec string, a ``.toml``/``.json``
file (all three via :func:`cnnlab.models.zoo.resolve`), an IR graph, a live ``nn.Module``, a
``.keras``/``.onnx`` file or a live Keras model (:mod:`cnnlab.ir.keras_import`,
:mod:`cnnlab.ir.onnx_import`).
"""

from __future__ import annotations

from typing import Any

from cnnlab.analysis.analyze import Analysis, analyze_graph
from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import Shape, parse_input
from cnnlab.models import zoo


def model_graph(model: Any, input: Shape | str | None = None,
                layout: str = "nchw", dtype: str | None = None) -> tuple[ir.Graph, Shape]:
    """The IR of ``model`` and its input shape (``input`` wins over the model's own).

    ``input`` may name a dtype after a colon: ``"50:int64"`` is 50 token ids (for a module
    that starts with ``nn.Embedding``); ``dtype`` says the same from Python.
    """
    if isinstance(input, str):
        shape, given = parse_input(input, layout)
        dtype = dtype or given
    else:
        shape = input
    dtype = dtype or "float32"
    shape = tuple(shape) if shape is not None else None
    if isinstance(model, ir.Graph):
        graph = model
    elif isinstance(model, str) and model.lower().endswith((".keras", ".onnx")) or \
            _is_keras(model):
        graph, shape = _foreign_graph(model, shape)
    elif isinstance(model, str):
        mdef = zoo.resolve(model)
        shape = shape or (mdef.input_shape or None)
        graph = mdef.to_graph(shape)
    elif model is None:
        raise CnnlabError("give a spec string, a model name, a .toml/.json file or a module; "
                          f"models: {', '.join(zoo.names())}")
    else:
        from cnnlab.ir.fximport import from_module

        if shape is None:
            raise CnnlabError("analyzing a module needs input=(C, H, W), e.g. input='3x224x224' "
                              "(--input 3x224x224 on the command line)")
        graph = from_module(model, shape, dtype)
    if shape is None:
        raise CnnlabError("no input shape: add --input CxHxW, e.g. --input 1x28x28 "
                          "(input='1x28x28' from Python: channels x height x width)")
    return graph, shape


def _is_keras(model: Any) -> bool:
    from cnnlab.ir.keras_import import is_keras_model

    return is_keras_model(model)


def _foreign_graph(model: Any, shape: Shape | None) -> tuple[ir.Graph, Shape]:
    """A ``.keras``/``.onnx`` file or a live Keras model -> (IR, input shape)."""
    if isinstance(model, str) and model.lower().endswith(".onnx"):
        from cnnlab.ir.onnx_import import from_onnx, load_onnx

        graph, shape, _ = from_onnx(load_onnx(model), shape)
        return graph, shape
    from cnnlab.ir.keras_import import from_keras, load_keras

    graph, shape, _ = from_keras(load_keras(model) if isinstance(model, str) else model, shape)
    return graph, shape


def analyze(model: Any, input: Shape | str | None = None, batch: int = 1,
            compare: bool = False, layout: str = "nchw", dtype: str | None = None) -> Analysis:
    """Analyze a model name, spec string, TOML/JSON file, IR graph or live ``torch.nn.Module``.

    ``input`` is ``(C, H, W)``-style (no batch) or a string like ``"1x28x28"`` (``"50:int64"``
    for 50 token ids); named models and files bring their own default input.
    """
    graph, shape = model_graph(model, input, layout, dtype)
    return analyze_graph(graph, shape, batch=batch, compare=compare)

"""Any model source -> (IR graph, input shape), and ``cnnlab.analyze`` on top of it.

The API (``cnnlab.analyze``) and the CLI (``cnnlab analyze``) both go through :func:`model_graph`,
so they accept the same things: a registered model name, a spec string, a ``.toml``/``.json``
file (all three via :func:`cnnlab.models.zoo.resolve`), an IR graph, a live ``nn.Module``, a
``.keras``/``.onnx`` file or a live Keras model (:mod:`cnnlab.ir.keras_import`,
:mod:`cnnlab.ir.onnx_import`).
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
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


def _user_code(what: str, fn: Any, *args: Any) -> Any:
    """Run code of the user's (an import, a factory call): whatever it raises, even
    ``sys.exit(0)``, becomes one line naming ``what`` (``CNNLAB_DEBUG=1`` re-raises)."""
    try:
        return fn(*args)
    except CnnlabError:
        raise
    except SystemExit as e:
        if os.environ.get("CNNLAB_DEBUG", "") not in ("", "0"):
            raise
        raise CnnlabError(f"--module: {what} called sys.exit({e.code!r}); a module for --module "
                          "must not exit: put its script code under "
                          "if __name__ == \"__main__\":") from None
    except SyntaxError as e:
        raise CnnlabError(f"--module: {what}: syntax error in {e.filename}, line {e.lineno}: "
                          f"{e.msg}; fix the module") from None
    except ImportError as e:
        what = what.replace("importing ", "cannot import ", 1)
        raise CnnlabError(f"--module: {what}: {e}; check the name and that its folder is the "
                          "current one or on PYTHONPATH") from None
    except Exception as e:  # noqa: BLE001 - the user's code, not cnnlab's
        if os.environ.get("CNNLAB_DEBUG", "") not in ("", "0"):
            raise
        msg = " ".join(str(e).split())[:200]
        raise CnnlabError(f"--module: {what} raised {type(e).__name__}: {msg}; fix the module "
                          "(CNNLAB_DEBUG=1 shows the traceback)") from None


def load_module(target: str) -> Any:
    """The live ``nn.Module`` named by ``--module package.module:factory``: a module instance
    is used as is; a class or a function is called without arguments. Every failure of the
    user's code (import error, syntax error, an exception, ``sys.exit``, a factory that needs
    arguments, something that is not a module) is one line naming the module."""
    import importlib

    mod_name, _, attr = target.partition(":")
    if not mod_name.strip() or not attr.strip():
        raise CnnlabError(f"--module {target!r}: expected package.module:factory, e.g. "
                          "mynets:make_net")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    mod = _user_code(f"importing {mod_name!r}", importlib.import_module, mod_name)
    factory = getattr(mod, attr, None)
    if factory is None:
        raise CnnlabError(f"--module: {mod_name!r} has no attribute {attr!r}")
    # a class (pkg.mod:Class) or a factory function is called; a module instance is used as is
    if isinstance(factory, type) or callable(factory) and not hasattr(factory, "forward"):
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            sig = None
        need = [p.name for p in (sig.parameters.values() if sig else ())
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                       p.KEYWORD_ONLY)]
        if need:
            raise CnnlabError(f"--module {target}: {attr}() needs argument(s) "
                              f"{', '.join(need)}; point --module at a function that takes "
                              f"none, e.g. def make(): return {attr}({need[0]}=...)")
        factory = _user_code(f"calling {target}()", factory)
    from torch import nn

    if not isinstance(factory, nn.Module):
        raise CnnlabError(f"--module {target}: got a {type(factory).__name__}, not a "
                          "torch.nn.Module; return the network from the factory")
    return factory

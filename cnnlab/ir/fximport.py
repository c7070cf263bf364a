"""Live ``torch.nn.Module`` -> IR graph, without a forward pass on data.

The module is captured by ``torch.fx`` tracing or, where fx refuses it or leaves a row
unsupported, by running it on meta tensors (:mod:`cnnlab.ir.capture`); both give an fx graph
that the importer below maps to the IR. The module is captured in eval mode (training-only
branches are left out). Every traced call with
a tensor result becomes one IR node named after the module's qualified name (``features.0``,
``layer1.0.conv1``) or, for functions and methods, after the fx node (``add``, ``cat_1``); the
graph input is ``input``. Shapes come from the IR's own rules: nothing is computed on data.
Values that are not tensors (``x.shape[-1]``, ``x.size(0)``) are evaluated from those shapes, so
pooling over ``x.shape[-1]`` (torchaudio's M5, Kim's text CNN) maps like any other pool.

An op the IR cannot model becomes :class:`~cnnlab.ir.graph.Unsupported` with a one-line reason
naming the module and the op; its output shape comes from running that op alone on meta
tensors (no data), so the rest of the table is still computed.

Parameters are counted by tensor identity: a module called twice, or two layers that share a
weight tensor, list every call but count each tensor once, at its first use (``Node.shared``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.fximport_walk import BATCH, Importer, one_line, prune
from cnnlab.ir.fxtrace import Tracer
from cnnlab.ir.scope import analysis_scope


class _Holder(nn.Module):
    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self.key = name
        self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self, self.key)(x)


def _dtype_of(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise CnnlabError(f"input dtype {dtype!r} is not a torch dtype; use float32 or "
                              "int64 (token ids)")
        dtype = getattr(torch, dtype)
    return dtype


def _by_fx(root: nn.Module, name: str) -> Any:
    from cnnlab.ir.capture import Recording

    try:  # the graph alone: no GraphModule, whose code generation costs a third of the time
        gm = Recording(Tracer().trace(root), root)
    except Exception as e:  # fx raises TraceError, TypeError, AttributeError... alike
        raise CnnlabError(
            f"cannot trace {name} with torch.fx ({one_line(e)}); trace a submodule without "
            "data-dependent control flow, or write the architecture as a spec") from None
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise CnnlabError(f"{name}.forward takes {len(inputs)} tensors; cnnlab analyzes "
                          "single-input modules (wrap it in a module that builds the others)")
    return gm


def _by_run(root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> Any:
    from cnnlab.ir.capture import record

    tracer = fx.Tracer()
    x = torch.empty((BATCH, *shape), dtype=dtype, device="meta")
    return record(root, x, tracer.is_leaf_module)


def _imported(source: Any, root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
              name: str) -> ir.Graph:
    imp = Importer(source, root, dtype)
    imp.input_shape = (BATCH, *shape)
    graph = prune(imp.run())
    if graph.output is None:
        raise CnnlabError(f"{name}.forward returns no tensor computed from its input")
    graph.unused = _unused(imp.named, imp.first_use)
    return graph


def _unused(named: list[tuple[str, nn.Parameter]], counted: dict[int, str]
            ) -> tuple[tuple[str, int], ...]:
    """Parameters no row counts (used only in training, or in a way no row shows), of the
    root's ``named_parameters()``."""
    return tuple((path, p.numel()) for path, p in named if id(p) not in counted)


CAPTURES = ("auto", "fx", "run")


def from_module(module: nn.Module, input_shape: tuple[int, ...],
                dtype: str | torch.dtype = "float32", capture: str = "auto") -> ir.Graph:
    """Map ``module`` to an IR graph for inputs of ``input_shape``.

    ``input_shape`` has no batch axis, e.g. ``(3, 224, 224)``, or ``(L,)`` token ids with an
    integer ``dtype`` (``"int64"``) for a net that starts with ``nn.Embedding``. The module is
    captured in eval mode; every submodule's train/eval mode is restored afterwards.

    ``capture``: ``"fx"`` traces symbolically (torch.fx); ``"run"`` runs the module on meta
    tensors and records it (:mod:`cnnlab.ir.capture`); ``"auto"`` (default) runs the module
    and traces with fx only when the run fails or leaves a row unsupported, keeping the graph
    with fewer unsupported rows (the run-capture's error when both fail, unless fx's is about
    the input).
    """
    name = type(module).__name__
    if capture not in CAPTURES:
        raise CnnlabError(f"capture {capture!r} is not one of {', '.join(CAPTURES)}")
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v <= 0 for v in shape):
        raise CnnlabError(f"input shape {input_shape} must be positive, e.g. (3, 224, 224)")
    dtype = _dtype_of(dtype)
    from cnnlab.ir.detection import dense

    module = dense(module) or module  # a detector: its layers, not its box post-processing
    root = module
    if fx.Tracer().is_leaf_module(module, ""):  # a bare nn.Conv2d: one node named after it
        root = _Holder(name.lower(), module)
    modes = {m: m.training for m in module.modules()}
    training = any(modes.values())
    if training:  # eval() of a module already in eval mode sets every flag again (~0.6 ms)
        module.eval()
    try:
        with analysis_scope():
            return _captured(root, shape, dtype, name, capture)
    finally:
        if training:
            for m, was in modes.items():
                if m.training != was:  # eval() left the others as they were
                    m.training = was


def _captured(root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, name: str,
              capture: str) -> ir.Graph:
    """The graph of :func:`from_module`, by the capture ``capture`` picks. ``auto`` runs the
    module on meta tensors first (on the benchmark nets the run is the faster of the two, and
    it takes modules fx refuses) and traces with fx only when the run fails or leaves a row
    unsupported, keeping the graph with fewer unsupported rows (the run's on a tie)."""
    graph: ir.Graph | None = None
    ran_error: CnnlabError | None = None
    if capture in ("auto", "run"):
        try:
            graph = _run_imported(root, shape, dtype, name)
        except CnnlabError as e:
            if capture == "run":
                raise
            ran_error = e
    if capture == "fx" or graph is None or _missing(graph):
        traced: ir.Graph | None = None
        try:
            traced = _imported(_by_fx(root, name), root, shape, dtype, name)
        except CnnlabError as e:
            if capture == "fx":
                raise
            # both failed: fx's error when it is about the input (the run's says the same
            # less directly), else the run's, which names the line that stopped it
            if graph is None and not str(e).startswith(f"cannot trace {name} with torch.fx"):
                raise e from None
        except Exception as e:  # the fx graph does not map (a split unpacked into too many
            if capture == "fx":  # names): the run-capture runs the module's own code instead
                raise CnnlabError(f"cannot map the traced {name} to cnnlab's layers "
                                  f"({one_line(e)}); try capture='run'") from None
        if traced is not None and (graph is None or _missing(traced) < _missing(graph)):
            graph = traced
    if graph is None and ran_error is not None:
        raise ran_error from None
    return graph


def _run_imported(root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
                  name: str) -> ir.Graph:
    """The run-capture's graph; an unexpected failure of the import is a one-line error."""
    recording = _by_run(root, shape, dtype)
    try:
        return _imported(recording, root, shape, dtype, name)
    except CnnlabError:
        raise
    except Exception as e:
        raise CnnlabError(f"cannot map the captured {name} to cnnlab's layers "
                          f"({one_line(e)}); analyze a submodule, or write the architecture "
                          "as a spec") from None


def _missing(graph: ir.Graph) -> int:
    return sum(isinstance(n.op, ir.Unsupported) for n in graph.nodes)

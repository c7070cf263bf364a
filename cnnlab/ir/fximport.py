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

import operator
from typing import Any

import torch
from torch import fx, nn

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import graph as ir
from cnnlab.ir.capture import FRESH
from cnnlab.ir.fximport_map import map_call
from cnnlab.ir.fximport_moved import materialise, moved
from cnnlab.ir.fximport_moved import use as use_moved
from cnnlab.ir.fximport_ops import T
from cnnlab.ir.shapes import node_shape

# a batch of 2 keeps the batch axis distinguishable from the size-1 axes of pooled maps
_BATCH = 2
_QUERIES = ("size", "dim", "numel", "nelement", "ndimension", "get_device")
_ATTRS = ("shape", "ndim", "dtype", "device", "is_cuda", "requires_grad")


def _name_of(target: Any) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    return f"{mod}.{name}" if mod and mod not in ("_operator", "builtins") else name


def _tensors(value: Any) -> list[T]:
    found: list[T] = []

    def walk(v: Any) -> None:
        if isinstance(v, T):
            found.append(v)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(value)
    return found


def _to_meta(value: Any, real: bool = False) -> Any:
    if isinstance(value, T):
        return torch.zeros(value.shape, dtype=value.dtype) if real else value.meta()
    if isinstance(value, torch.Tensor) and not real:
        return value.to("meta")
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(v, real) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v, real) for k, v in value.items()}
    return value


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


class _Importer:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, dtype: torch.dtype):
        self.gm, self.root = gm, root
        self.graph = ir.Graph(nodes=[ir.Node("input", ir.Input(str(dtype).split(".")[-1]))],
                              source=f"module {type(root).__name__}")
        self.vals: dict[fx.Node, Any] = {}
        self.params: dict[fx.Node, set[int]] = {}  # constants -> ids of their parameters
        self.first_use: dict[int, str] = {}  # parameter id -> the IR node that counted it
        self.calls: dict[str, int] = {}
        self.taken: set[str] = {"input"}
        self.numel = {id(p): p.numel() for p in root.parameters()}
        self.dtype = dtype

    # ------------------------------------------------------------------ bookkeeping

    def unique(self, base: str) -> str:
        # a module called twice (a shared nn.ReLU) gives one node per call: relu, relu#2
        k = self.calls[base] = self.calls.get(base, 0) + 1
        name = base if k == 1 else f"{base}#{k}"
        while name in self.taken:
            k += 1
            name = f"{base}#{k}"
        self.taken.add(name)
        return name

    def share(self, name: str, ids: set[int]) -> tuple[int, str]:
        """Values of the parameters ``ids`` counted before (and where), marking the rest."""
        shared, where = 0, ""
        for i in sorted(ids):
            if i in self.first_use:
                shared += self.numel[i]
                where = where or self.first_use[i]
            else:
                self.first_use[i] = name
        return shared, where

    def add(self, op: ir.Op, inputs: list[T], base: str, origin: str, ids: set[int],
            shape: tuple[int, ...]) -> str:
        name = self.unique(base)
        shared, where = self.share(name, ids)
        self.graph.nodes.append(ir.Node(name, op, tuple(t.name for t in inputs), origin,
                                        shared, where))
        return name

    # ------------------------------------------------------------------ the walk

    def run(self) -> ir.Graph:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.vals[node] = T("input", self.input_shape, self.dtype)
            elif node.op == "get_attr":
                v = self.gm
                for part in node.target.split("."):
                    v = getattr(v, part)
                self.vals[node] = v
                self.params[node] = {id(v)} if id(v) in self.numel else set()
            elif node.op == "output":
                found = _tensors(self.vals.get(node.args[0]) if isinstance(
                    node.args[0], fx.Node) else fx.node.map_arg(node.args[0], self.vals.get))
                self.graph.output = found[0].name if found else None
            else:
                self.call(node)
        return self.graph

    def call(self, node: fx.Node) -> None:
        args = fx.node.map_arg(node.args, self.vals.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.vals.__getitem__)
        used: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), used.append)
        ids = set().union(*(self.params.get(n, set()) for n in used))
        found = moved(node, args, kwargs)
        if found is not None or use_moved(self, node, args, kwargs):
            if found is not None:
                self.vals[node] = found
            return
        args, kwargs = materialise(self, args), materialise(self, kwargs)
        t = node.target
        if (t if isinstance(t, str) else getattr(t, "__name__", "")) in FRESH:  # x.new_zeros()
            self.vals[node] = self.execute(node, args, kwargs)
            return
        tensors = _tensors((args, kwargs))
        if not tensors:  # constants and sizes: evaluate them (parameters, x.shape[-1] + 1)
            self.vals[node] = self.execute(node, args, kwargs, real=True)
            if node.op == "call_module":  # a module applied to a constant (Swin-V2's MLP)
                ids |= {id(p) for p in self.gm.get_submodule(node.target).parameters()}
            self.params[node] = ids
            return
        t = node.target
        if t is operator.getitem and not isinstance(args[0], T):
            self.vals[node] = args[0][args[1]]  # a part of chunk/split or of a multi-output
            return
        if node.op == "call_function" and t is getattr and args[1] in _ATTRS or \
                node.op == "call_method" and t in _QUERIES:
            self.vals[node] = self.execute(node, args, kwargs, real=False, query=True)
            return
        if node.op == "call_method" and t in ops.ALIAS and isinstance(args[0], T):
            x = args[0]
            out = self.execute(node, args, kwargs) if t in ("to", "type_as", "double",
                                                            "half") else None
            self.vals[node] = T(x.name, x.shape, out.dtype if out is not None else x.dtype)
            return
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            ids |= {id(p) for p in mod.parameters()}
            what, base = type(mod).__name__, node.target
        else:
            what, base = _name_of(t), node.name
        mapped = map_call(self, node, args, kwargs, tensors, ids)
        if isinstance(mapped, list):  # chunk/split: several slice nodes, already added
            self.vals[node] = tuple(mapped)
            return
        op, inputs, reason = mapped
        if op is not None:
            cand = ir.Node("?", op, tuple(i.name for i in inputs))
            try:
                shape = node_shape(cand, [i.shape[1:] for i in inputs])
            except ShapeError as e:
                op, reason = None, str(e)
        if op is not None:
            name = self.add(op, inputs, base, f"{base} ({reason})" if reason else base, ids,
                            shape)
            dtype = torch.float32 if isinstance(op, ir.Embedding) else inputs[0].dtype
            self.vals[node] = T(name, (inputs[0].shape[0], *shape), dtype)
            if isinstance(op, ir.Attention) and op.heads:  # (output, attention weights)
                weights = ir.Unsupported("attention weights", (shape[0], inputs[1].shape[1]),
                                         0, "the averaged attention weights")
                extra = self.add(weights, inputs, f"{base}[1]", base, set(), ())
                self.vals[node] = (self.vals[node], T(extra, (inputs[0].shape[0],
                                                              *weights.shape)))
            return
        self.unsupported(node, args, kwargs, tensors, what, base, reason, ids)

    def unsupported(self, node: fx.Node, args: Any, kwargs: Any, tensors: list[T], what: str,
                    base: str, reason: str, ids: set[int]) -> None:
        """An op the IR cannot model: its shape from a run on meta tensors, its reason."""
        out = self.execute(node, args, kwargs)
        leaves: list[torch.Tensor] = []

        def walk(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                leaves.append(v)
                return len(leaves) - 1
            if isinstance(v, list | tuple):
                return type(v)(walk(x) for x in v)
            return v

        layout = walk(out)
        if not leaves:
            self.vals[node] = out
            return
        params = sum(self.numel[i] for i in ids)
        names: list[str] = []
        inputs = list({id(t): t for t in tensors}.values())
        for k, leaf in enumerate(leaves):
            shape = tuple(leaf.shape[1:])
            op = ir.Unsupported(what, shape, params if k == 0 else 0, reason)
            names.append(self.add(op, inputs, base if k == 0 else f"{base}[{k}]", base,
                                  ids if k == 0 else set(), shape))
        made = [T(n, tuple(leaf.shape), leaf.dtype) for n, leaf in zip(names, leaves,
                                                                      strict=True)]

        def rebuild(v: Any) -> Any:
            if isinstance(v, int) and not isinstance(v, bool) and v < len(made) and \
                    isinstance(layout, int | list | tuple):
                return made[v]
            if isinstance(v, list | tuple):
                return type(v)(rebuild(x) for x in v)
            return v

        self.vals[node] = made[0] if isinstance(layout, int) else rebuild(layout)

    def execute(self, node: fx.Node, args: Any, kwargs: Any, real: bool = False,
                query: bool = False) -> Any:
        """Run one node: on real constants, or on meta tensors standing for traced ones."""
        a, kw = _to_meta(args, real=real), _to_meta(kwargs, real=real)
        try:
            return self._run(node, a, kw, real)
        except Exception as e:
            if real or query:
                raise CnnlabError(f"cannot evaluate {node.name} ({_name_of(node.target)}) "
                                  f"while importing {type(self.root).__name__}: "
                                  f"{_one_line(e)}") from None
        try:  # no meta kernel (or data-dependent): that one op on zeros
            with torch.no_grad():
                return self._run(node, _to_meta(args, real=True), _to_meta(kwargs, real=True),
                                 True)
        except Exception as e:
            raise CnnlabError(f"cannot infer the output shape of {node.name} "
                              f"({_name_of(node.target)}) in {type(self.root).__name__}: "
                              f"{_one_line(e)}") from None

    def _run(self, node: fx.Node, args: Any, kwargs: Any, real: bool) -> Any:
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        mod = self.gm.get_submodule(node.target)
        if real or not any(True for _ in mod.parameters()) and \
                not any(True for _ in mod.buffers()):
            return mod(*args, **kwargs)
        state = {k: v.to("meta") for k, v in [*mod.named_parameters(), *mod.named_buffers()]}
        return torch.func.functional_call(mod, state, args, kwargs)


def _prune(graph: ir.Graph) -> ir.Graph:
    """Drop the unused extra outputs of multi-output ops (``out, _ = self.lstm(x)``)."""
    used = {i for n in graph.nodes for i in n.inputs} | {graph.output}
    graph.nodes = [n for n in graph.nodes if not (isinstance(n.op, ir.Unsupported) and
                                                 n.name.endswith("]") and n.name not in used)]
    return graph


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
        gm = Recording(fx.Tracer().trace(root), root)
    except Exception as e:  # fx raises TraceError, TypeError, AttributeError... alike
        raise CnnlabError(
            f"cannot trace {name} with torch.fx ({_one_line(e)}); trace a submodule without "
            "data-dependent control flow, or write the architecture as a spec") from None
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise CnnlabError(f"{name}.forward takes {len(inputs)} tensors; cnnlab analyzes "
                          "single-input modules (wrap it in a module that builds the others)")
    return gm


def _by_run(root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> Any:
    from cnnlab.ir.capture import record

    tracer = fx.Tracer()
    x = torch.empty((_BATCH, *shape), dtype=dtype, device="meta")
    return record(root, x, tracer.is_leaf_module)


def _imported(source: Any, root: nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
              name: str) -> ir.Graph:
    imp = _Importer(source, root, dtype)
    imp.input_shape = (_BATCH, *shape)
    graph = _prune(imp.run())
    if graph.output is None:
        raise CnnlabError(f"{name}.forward returns no tensor computed from its input")
    graph.unused = _unused(root, imp.first_use)
    return graph


def _unused(root: nn.Module, counted: dict[int, str]) -> tuple[tuple[str, int], ...]:
    """Parameters no row counts (used only in training, or in a way no row shows)."""
    return tuple((path, p.numel()) for path, p in root.named_parameters()
                 if id(p) not in counted)


CAPTURES = ("auto", "fx", "run")


def from_module(module: nn.Module, input_shape: tuple[int, ...],
                dtype: str | torch.dtype = "float32", capture: str = "auto") -> ir.Graph:
    """Map ``module`` to an IR graph for inputs of ``input_shape``.

    ``input_shape`` has no batch axis, e.g. ``(3, 224, 224)``, or ``(L,)`` token ids with an
    integer ``dtype`` (``"int64"``) for a net that starts with ``nn.Embedding``. The module is
    captured in eval mode; every submodule's train/eval mode is restored afterwards.

    ``capture``: ``"fx"`` traces symbolically (torch.fx); ``"run"`` runs the module on meta
    tensors and records it (:mod:`cnnlab.ir.capture`); ``"auto"`` (default) traces with fx
    and runs the capture when fx refuses the module or leaves a row unsupported, keeping the
    graph with fewer unsupported rows (the run-capture's error when both fail).
    """
    name = type(module).__name__
    if capture not in CAPTURES:
        raise CnnlabError(f"capture {capture!r} is not one of {', '.join(CAPTURES)}")
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v <= 0 for v in shape):
        raise CnnlabError(f"input shape {input_shape} must be positive, e.g. (3, 224, 224)")
    dtype = _dtype_of(dtype)
    root = module
    if fx.Tracer().is_leaf_module(module, ""):  # a bare nn.Conv2d: one node named after it
        root = _Holder(name.lower(), module)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        graph: ir.Graph | None = None
        refused: CnnlabError | None = None  # fx's error, when it is about the input
        if capture in ("auto", "fx"):
            try:
                graph = _imported(_by_fx(root, name), root, shape, dtype, name)
            except CnnlabError as e:
                if capture == "fx":
                    raise
                if not str(e).startswith(f"cannot trace {name} with torch.fx"):
                    refused = e
        if capture == "run" or graph is None or any(
                isinstance(n.op, ir.Unsupported) for n in graph.nodes):
            try:
                ran = _run_imported(root, shape, dtype, name)
            except CnnlabError:
                if refused is not None:
                    raise refused from None
                if graph is None:
                    raise
                ran = None
            if ran is not None and (graph is None or _missing(ran) < _missing(graph)):
                graph = ran
        return graph
    finally:
        for m, training in modes.items():
            m.training = training


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
                          f"({_one_line(e)}); analyze a submodule, or write the architecture "
                          "as a spec") from None


def _missing(graph: ir.Graph) -> int:
    return sum(isinstance(n.op, ir.Unsupported) for n in graph.nodes)

"""Capture a module's graph by *running* it on meta tensors (no memory, no arithmetic).

torch.fx traces symbolically and refuses Python control flow that reads a shape (TF-style
"same" padding computed in ``forward``, ``if x.shape[-1] != 224: raise``). Here the module
runs for real, on a ``meta`` input and meta copies of its parameters and buffers (swapped
in for the run, as :func:`torch.func.functional_call` would), so every shape is a concrete
integer and such code just executes. Two recorders watch the run and write what they see as
a ``torch.fx.Graph``:

  * a forward pre-hook and hook on every *leaf* module (the ones torch.fx would not trace
    into: ``nn.Conv2d``, ``nn.MultiheadAttention``...), giving one ``call_module`` node named
    after the module's path; what runs inside a leaf is not recorded;
  * a :class:`~torch.overrides.TorchFunctionMode` (as ``torch.utils.flop_counter`` uses),
    giving one ``call_function`` / ``call_method`` node per torch function or tensor method
    whose arguments include a tensor computed from the input or a parameter/buffer.

Parameters and buffers become ``get_attr`` nodes at their first use, so the importer counts
them by tensor identity exactly as for a symbolic trace. Sizes read from tensors
(``x.shape[-1]``) are plain integers in the recorded arguments. The graph then goes through
the same importer as a symbolic trace (:mod:`cnnlab.ir.fximport`).

A run that cannot go on without data (``if x.sum() > 0``, ``.item()``, ``.tolist()``) stops
with a one-line error naming the file and line of the model's own code that asked for it.
"""

from __future__ import annotations

import operator
import os
import traceback
from typing import Any

import torch
from torch import fx, nn
from torch.overrides import TorchFunctionMode

from cnnlab.common.errors import CnnlabError
from cnnlab.ir.capture_fast import func_info, meta_copy, module_shortcut, shortcut
from cnnlab.ir.capture_graph import GraphWriter
from cnnlab.ir.fximport_ops import layer_error

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FLAT = frozenset((int, float, bool, str, type(None)))
_ALIAS_PROPS = ("data",)  # tensor properties that are the tensor itself
# calls whose result depends on a tensor's shape and dtype only: constants, not graph nodes
FRESH = frozenset(("new_zeros", "new_ones", "new_full", "new_empty", "new_tensor",
                   "zeros_like", "ones_like", "full_like", "empty_like", "rand_like",
                   "randn_like", "randint_like"))


class Recording:
    """The captured graph and the module it refers to; quacks like the ``fx.GraphModule``
    the importer reads (``graph``, ``get_submodule``, attribute access by path)."""

    def __init__(self, graph: fx.Graph, root: nn.Module,
                 paths: dict[str, nn.Module] | None = None):
        self.graph = graph
        self.root = root
        self.paths = paths  # root.named_modules() as a dict, made on first use if not given

    def get_submodule(self, target: str) -> nn.Module:
        """``root.get_submodule(target)``, from one walk over the modules (the importer asks
        for each called module several times; a lookup by path walks every level)."""
        if self.paths is None:
            self.paths = dict(self.root.named_modules())
        found = self.paths.get(target)
        return found if found is not None else self.root.get_submodule(target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.root, name)


class _Recorder(TorchFunctionMode):
    def __init__(self, root: nn.Module, names: dict[int, str]):
        super().__init__()
        self.graph = fx.Graph()
        self.writer = GraphWriter(self.graph)
        self.root = root
        self.names = names  # id(meta parameter/buffer) -> its path in the module
        self.nodes: dict[int, fx.Node] = {}
        self.alive: list[Any] = []  # keep every recorded tensor alive: ids stay unique
        self.depth = 0

    # --------------------------------------------------------------- tensor <-> node

    def node_of(self, v: Any) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        found = self.nodes.get(id(v))
        if found is not None:
            return found
        path = self.names.get(id(v))
        if path is None:
            return v  # a constant made inside forward (torch.arange, torch.zeros)
        node = self.writer.node("get_attr", path)
        self.bind(v, node)
        return node

    def bind(self, v: torch.Tensor, node: fx.Node) -> None:
        self.nodes[id(v)] = node
        self.alive.append(v)

    def map(self, value: Any) -> tuple[Any, bool]:
        """``value`` with every known tensor replaced by its node; whether any was."""
        seen = False

        def walk(v: Any) -> Any:
            nonlocal seen
            if isinstance(v, torch.Tensor):
                n = self.node_of(v)
                seen = seen or isinstance(n, fx.Node)
                return n
            t = type(v)
            if t is tuple:  # the usual containers first, without a generator
                return tuple([walk(x) for x in v])
            if t is list:
                return [walk(x) for x in v]
            if isinstance(v, list | tuple):
                return type(v)(walk(x) for x in v)
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            return v

        return walk(value), seen

    def map_call(self, args: tuple, kwargs: dict) -> tuple[tuple[Any, Any], bool]:
        """``map((args, kwargs))``, the flat arguments of a call without the recursion."""
        if type(args) is not tuple:
            return self.map((args, kwargs))
        out, seen, nodes = [], False, self.nodes
        for v in args:
            if isinstance(v, torch.Tensor):
                n = nodes.get(id(v))
                if n is None:
                    n = self.node_of(v)  # a parameter's first use, or a constant
                    if n is v:
                        out.append(v)
                        continue
                seen = True
                out.append(n)
            elif type(v) in _FLAT:
                out.append(v)
            else:
                m, inner = self.map(v)
                seen = seen or inner
                out.append(m)
        mkwargs: Any = {}
        if kwargs:
            mkwargs, inner = self.map(kwargs)
            seen = seen or inner
        return (tuple(out), mkwargs), seen

    def outputs(self, node: fx.Node, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            self.bind(out, node)
        elif isinstance(out, list | tuple):
            for i, v in enumerate(out):
                if isinstance(v, torch.Tensor):
                    self.bind(v, self.writer.node("call_function", operator.getitem, (node, i)))

    # --------------------------------------------------------------- the two recorders

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = shortcut(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        if self.depth or not (isinstance(out, torch.Tensor) or _has_tensor(out)):
            return out
        op, target = _kind(func)
        if op is None:
            return out  # a FRESH call
        (margs, mkwargs), seen = self.map_call(args, kwargs)
        if not seen:
            return out  # arithmetic on constants made in forward: a constant itself
        if op == "alias":
            self.bind(out, margs[0])
            return out
        if op == "property":  # x.mT, x.T...: a method call on the tensor
            if target == "mT":
                node = self.writer.node("call_method", "transpose", (margs[0], -2, -1))
            else:
                node = self.writer.node("call_method", target, (margs[0],))
        elif op == "call_method" and target[-1] == "_" and target[0] != "_":
            # in place (``out += x`` runs add_): named as fx names the same line (add)
            node = self.writer.node(op, target, margs, mkwargs, named_as=target[:-1])
        else:
            node = self.writer.node(op, target, margs, mkwargs)
        self.outputs(node, out)
        return out

    def pre_hook(self, _m: nn.Module, _args: tuple, _kwargs: dict) -> None:
        self.depth += 1

    def hook(self, m: nn.Module, path: str, args: tuple, kwargs: dict, out: Any) -> None:
        self.depth -= 1
        if self.depth:
            return
        (margs, mkwargs), seen = self.map_call(args, kwargs)
        # a module with parameters applied to a constant made in forward (EdgeNeXt's
        # positional encoding) is recorded too: its output is a constant, its parameters count
        if _has_tensor(out) and (seen or any(True for _ in m.parameters())):
            self.outputs(self.writer.node("call_module", path, margs, mkwargs), out)

    def watch(self, m: nn.Module, path: str) -> Any:
        """Record the calls of the leaf ``m``; returns what undoes it.

        A module without hooks of its own (the usual case) gets an instance attribute
        ``_call_impl`` (``Module.__call__`` calls ``self._call_impl``) that counts the depth
        around the class's ``_call_impl`` and records the call after it: what a forward
        pre-hook and hook registered last would do (they see the arguments and output of
        ``forward`` when no other hook changes them), without registering and removing two
        hooks per leaf per capture, and without the slow path of ``_call_impl`` that hooks
        put the call on. A module with hooks (weight norm's pre-hook computes the weight
        before the call is counted), or a class with its own ``__call__``/``_call_impl``,
        gets the two hooks, after its own."""
        cls = type(m)
        if cls.__call__ is not _MODULE_CALL or cls._call_impl is not _MODULE_CALL_IMPL or \
                "_call_impl" in m.__dict__ or m._forward_pre_hooks or m._forward_hooks or \
                m._backward_hooks or m._backward_pre_hooks or _global_hooks():
            pre = m.register_forward_pre_hook(self.pre_hook, with_kwargs=True)
            post = m.register_forward_hook(
                lambda _m, a, kw, o: self.hook(m, path, a, kw, o), with_kwargs=True)
            return lambda: (pre.remove(), post.remove())

        def call(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            out = None
            if not kwargs and len(args) == 1:
                # its tensor queries are not the model's calls (a new context per call: one
                # shared instance keeps the state it restores, wrong across threads)
                with torch._C.DisableTorchFunction():
                    out = module_shortcut(m, args[0])
            if out is None:
                out = _MODULE_CALL_IMPL(m, *args, **kwargs)
            self.hook(m, path, args, kwargs, out)
            return out

        m.__dict__["_call_impl"] = call
        return lambda: m.__dict__.pop("_call_impl", None)


_MODULE_CALL = nn.Module.__call__
_MODULE_CALL_IMPL = nn.Module._call_impl
_KINDS: dict[Any, tuple[Any, Any]] = {}


def _global_hooks() -> bool:
    g = torch.nn.modules.module
    return bool(g._global_forward_pre_hooks or g._global_forward_hooks or
                g._global_backward_pre_hooks or g._global_backward_hooks)


def _kind(func: Any) -> tuple[Any, Any]:
    """How a call of the torch function ``func`` is recorded, remembered per function:
    (None, None) for a FRESH call, ("alias", None) for a property that is the tensor itself,
    ("property", its name), or the node's (op, target)."""
    try:
        found = _KINDS.get(func)
    except TypeError:  # unhashable
        found = None
    if found is not None:
        return found
    name, method = func_info(func)
    owner = getattr(func, "__self__", None)
    if name in FRESH:
        found = (None, None)
    elif type(owner).__name__ == "getset_descriptor":  # a property: x.mT, x.data
        found = ("alias", None) if owner.__name__ in _ALIAS_PROPS else \
            ("property", owner.__name__)
    elif method:
        found = ("call_method", func.__name__)
    else:
        found = ("call_function", func)
    if len(_KINDS) < 4096:
        try:
            _KINDS[func] = found
        except TypeError:
            pass
    return found


def _has_tensor(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, list | tuple):
        return any(isinstance(x, torch.Tensor) for x in v)
    return False


def _user_frame(e: BaseException) -> str:
    """``file:line`` of the innermost frame of the model's own code in ``e``'s traceback."""
    where = ""
    for frame in traceback.extract_tb(e.__traceback__):
        path = os.path.abspath(frame.filename)
        if path.startswith((_TORCH_DIR, _OWN_DIR)) or "<" in frame.filename:
            continue
        where = f"{frame.filename}:{frame.lineno}"
    return where


def _input_error(e: BaseException, modules: list[tuple[str, nn.Module]]) -> str | None:
    """The clear error when the module that raised ``e`` (the innermost ``Module.__call__``
    in its traceback) was given an input it cannot take: the wrong number of axes (``--input
    3x8`` for a Conv2d: torch reads a 3-D input as unbatched and complains about channels of a
    shape the user never wrote), channels, or a window larger than it. Said before any hint
    about tensor values: the input is wrong whatever else the model does."""
    frames = [f for f, _ in traceback.walk_tb(e.__traceback__)
              if f.f_code is _MODULE_CALL_IMPL.__code__]
    if not frames:
        return None
    local = frames[-1].f_locals
    mod, args = local.get("self"), local.get("args") or ()
    if not isinstance(mod, nn.Module) or not args or not isinstance(args[0], torch.Tensor):
        return None
    path = next((p for p, m in modules if m is mod), type(mod).__name__)
    return layer_error(mod, path or type(mod).__name__, tuple(args[0].shape))


def _swap_in_meta(modules: list[tuple[str, nn.Module]]
                  ) -> tuple[dict[int, str], list[tuple[dict, str, Any]]]:
    """Put a meta copy in place of every parameter and buffer of the root module whose
    ``named_modules()`` are ``modules`` (what
    ``torch.func.functional_call(root, state, strict=False)`` does with tied weights, without
    its per-path bookkeeping). Returns (id of each meta copy -> its path, as
    ``named_parameters``/``named_buffers`` give it; the swaps to undo)."""
    metas: dict[int, torch.Tensor] = {}
    names: dict[int, str] = {}
    swaps: list[tuple[dict, str, Any]] = []
    for kind in ("_parameters", "_buffers"):
        for prefix, m in modules:
            store = m.__dict__[kind]
            if not store:
                continue
            for key, t in store.items():
                if t is None:
                    continue
                meta = metas.get(id(t))
                if meta is None:
                    meta = metas[id(t)] = meta_copy(t)
                    names[id(meta)] = f"{prefix}.{key}" if prefix else key
                swaps.append((store, key, t))
    for store, key, t in swaps:
        store[key] = metas[id(t)]
    return names, swaps


def record(root: nn.Module, x: torch.Tensor, leaf: Any) -> Recording:
    """Run ``root`` on the meta tensor ``x`` and return what it did as an fx graph.

    ``leaf(module, path)`` says which modules are recorded whole (torch.fx's rule).
    """
    rec = _Recorder(root, {})
    modules = list(root.named_modules())
    undo = [rec.watch(m, path) for path, m in modules if path and leaf(m, path)]
    placeholder = rec.graph.placeholder("x")
    rec.bind(x, placeholder)
    swaps: list[tuple[dict, str, Any]] = []
    try:
        rec.names, swaps = _swap_in_meta(modules)
        with torch.no_grad(), rec:
            out = root(x)
    except CnnlabError:
        raise
    except Exception as e:
        wrong = _input_error(e, modules)
        if wrong:
            raise CnnlabError(wrong) from None
        where = _user_frame(e)
        text = " ".join(str(e).split())[:200]
        raise CnnlabError(
            f"cannot run {type(root).__name__} on a shape-only (meta) input"
            + (f" at {where}" if where else "") + f": {type(e).__name__}: {text}; code that "
            "reads tensor values (if x.sum() > 0, .item()) cannot be analyzed without data: "
            "analyze the submodules around it, or write the architecture as a spec") from None
    finally:
        for store, key, t in reversed(swaps):
            store[key] = t
        for u in undo:
            u()
    (mapped, seen) = rec.map(out)
    found = [v for v in _flat(mapped) if isinstance(v, fx.Node)]
    rec.graph.output(found[0] if found else None)
    return Recording(rec.graph, root, dict(modules))


def _flat(v: Any) -> list[Any]:
    if isinstance(v, list | tuple):
        return [y for x in v for y in _flat(x)]
    if isinstance(v, dict):
        return [y for x in v.values() for y in _flat(x)]
    return [v]

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
from cnnlab.ir.capture_fast import func_info, shortcut

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
        node = self.graph.get_attr(path)
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
        out, seen = [], False
        for v in args:
            if isinstance(v, torch.Tensor):
                n = self.node_of(v)
                seen = seen or isinstance(n, fx.Node)
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
                    self.bind(v, _node(self.graph, "call_function", operator.getitem, (node, i)))

    # --------------------------------------------------------------- the two recorders

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = shortcut(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        if self.depth or not _has_tensor(out):
            return out
        name, method = func_info(func)
        if name in FRESH:
            return out
        (margs, mkwargs), seen = self.map_call(args, kwargs)
        if not seen:
            return out  # arithmetic on constants made in forward: a constant itself
        owner = getattr(func, "__self__", None)
        if type(owner).__name__ == "getset_descriptor":  # a property: x.mT, x.data
            prop = owner.__name__
            if prop in _ALIAS_PROPS:
                self.bind(out, margs[0])
                return out
            if prop == "mT":
                node = _node(self.graph, "call_method", "transpose", (margs[0], -2, -1))
            else:
                node = _node(self.graph, "call_method", prop, (margs[0],))
        elif method:
            node = _node(self.graph, "call_method", func.__name__, margs, mkwargs)
        else:
            node = _node(self.graph, "call_function", func, margs, mkwargs)
        self.outputs(node, out)
        return out

    def pre_hook(self, _m: nn.Module, _args: tuple, _kwargs: dict) -> None:
        self.depth += 1

    def hook(self, path: str, args: tuple, kwargs: dict, out: Any) -> None:
        self.depth -= 1
        if self.depth:
            return
        (margs, mkwargs), seen = self.map_call(args, kwargs)
        # a module with parameters applied to a constant made in forward (EdgeNeXt's
        # positional encoding) is recorded too: its output is a constant, its parameters count
        if _has_tensor(out) and (seen or any(True for _ in self.root.get_submodule(
                path).parameters())):
            self.outputs(_node(self.graph, "call_module", path, margs, mkwargs), out)


def _node(graph: fx.Graph, op: str, target: Any, args: tuple, kwargs: dict | None = None
          ) -> fx.Node:
    """``graph.call_function``/``call_method``/``call_module``: the same node, named the same,
    but its arguments set afterwards, which skips ``create_node``'s pytree scan of them for
    symbolic ints (a meta run has none; the scan was a tenth of the capture). They are set
    through the ``args``/``kwargs`` properties (which keep the users lists), past
    ``Node.__setattr__``'s re-filing of the node under its (op, target), which they do not
    change."""
    node = graph.create_node(op, target)
    if kwargs:
        object.__setattr__(node, "kwargs", kwargs)
    object.__setattr__(node, "args", args)
    return node


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
            store = getattr(m, kind)
            for key, t in store.items():
                if t is None:
                    continue
                meta = metas.get(id(t))
                if meta is None:
                    meta = metas[id(t)] = torch.empty_like(t, device="meta")
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
    handles = []
    modules = list(root.named_modules())
    for path, m in modules:
        if path and leaf(m, path):
            handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(
                lambda _m, a, kw, o, p=path: rec.hook(p, a, kw, o), with_kwargs=True))
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
        for h in handles:
            h.remove()
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

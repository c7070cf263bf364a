"""The importer's walk over an fx graph (from torch.fx or the meta-tensor run): each call
mapped to IR nodes, parameters counted by tensor identity. :mod:`cnnlab.ir.fximport` picks
the capture and calls :class:`Importer`; the module docstring there says what the rows are.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import fximport_fold as fold
from cnnlab.ir import fximport_ops as ops
from cnnlab.ir import graph as ir
from cnnlab.ir.capture import FRESH
from cnnlab.ir.fximport_args import call_tensors, named_parameters, param_ids, tensors_in
from cnnlab.ir.fximport_map import map_call
from cnnlab.ir.fximport_moved import materialise, moved
from cnnlab.ir.fximport_moved import use as use_moved
from cnnlab.ir.fximport_ops import T
from cnnlab.ir.shapes import SAME_SHAPE, node_shape

# a batch of 2 keeps the batch axis distinguishable from the size-1 axes of pooled maps
BATCH = 2
_QUERIES = ("size", "dim", "numel", "nelement", "ndimension", "get_device")
_ATTRS = ("shape", "ndim", "dtype", "device", "is_cuda", "requires_grad")


def _name_of(target: Any) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    return f"{mod}.{name}" if mod and mod not in ("_operator", "builtins") else name


_NO_KWARGS = fx.immutable_collections.immutable_dict()
_WINDOWED = frozenset((ir.Conv, ir.Pool))


def same_shape(op: ir.Op, inputs: list[T]) -> tuple[int, ...] | None:
    """``node_shape`` of an element-wise op on one input, without building a node (half the
    rows of a CNN); None for any other op (tests/test_fximport_fast.py compares the two)."""
    if type(op) in SAME_SHAPE and len(inputs) == 1:
        return inputs[0].shape[1:]
    return None


def _to_meta(value: Any, real: bool = False) -> Any:
    if isinstance(value, T):
        return torch.zeros(value.real, dtype=value.dtype) if real else value.meta()
    if isinstance(value, torch.Tensor) and not real:
        return value.to("meta")
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(v, real) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v, real) for k, v in value.items()}
    return value


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


class Importer:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, dtype: torch.dtype):
        self.gm, self.root = gm, root
        self.graph = ir.Graph(nodes=[ir.Node("input", ir.Input(str(dtype).split(".")[-1]))],
                              source=f"module {type(root).__name__}")
        self.vals: dict[fx.Node, Any] = {}
        self.params: dict[fx.Node, set[int]] = {}  # constants -> ids of their parameters
        self.first_use: dict[int, str] = {}  # parameter id -> the IR node that counted it
        self.calls: dict[str, int] = {}
        self.taken: set[str] = {"input"}
        self.named = named_parameters(gm, root)  # each parameter once, by path
        self.numel = {id(p): p.numel() for _, p in self.named}
        self.dtype = dtype
        self.any_moved = False  # a Moved value exists (materialise has work to do)
        self.module_ids: dict[str, set[int]] = {}  # called module path -> its parameter ids
        self.shapes: dict[tuple, tuple[int, ...]] = {}  # (conv or pool, input shapes) -> out
        self.folding = False  # a call went through fximport_fold (a value may be folded)

    def ids_of(self, target: str) -> set[int]:
        """Ids of the parameters of the module at ``target`` (asked once per path)."""
        found = self.module_ids.get(target)
        if found is None:
            found = self.module_ids[target] = param_ids(self.gm.get_submodule(target))
        return found

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
        shared, where = self.share(name, ids) if ids else (0, "")
        self.graph.nodes.append(ir.Node(name, op, tuple([t.name for t in inputs]), origin,
                                        shared, where))
        return name

    def shape_of(self, op: ir.Op, inputs: list[T]) -> tuple[int, ...]:
        """``node_shape`` of ``op`` on ``inputs``; a conv or pool's computed once per input
        shape (the repeated blocks of a stage): their fields are ints, so equal ops are
        the same op (tests/test_fximport_fast.py)."""
        shape = same_shape(op, inputs)
        if shape is not None:
            return shape
        shapes = [i.shape[1:] for i in inputs]
        key = (op, *shapes) if type(op) in _WINDOWED else None
        try:
            shape = self.shapes.get(key) if key is not None else None
        except TypeError:  # a list in a field (none of the importer's): not cached
            key = None
        if shape is None:
            shape = node_shape(ir.Node("?", op, tuple(i.name for i in inputs)), shapes)
            if key is not None:
                self.shapes[key] = shape
        return shape

    def attr(self, target: str) -> Any:
        """``getattr(gm, a).b.c`` for ``target`` "a.b.c"; a parameter or buffer of a module
        the capture walked read from that module's own tables, as ``Module.__getattr__``
        would, without its lookup per part (tests/test_fximport_fast.py)."""
        gm = self.gm
        paths = getattr(gm, "paths", None)
        prefix, _, last = target.rpartition(".")
        first = target.partition(".")[0]
        mod = paths.get(prefix) if isinstance(paths, dict) and first not in vars(gm) and \
            not hasattr(type(gm), first) else None  # not one of the Recording's own names
        if mod is not None and last not in mod.__dict__:
            found = mod._parameters.get(last)
            if found is None:
                found = mod._buffers.get(last)
            if found is not None:
                return found
        v = gm
        for part in target.split("."):
            v = getattr(v, part)
        return v

    # ------------------------------------------------------------------ the walk

    def run(self) -> ir.Graph:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.vals[node] = T("input", self.input_shape, self.dtype)
            elif node.op == "get_attr":
                v = self.vals[node] = self.attr(node.target)
                self.params[node] = {id(v)} if id(v) in self.numel else set()
            elif node.op == "output":
                found = tensors_in(self.vals.get(node.args[0]) if isinstance(
                    node.args[0], fx.Node) else fx.node.map_arg(node.args[0], self.vals.get))
                self.graph.output = found[0].name if found else None
            else:
                self.call(node)
        return self.graph

    def call(self, node: fx.Node) -> None:
        args = fx.node.map_arg(node.args, self.vals.__getitem__)
        # an immutable_dict, as map_arg gives: shared when empty (most calls), as nothing
        # can change it
        kwargs = fx.node.map_arg(node.kwargs, self.vals.__getitem__) if node.kwargs \
            else _NO_KWARGS
        params, ids = self.params, set()
        for n in node._input_nodes:  # all_input_nodes without its list
            if n in params:
                ids.update(params[n])
        # until a call has folded an axis into the batch, only a reshape or an unbind can
        # (fximport_fold.may_fold); after one, every call may read a folded value
        if (self.folding or node.op != "call_module" and fold.may_fold(node)) and fold.call(
                self, node, args, kwargs, ids, lambda n, a, k: self._call(n, a, k, ids),
                lambda n, a, k, why: self.unsupported(n, a, k, tensors_in((a, k)), type(
                    self.gm.get_submodule(n.target)).__name__ if n.op == "call_module"
                    else _name_of(n.target), str(n.target) if n.op == "call_module"
                    else n.name, why, ids)):
            self.folding = True
            return  # windows, patches or heads folded into the batch axis
        self._call(node, args, kwargs, ids)

    def _call(self, node: fx.Node, args: Any, kwargs: Any, ids: set[int]) -> None:
        t = node.target
        name = t if isinstance(t, str) else getattr(t, "__name__", "")
        found = moved(node, args, kwargs) if name == "permute" else None  # moved's own test
        if found is not None:
            self.vals[node] = found
            self.any_moved = True
            return
        if self.any_moved:
            if use_moved(self, node, args, kwargs):
                return
            args, kwargs = materialise(self, args), materialise(self, kwargs)
        if name in FRESH:  # x.new_zeros()
            self.vals[node] = self.execute(node, args, kwargs)
            return
        tensors = call_tensors(args, kwargs)
        if not tensors:  # constants and sizes: evaluate them (parameters, x.shape[-1] + 1)
            self.vals[node] = self.execute(node, args, kwargs, real=True)
            if node.op == "call_module":  # a module applied to a constant (Swin-V2's MLP)
                ids |= self.ids_of(node.target)
            self.params[node] = ids
            return
        module = node.op == "call_module"
        if module:
            ids |= self.ids_of(t)
        elif self._no_node(node, args, kwargs):
            return
        base = t if module else node.name
        mapped = map_call(self, node, args, kwargs, tensors, ids)
        if isinstance(mapped, list):  # chunk/split: several slice nodes, already added
            self.vals[node] = tuple(mapped)
            return
        op, inputs, reason = mapped
        if op is not None:
            try:
                shape = self.shape_of(op, inputs)
            except ShapeError as e:  # shape_of's node has no name of its own ("layer ?: ")
                op, reason = None, str(e).removeprefix(f"layer {e.layer}: ")
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
        what = type(self.gm.get_submodule(t)).__name__ if module else _name_of(t)
        self.unsupported(node, args, kwargs, tensors, what, base, reason, ids)

    def _no_node(self, node: fx.Node, args: Any, kwargs: Any) -> bool:
        """A call that adds no node (a part of a multi-output, a shape query, an alias):
        its value set; False for any other call (none is a module's)."""
        t, kind = node.target, node.op
        if t is operator.getitem and not isinstance(args[0], T):
            self.vals[node] = args[0][args[1]]  # a part of chunk/split or of a multi-output
            return True
        if kind == "call_function" and t is getattr and args[1] in _ATTRS or \
                kind == "call_method" and t in _QUERIES:
            self.vals[node] = self.execute(node, args, kwargs, real=False, query=True)
            return True
        if kind == "call_method" and t in ops.ALIAS and isinstance(args[0], T):
            x = args[0]
            out = self.execute(node, args, kwargs) if t in ("to", "type_as", "double",
                                                            "half") else None
            self.vals[node] = T(x.name, x.shape, out.dtype if out is not None else x.dtype)
            return True
        return False

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
                                  f"{one_line(e)}") from None
        try:  # no meta kernel (or data-dependent): that one op on zeros
            with torch.no_grad():
                return self._run(node, _to_meta(args, real=True), _to_meta(kwargs, real=True),
                                 True)
        except Exception as e:
            target = _name_of(node.target)
            if node.op == "call_module":
                mod = self.gm.get_submodule(node.target)
                shape = getattr(args[0], "shape", None) if args else None  # a T or a tensor
                wrong = shape is not None and ops.layer_error(mod, node.target, tuple(shape))
                if wrong:
                    raise CnnlabError(wrong) from None
                target = type(mod).__name__
            raise CnnlabError(f"cannot infer the output shape of {node.name} "
                              f"({target}) in {type(self.root).__name__}: "
                              f"{one_line(e)}") from None

    def _run(self, node: fx.Node, args: Any, kwargs: Any, real: bool) -> Any:
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        mod = self.gm.get_submodule(node.target)
        on_meta = any(isinstance(v, torch.Tensor) and v.is_meta for v in _flat_args(args))
        if real and not on_meta or not any(True for _ in mod.parameters()) and \
                not any(True for _ in mod.buffers()):
            return mod(*args, **kwargs)
        state = {k: v.to("meta") for k, v in [*mod.named_parameters(), *mod.named_buffers()]}
        return torch.func.functional_call(mod, state, args, kwargs)



def _flat_args(v: Any) -> list[Any]:
    return [y for x in v for y in _flat_args(x)] if isinstance(v, list | tuple) else [v]


def prune(graph: ir.Graph) -> ir.Graph:
    """Drop the unused extra outputs of multi-output ops (``out, _ = self.lstm(x)``)."""
    used = {i for n in graph.nodes for i in n.inputs} | {graph.output}
    graph.nodes = [n for n in graph.nodes if not (isinstance(n.op, ir.Unsupported) and
                                                 n.name.endswith("]") and n.name not in used)]
    return graph

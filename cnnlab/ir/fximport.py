"""Live ``torch.nn.Module`` -> IR graph, by ``torch.fx`` tracing and one shape-propagating run.

Every traced call with a tensor result becomes one IR node named after the module's qualified
name (``features.0``, ``layer1.0.conv1``) or, for functions and methods, after the fx node
(``add``, ``cat_1``); the graph input is ``input``. Ops the IR cannot model exactly become
:class:`~cnnlab.ir.graph.Unsupported` nodes carrying the observed output shape and the parameter
count, so the analyzer reports their MACs as unknown instead of zero.

A mapped node is kept only if the IR's own shape rule reproduces the shape torch observed;
otherwise it falls back to ``Unsupported``. The one tolerated difference is a global pool:
the IR's ``(C,)`` stands for torch's ``(C, 1, 1)``, which models flatten right after.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError, ShapeError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import node_shape

# a batch of 2 keeps the batch axis distinguishable from the size-1 axes of pooled maps
_BATCH = 2

_ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu", nn.ELU: "elu",
    nn.LeakyReLU: "leakyrelu", nn.Softplus: "softplus", nn.Identity: "identity",
}
_ACT_FUNCS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu",
    torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.gelu: "gelu", F.elu: "elu", F.leaky_relu: "leakyrelu", F.softplus: "softplus",
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh",
                "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                    nn.FeatureAlphaDropout)
_DROPOUT_FUNCS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)
_ADD = (operator.add, operator.iadd, torch.add, "add", "add_", "__add__")
_MUL = (operator.mul, operator.imul, torch.mul, "mul", "mul_", "__mul__", "__rmul__")
_DIV = (operator.truediv, operator.itruediv, torch.div, "div", "div_", "__truediv__")
_CAT = (torch.cat, torch.concat, torch.concatenate)
_SOFTMAX = (F.softmax, torch.softmax, "softmax")
_RESHAPE = (torch.flatten, torch.reshape, torch.squeeze, "flatten", "view", "reshape",
            "squeeze", "view_as", "reshape_as")
_MEAN = (torch.mean, "mean")
# shape- and value-preserving calls that need no node of their own
_ALIAS = ("contiguous", "clone", "detach", "float", "cpu", "requires_grad_")
_POOL_FUNCS = {
    F.max_pool1d: "max", F.max_pool2d: "max", F.max_pool3d: "max",
    F.avg_pool1d: "avg", F.avg_pool2d: "avg", F.avg_pool3d: "avg",
}
_POOL_ARGS = {"max": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                      "return_indices"),
              "avg": ("input", "kernel_size", "stride", "padding", "ceil_mode",
                      "count_include_pad", "divisor_override")}


def _tup(v: Any, dims: int) -> tuple[int, ...]:
    return tuple(int(x) for x in v) if isinstance(v, list | tuple) else (int(v),) * dims


def _pads(p: Any, dims: int) -> ir.Padding:
    if isinstance(p, str):
        return p
    pads = _tup(p, dims)
    return "valid" if not any(pads) else tuple((v, v) for v in pads)


def _arg(node: fx.Node, i: int, key: str, default: Any = None) -> Any:
    if key in node.kwargs:
        return node.kwargs[key]
    return node.args[i] if len(node.args) > i else default


def _name_of(target: Any) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    return f"{mod}.{name}" if mod and mod not in ("_operator", "builtins") else name


def _window_pool(kind: str, k: Any, s: Any, p: Any, dims: int, in_shape: tuple[int, ...],
                 out: tuple[int, ...], ceil: bool = False, dilation: Any = 1,
                 include_pad: bool = True, divisor: Any = None) -> ir.Op | None:
    kernel = _tup(k, dims)
    stride = _tup(s if s not in (None, [], ()) else k, dims)
    pads = _tup(p, dims)
    if any(d != 1 for d in _tup(dilation, dims)) or divisor is not None:
        return None
    if kind == "avg" and not include_pad and any(pads):
        return None  # border windows divide by fewer elements than the IR's k
    if ceil:
        # ceil_mode only matters when it adds a window; otherwise the windows are identical
        floor = tuple(ir.out_size(n, kk, ss, 1, pp, pp)
                      for n, kk, ss, pp in zip(in_shape[1:], kernel, stride, pads, strict=True))
        if floor != out[1:]:
            return None
    return ir.Pool(kind, kernel, stride, _pads(pads, dims))


def _adaptive(kind: str, size: Any, in_shape: tuple[int, ...]) -> ir.Op | None:
    dims = len(in_shape) - 1
    sizes = _tup(size if size is not None else 1, dims) if not isinstance(size, list | tuple) \
        else tuple(n if o is None else int(o) for o, n in zip(size, in_shape[1:], strict=True))
    if all(o == 1 for o in sizes):
        return ir.GlobalPool(kind)
    if all(n % o == 0 for n, o in zip(in_shape[1:], sizes, strict=True)):
        # torch's adaptive windows [floor(i n/o), ceil((i+1) n/o)) are then plain windows
        k = tuple(n // o for n, o in zip(in_shape[1:], sizes, strict=True))
        return ir.Pool(kind, k, k, "valid")
    return None


def _module_op(m: nn.Module, in_shape: tuple[int, ...], out: tuple[int, ...],
               in_ndim: int) -> tuple[ir.Op | None, str]:
    """The IR op of a leaf module (None: unsupported) and a note for the node's origin."""
    dims = len(in_shape) - 1
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        note = "" if m.padding_mode == "zeros" else \
            f"padding_mode={m.padding_mode}, counted as zero padding"
        return ir.Conv(m.out_channels, _tup(m.kernel_size, dims), _tup(m.stride, dims),
                       _pads(m.padding, dims), _tup(m.dilation, dims), m.groups,
                       m.bias is not None), note
    if isinstance(m, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d):
        if m.return_indices:
            return None, ""
        return _window_pool("max", m.kernel_size, m.stride, m.padding, dims, in_shape, out,
                            m.ceil_mode, m.dilation), ""
    if isinstance(m, nn.AvgPool1d | nn.AvgPool2d | nn.AvgPool3d):
        return _window_pool("avg", m.kernel_size, m.stride, m.padding, dims, in_shape, out,
                            m.ceil_mode, include_pad=m.count_include_pad,
                            divisor=getattr(m, "divisor_override", None)), ""
    if isinstance(m, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d | nn.AdaptiveAvgPool3d):
        return _adaptive("avg", m.output_size, in_shape), ""
    if isinstance(m, nn.AdaptiveMaxPool1d | nn.AdaptiveMaxPool2d | nn.AdaptiveMaxPool3d):
        return (None if m.return_indices else _adaptive("max", m.output_size, in_shape)), ""
    if type(m) in _ACT_MODULES:
        return ir.Act(_ACT_MODULES[type(m)]), ""
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
        # without affine there are no gamma/beta, which the IR always counts
        return (ir.BatchNorm(m.eps, m.momentum if m.momentum is not None else 0.1)
                if m.affine else None), ""
    if isinstance(m, _DROPOUT_MODULES):
        return ir.Dropout(m.p), ""
    if isinstance(m, nn.Flatten):
        return (ir.Flatten() if len(out) == 1 else None), ""
    if isinstance(m, nn.Linear):
        return (ir.Linear(m.out_features, m.bias is not None) if in_ndim == 2 else None), ""
    if isinstance(m, nn.Softmax):
        dim = m.dim if m.dim is not None else (0 if in_ndim in (0, 1, 3) else 1)
        return (ir.Softmax() if dim % in_ndim == 1 else None), ""
    return None, ""


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _call_op(node: fx.Node, tensors: list[fx.Node], shape: dict[fx.Node, torch.Size]
             ) -> ir.Op | None:
    """The IR op of a function or method call (None: unsupported)."""
    t = node.target
    x = shape[tensors[0]] if tensors else None
    out = shape[node]

    def is_(group: tuple) -> bool:
        return any(t is g or t == g for g in group)

    if t in _ACT_FUNCS or (node.op == "call_method" and t in _ACT_METHODS):
        act = _ACT_FUNCS.get(t) or _ACT_METHODS[t]
        return ir.Act(act) if len(tensors) == 1 else None
    if is_(_ADD):
        ok = len(tensors) == 2 and len(node.args) == 2 and not node.kwargs
        return ir.Add() if ok else None
    if is_(_MUL) or is_(_DIV):
        consts = [_number(a) for a in node.args if a is not tensors[0]] if tensors else []
        if len(tensors) != 1 or len(node.args) != 2 or node.kwargs or consts[0] is None:
            return None
        if is_(_DIV):
            return ir.Scale(1.0 / consts[0]) if node.args[0] is tensors[0] else None
        return ir.Scale(consts[0])
    if is_(_CAT):
        dim = _arg(node, 1, "dim", _arg(node, 1, "axis", 0))
        return ir.Concat() if len(tensors) >= 2 and dim % len(out) == 1 else None
    if is_(_SOFTMAX):
        dim = _arg(node, 1, "dim")
        return ir.Softmax() if isinstance(dim, int) and dim % len(out) == 1 else None
    if x is None:
        return None
    if is_(_RESHAPE):
        # any reshape that keeps the batch axis and leaves (N, features) is a flatten
        return ir.Flatten() if len(out) == 2 and out[0] == x[0] == _BATCH else None
    if is_(_MEAN):
        dims = _arg(node, 1, "dim")
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        spatial = {d % len(x) for d in dims}
        return ir.GlobalPool("avg") if len(x) > 2 and spatial == set(range(2, len(x))) else None
    if t in _POOL_FUNCS:
        kind = _POOL_FUNCS[t]
        a = {k: _arg(node, i, k) for i, k in enumerate(_POOL_ARGS[kind])}
        if a.get("return_indices"):
            return None
        return _window_pool(kind, a["kernel_size"], a["stride"], a["padding"] or 0, len(x) - 2,
                            tuple(x[1:]), tuple(out[1:]), bool(a["ceil_mode"]),
                            a.get("dilation") or 1, a.get("count_include_pad") is not False,
                            a.get("divisor_override"))
    if t in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d):
        return _adaptive("avg", _arg(node, 1, "output_size"), tuple(x[1:]))
    if t in _DROPOUT_FUNCS:
        return ir.Dropout(float(_arg(node, 1, "p", 0.5)))
    return None


def _compatible(ir_shape: tuple[int, ...], seen: tuple[int, ...]) -> bool:
    n = len(ir_shape)
    return ir_shape == seen or (n == 1 and seen[:1] == ir_shape and all(v == 1 for v in seen[1:]))


class _Importer:
    def __init__(self, gm: fx.GraphModule, root: nn.Module):
        self.gm, self.root = gm, root
        self.graph = ir.Graph(nodes=[ir.Node("input", ir.Input())],
                              source=f"module {type(root).__name__}")
        self.names: dict[fx.Node, str] = {}  # tensor-valued fx node -> IR node
        self.ir_shapes: dict[str, tuple[int, ...]] = {}
        self.consts: dict[fx.Node, set[str]] = {}  # input-independent tensor -> its parameters
        self.counted: set[str] = set()
        self.calls: dict[str, int] = {}
        self.params = dict(root.named_parameters())
        self.multi_out: set[fx.Node] = set()  # calls that returned several tensors

    def unique(self, base: str) -> str:
        # a module called twice (a shared nn.ReLU) gives one node per call: relu, relu#2
        k = self.calls[base] = self.calls.get(base, 0) + 1
        name = base if k == 1 else f"{base}#{k}"
        while name in self.ir_shapes:
            k += 1
            name = f"{base}#{k}"
        return name

    def run(self) -> ir.Graph:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.names[node] = "input"
                self.ir_shapes["input"] = tuple(node.meta["tensor_meta"].shape[1:])
            elif node.op == "get_attr":
                self.consts[node] = {node.target} if node.target in self.params else set()
            elif node.op == "output":
                self.graph.output = self.output_name(node.args[0])
            else:
                self.call(node)
        return self.graph

    def output_name(self, value: Any) -> str | None:
        found: list[str] = []
        fx.node.map_arg(value, lambda n: found.append(self.names[n]) if n in self.names else n)
        return found[0] if found else None

    def call(self, node: fx.Node) -> None:
        used: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: used.append(n))
        # joins keep repeated operands (x + x); other ops list each input once
        ordered = [n for n in used if n in self.names]
        tensors = list(dict.fromkeys(ordered))
        meta = node.meta.get("tensor_meta")
        if not tensors:
            if any(n in self.consts for n in used) or node.op == "get_attr":
                self.consts[node] = set().union(*(self.consts.get(n, set()) for n in used))
            return
        if node.target is operator.getitem and tensors[0] in self.multi_out:
            if not node.users:
                return  # the unused part of `out, _ = self.lstm(x)`
            if isinstance(meta, TensorMetadata) and \
                    tuple(meta.shape[1:]) == self.ir_shapes[self.names[tensors[0]]]:
                self.names[node] = self.names[tensors[0]]
                return
        if not isinstance(meta, TensorMetadata):
            if meta is not None:
                self.multi(node, tensors, meta, used)
            return
        if node.op == "call_method" and node.target in _ALIAS:
            self.names[node] = self.names[tensors[0]]
            return
        shapes = {n: n.meta["tensor_meta"].shape for n in [*tensors, node]}
        note, params = "", self.const_params(used)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            op, note = _module_op(mod, tuple(shapes[tensors[0]][1:]), tuple(meta.shape[1:]),
                                  len(shapes[tensors[0]]))
            params += sum(p.numel() for p in mod.parameters())
            what, base = type(mod).__name__, node.target
        else:
            op = _call_op(node, ordered, shapes)
            what, base = _name_of(node.target), node.name
        self.emit(node, op, ordered if isinstance(op, ir.Add | ir.Concat) else tensors, what,
                  base, note, params)

    def multi(self, node: fx.Node, tensors: list[fx.Node], meta: Any, used: list) -> None:
        """A call returning several tensors (nn.LSTM, chunk): one node with the first's shape."""
        leaves: list[TensorMetadata] = []

        def walk(v: Any) -> None:
            if isinstance(v, TensorMetadata):
                leaves.append(v)
            elif isinstance(v, list | tuple):
                for x in v:
                    walk(x)
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)

        walk(meta)
        if not leaves:
            return
        params = self.const_params(used)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            params += sum(p.numel() for p in mod.parameters())
            what, base = type(mod).__name__, node.target
        else:
            what, base = _name_of(node.target), node.name
        name = self.unique(base)
        shape = tuple(leaves[0].shape[1:])
        self.append(ir.Node(name, ir.Unsupported(what, shape, params),
                            tuple(self.names[t] for t in tensors), base), shape, node)
        self.multi_out.add(node)

    def const_params(self, used: list[fx.Node]) -> int:
        own = set().union(*(self.consts.get(n, set()) for n in used)) - self.counted
        self.counted |= own
        return sum(self.params[p].numel() for p in own)

    def emit(self, node: fx.Node, op: ir.Op | None, tensors: list[fx.Node], what: str,
             base: str, note: str, params: int) -> None:
        name = self.unique(base)
        seen = tuple(node.meta["tensor_meta"].shape[1:])
        inputs = tuple(self.names[t] for t in tensors)
        if op is not None:
            cand = ir.Node(name, op, inputs, base)
            try:
                shape = node_shape(cand, [self.ir_shapes[i] for i in inputs])
                if not _compatible(shape, seen):
                    op = None
            except ShapeError:
                op = None
        if op is None:
            op, shape = ir.Unsupported(what, seen, params), seen
        origin = f"{base} ({note})" if note else base
        self.append(ir.Node(name, op, inputs, origin), shape, node)

    def append(self, n: ir.Node, shape: tuple[int, ...], node: fx.Node) -> None:
        self.graph.nodes.append(n)
        self.ir_shapes[n.name] = shape
        self.names[node] = n.name


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def from_module(module: nn.Module, input_shape: tuple[int, ...]) -> ir.Graph:
    """Trace ``module`` with torch.fx and map it to an IR graph for inputs of ``input_shape``.

    ``input_shape`` has no batch axis, e.g. ``(3, 224, 224)``. The module runs once, in eval
    mode, on a random batch of two; every submodule's train/eval mode is restored afterwards.
    """
    name = type(module).__name__
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v <= 0 for v in shape):
        raise CnnlabError(f"input shape {input_shape} must be positive, e.g. (3, 224, 224)")
    try:
        gm = fx.symbolic_trace(module)
    except Exception as e:  # fx raises TraceError, TypeError, AttributeError... alike
        raise CnnlabError(
            f"cannot trace {name} with torch.fx ({_one_line(e)}); trace a submodule without "
            "data-dependent control flow, or write the architecture as a spec") from None
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise CnnlabError(f"{name}.forward takes {len(inputs)} tensors; cnnlab analyzes "
                          "single-input modules (wrap it in a module that builds the others)")
    modes = {m: m.training for m in module.modules()}
    first = next(module.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    x = torch.randn((_BATCH, *shape), generator=torch.Generator().manual_seed(0)).to(device, dtype)
    module.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(x)
    except Exception as e:
        raise CnnlabError(f"running {name} on an input of shape {shape} failed "
                          f"({_one_line(e)}); check --input (channels x height x width)") from None
    finally:
        for m, training in modes.items():
            m.training = training
    graph = _Importer(gm, module).run()
    if graph.output is None:
        raise CnnlabError(f"{name}.forward returns no tensor computed from its input")
    return graph

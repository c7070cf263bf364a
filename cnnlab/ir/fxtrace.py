"""A ``torch.fx.Tracer`` that gives the same graph as torch.fx's for less work per node.

:mod:`cnnlab.ir.fximport` traces modules with it. Each change keeps the graph node for node
(names, arguments, users): the usual arguments are lowered directly, a call's arguments are
set after its node is made (skipping ``Graph.create_node``'s pytree scan for symbolic ints,
which a symbolic trace has none of), a proxy finds its tracer among flat arguments without a
pytree walk, and the scope and module stack fx copies at every module call and node copy
themselves without ``copy.copy``'s reduce protocol. Together about 30% of a trace of
ResNet-50 or DenseNet-121 (docs/analyze.md, Speed).
"""

from __future__ import annotations

import dis
import inspect
from collections import OrderedDict
from typing import Any

import torch
from torch import fx
from torch._ops import HigherOrderOperator
from torch.fx.proxy import Scope

_PLAIN = frozenset((int, float, bool, str, type(None)))
_CALLS = ("call_function", "call_method", "call_module")


class _Scope(Scope):
    """fx's scope, copied (at every module call) without ``copy.copy``'s reduce protocol."""

    def __copy__(self) -> _Scope:
        return _Scope(self.module_path, self.module_type)


class _Stack(OrderedDict):
    """fx's module stack, copied (into every node's meta) the same way."""

    def __copy__(self) -> _Stack:
        return _Stack(self)


class _Proxy(fx.Proxy):
    """fx's proxy, finding its tracer among flat arguments without a pytree walk (a trace
    has one tracer; anything else goes through ``fx.Proxy.__torch_function__``), and reading
    the caller's bytecode only up to the instruction that iterates it (fx disassembles the
    whole function for each ``a, b = x.shape[-2:]``)."""

    def __iter__(self) -> Any:
        frame = inspect.currentframe()
        calling = frame.f_back if frame is not None else None
        if calling is None:
            raise AssertionError("no calling frame to read the unpacking from")
        for inst in dis.get_instructions(calling.f_code):  # fx: the first at or after f_lasti
            if inst.offset >= calling.f_lasti:
                break
        else:
            raise IndexError("no instruction at the calling frame's f_lasti")
        if inst.opname == "UNPACK_SEQUENCE":
            return (self[i] for i in range(inst.argval))
        return self.tracer.iter(self)

    @classmethod
    def __torch_function__(cls, orig_method: Any, types: Any, args: Any = None,
                           kwargs: Any = None) -> Any:
        args = args if args else ()
        kwargs = kwargs if kwargs else {}
        tracer = next((a.tracer for a in args if isinstance(a, cls)), None)
        if tracer is None or isinstance(orig_method, torch._C.ScriptMethod | HigherOrderOperator) \
                or any(isinstance(a, fx.Proxy) and not isinstance(a, cls) or
                       type(a) in (list, tuple, dict) for a in (*args, *kwargs.values())):
            return super().__torch_function__(orig_method, types, args, kwargs)
        if torch.overrides.is_tensor_method_or_property(orig_method):
            return tracer.create_proxy("call_method", orig_method.__name__, args, kwargs)
        return tracer.create_proxy("call_function", orig_method, args, kwargs,
                                   name=tracer.graph._target_to_str(orig_method.__name__))


class Tracer(fx.Tracer):
    """``torch.fx.Tracer``, same graph: the usual arguments (proxies, numbers, strings, plain
    tuples and lists) are lowered without the base class's checks for parameters, constants
    and opaque types (none of which they are), and a call's arguments are set on its node
    after it is made, through the ``args``/``kwargs`` properties (which keep the users lists)
    but past ``Node.__setattr__``'s re-filing under (op, target), which they do not change."""

    def __init__(self) -> None:
        super().__init__()
        self.scope = _Scope("", None)
        self.module_stack = _Stack()

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def create_arg(self, a: Any) -> Any:
        t = type(a)
        if t is _Proxy or t is fx.Proxy:
            return a.node
        if t in _PLAIN:
            return a
        if t is tuple:
            return tuple([self.create_arg(v) for v in a])
        if t is list:
            return [self.create_arg(v) for v in a]
        return super().create_arg(a)

    def create_node(self, kind: str, target: Any, args: tuple, kwargs: dict,
                    name: str | None = None, type_expr: Any = None) -> fx.Node:
        if kind not in _CALLS or self.check_mutable_operations or not (args or kwargs):
            return super().create_node(kind, target, args, kwargs, name, type_expr)
        node = super().create_node(kind, target, (), {}, name, type_expr)
        if kwargs:
            object.__setattr__(node, "kwargs", kwargs)
        object.__setattr__(node, "args", args)
        return node

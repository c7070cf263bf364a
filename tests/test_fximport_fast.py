"""The importer's fast paths (cnnlab/ir/fximport_walk.py and its helpers) against the general
code they skip: each gives exactly what the general path gives."""

from __future__ import annotations

import operator
from types import SimpleNamespace

import pytest
import torch
from coverage_idioms import IDIOMS
from test_fold import ConvPerWindow
from torch import nn

from cnnlab.common.errors import ShapeError
from cnnlab.ir import fximport_fold as fold
from cnnlab.ir import graph as ir
from cnnlab.ir.capture import Recording
from cnnlab.ir.fximport import from_module
from cnnlab.ir.fximport_args import call_tensors, named_parameters, tensors_in
from cnnlab.ir.fximport_more import more_call
from cnnlab.ir.fximport_ops import (
    ACT_FUNCS,
    ACT_METHODS,
    BINARY_FUNCS,
    BINARY_METHODS,
    T,
    module_op,
)
from cnnlab.ir.fximport_walk import Importer, same_shape
from cnnlab.ir.shapes import node_shape

SHAPES = [(2,), (2, 5), (2, 3, 7), (2, 4, 6, 6), (2, 1, 2, 3, 4)]


@pytest.mark.parametrize("op", [ir.Act("relu"), ir.Act("silu"), ir.BatchNorm(1e-3),
                                ir.Dropout(0.2)])
@pytest.mark.parametrize("shape", SHAPES)
def test_same_shape_is_node_shape_for_element_wise_ops(op: ir.Op, shape: tuple) -> None:
    x = T("x", shape)
    assert same_shape(op, [x]) == node_shape(ir.Node("?", op, ("x",)), [shape[1:]])


@pytest.mark.parametrize("op", [ir.Act("relu"), ir.BatchNorm(1e-5), ir.Dropout(0.1),
                                ir.Scale(0.5), ir.Softmax(1), ir.Softmax(-1)])
@pytest.mark.parametrize("shape", SHAPES)
def test_node_shapes_element_wise_shortcut_is_its_general_rule(
        op: ir.Op, shape: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """node_shape answers the ops of SAME_SHAPE at once; the rules below it agree."""
    from cnnlab.ir import shapes

    assert type(op) in shapes.SAME_SHAPE
    node = ir.Node("?", op, ("x",))
    fast = node_shape(node, [shape[1:]])
    monkeypatch.setattr(shapes, "SAME_SHAPE", frozenset())
    assert fast == node_shape(node, [shape[1:]]) == shape[1:]


def test_same_shape_leaves_every_other_case_to_node_shape() -> None:
    x = T("x", (2, 4, 6, 6))
    assert same_shape(ir.Act("relu"), [x, x]) is None  # node_shape's error, not a shape
    with pytest.raises(ShapeError):
        node_shape(ir.Node("?", ir.Act("relu"), ("x", "x")), [(4, 6, 6)] * 2)
    for op in (ir.Add(), ir.Flatten(), ir.Conv(4, (3, 3)), ir.Reshape((4, 36))):
        assert same_shape(op, [x]) is None


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call through fximport_fold.call, as before the flag that skips it."""
    monkeypatch.setattr(fold, "may_fold", lambda node: True)


NETS = [(name, make, shape) for name, make, shape in IDIOMS] + [
    ("conv-per-window", ConvPerWindow, (2, 8, 8))]


@pytest.mark.parametrize("capture", ["fx", "run"])
@pytest.mark.parametrize(("name", "make", "shape"), NETS, ids=[n[0] for n in NETS])
def test_the_fold_flag_gives_the_general_paths_graph(monkeypatch: pytest.MonkeyPatch,
                                                     name: str, make: type, shape: tuple,
                                                     capture: str) -> None:
    def graph() -> ir.Graph | str:
        try:
            return from_module(make().eval(), shape, capture=capture)
        except Exception as e:  # noqa: BLE001  (both paths must fail alike)
            return f"{type(e).__name__}: {e}"

    torch.manual_seed(0)
    fast = graph()
    _general(monkeypatch)
    torch.manual_seed(0)
    assert graph() == fast


def _target_id(target: object) -> str:
    """A name that is the same in every process (str() of a function holds its address,
    and xdist workers must collect the same ids)."""
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', None) or 'torch'}.{target.__name__}"


@pytest.mark.parametrize("target", [*ACT_FUNCS, *ACT_METHODS], ids=_target_id)
def test_more_call_maps_no_activation(target: object) -> None:
    """map_call looks activations up before more_call: more_call must have none."""
    x = T("x", (2, 4, 6, 6))
    op = "call_method" if isinstance(target, str) else "call_function"
    node = SimpleNamespace(target=target, op=op, name="n")
    name = target if isinstance(target, str) else target.__name__
    assert more_call(None, node, (x,), {}, x, name, set()) is None


class Tied(nn.Module):
    """A shared module, a tied weight, a None bias and a parameter on the root."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3, bias=False)
        self.b = self.a
        self.c = nn.Sequential(nn.Linear(3, 3), nn.Conv2d(3, 3, 1))
        self.c[0].weight = self.a.weight
        self.scale = nn.Parameter(torch.ones(1))


@pytest.mark.parametrize("make", [Tied, ConvPerWindow, lambda: nn.Sequential()])
@pytest.mark.parametrize("paths", [None, "given"])
def test_named_parameters_from_the_capture_walk(make: type, paths: str | None) -> None:
    root = make()
    rec = Recording(torch.fx.Graph(), root, dict(root.named_modules()) if paths else None)
    assert named_parameters(rec, root) == list(root.named_parameters())
    other = SimpleNamespace(graph=None)  # not a Recording: torch's own walk
    assert named_parameters(other, root) == list(root.named_parameters())


W = nn.Parameter(torch.ones(2))


@pytest.mark.parametrize("args, kwargs", [
    ((T("a", (2, 3)),), {}),
    ((T("a", (2, 3)), W, None, (1, 1), [0, 0], 1), {}),
    (([T("a", (2, 3)), T("b", (2, 4))], 1), {}),
    (([T("a", (2, 3)), 2.0, [T("b", (2, 4))]],), {"dim": 1}),
    ((T("a", (2, 3)),), {"other": (T("b", (2, 3)), {"k": T("c", (2, 1))})}),
    ((1, "x", None), {"w": W}),
])
def test_call_tensors_is_tensors(args: tuple, kwargs: dict) -> None:
    assert call_tensors(args, kwargs) == tensors_in((args, kwargs))


class SubBN(nn.BatchNorm2d):
    """Not exactly nn.BatchNorm2d: the general path of module_op."""


@pytest.mark.parametrize("shape", [(2, 4, 5, 5), (2, 3, 5, 5), (2,)])
def test_module_op_batch_norm_fast_path_is_the_general_one(shape: tuple) -> None:
    def op(m: nn.Module) -> object:
        try:
            return module_op(m, shape, {})
        except Exception as e:  # noqa: BLE001
            return str(e).replace("SubBN", "BatchNorm2d")

    assert op(nn.BatchNorm2d(4, eps=1e-3)) == op(SubBN(4, eps=1e-3))


def test_more_call_maps_no_binary_op_nor_prelu() -> None:
    """map_call looks prelu and binary ops up before more_call too."""
    x = T("x", (2, 4, 6, 6))
    for target in [*BINARY_FUNCS, *BINARY_METHODS, torch.nn.functional.prelu]:
        op = "call_method" if isinstance(target, str) else "call_function"
        node = SimpleNamespace(target=target, op=op, name="n")
        name = target if isinstance(target, str) else target.__name__
        assert more_call(None, node, (x, x), {}, x, name, set()) is None, target


@pytest.mark.parametrize("op", [
    ir.Conv(8, (3, 3), (2, 2), ((1, 1), (1, 1))), ir.Conv(4, (1, 1), groups=4),
    ir.Conv(4, (5, 5), padding="same", dilation=(2, 2)), ir.Pool("max", (3, 3), (2, 2)),
    ir.Pool("avg", (2, 2), ceil=True), ir.Conv(4, (9, 9)), ir.Conv(3, (3, 3), groups=2)])
def test_shape_of_caches_what_node_shape_gives(op: ir.Op) -> None:
    """The cached conv/pool shape, asked twice and after other shapes, is node_shape's (its
    error too)."""
    imp = SimpleNamespace(shapes={})
    for shape in [(2, 4, 8, 8), (2, 4, 7, 9), (2, 4, 8, 8), (2, 4, 7, 9)]:
        x = T("x", shape)
        try:
            want: object = node_shape(ir.Node("?", op, ("x",)), [shape[1:]])
        except ShapeError as e:
            want = str(e)
        try:
            got: object = Importer.shape_of(imp, op, [x])
        except ShapeError as e:
            got = str(e)
        assert got == want


def test_the_functions_map_call_sends_straight_to_functional_are_in_no_earlier_table() -> None:
    """map_call's shortcut for pools, pads, dropout and norms skips more_call and its own
    tables: none of them may hold one of these functions."""
    from cnnlab.ir import fximport_map as fmap
    from cnnlab.ir import fximport_more as more
    from cnnlab.ir import fximport_ops as ops

    earlier = [*ACT_FUNCS, *BINARY_FUNCS, torch.nn.functional.prelu, *ops.CAT, *ops.STACK,
               torch.chunk, torch.split, *ops.SOFTMAX, *ops.RESHAPE_FUNCS, *ops.PERMUTE,
               *ops.REDUCE, *more.CONV_FUNCS, *more.MATMUL_FUNCS, *more.NORM_FUNCS,
               torch.einsum, torch.nn.functional.scaled_dot_product_attention, torch.roll,
               torch.addcmul, torch.nn.functional.batch_norm, torch.nn.functional.linear,
               torch.nn.functional.normalize, operator.getitem]
    assert not [t for t in fmap._FUNCTIONAL if any(t is e for e in earlier)]
    x = T("x", (2, 4, 6, 6))
    for t in fmap._FUNCTIONAL:
        node = SimpleNamespace(target=t, op="call_function", name="n")
        assert more_call(None, node, (x,), {}, x, t.__name__, set()) is None, t


class Shadow(nn.Module):
    """Submodules named like the Recording's own attributes (``root``, ``graph``)."""

    def __init__(self):
        super().__init__()
        self.root = nn.Linear(2, 2)
        self.graph = nn.Sequential(nn.BatchNorm1d(2))
        self.weight = nn.Parameter(torch.ones(2))
        self.register_buffer("scale", torch.ones(1))
        self.const = torch.zeros(1)  # a plain tensor attribute (fx's tensor constants)


def _chain(gm: object, target: str) -> object:
    v = gm
    for part in target.split("."):
        v = getattr(v, part)
    return v


def _targets(rec: Recording) -> list[str]:
    return [n.target for n in rec.graph.nodes if n.op == "get_attr"]


@pytest.mark.parametrize(("name", "make", "shape"), NETS, ids=[n[0] for n in NETS])
def test_attr_is_getattr_along_the_path(name: str, make: type, shape: tuple) -> None:
    from cnnlab.ir.fximport import _by_run
    from cnnlab.ir.scope import analysis_scope

    root = make().eval()
    with analysis_scope():
        rec = _by_run(root, shape, torch.float32)
    imp = Importer(rec, root, torch.float32)
    for target in _targets(rec):
        assert imp.attr(target) is _chain(rec, target), target


@pytest.mark.parametrize("target", ["root.weight", "root.bias", "graph.0.weight",
                                    "graph.0.running_mean", "weight", "scale", "const"])
def test_attr_leaves_the_recordings_own_names_to_getattr(target: str) -> None:
    root = Shadow()
    rec = Recording(torch.fx.Graph(), root)
    imp = Importer(rec, root, torch.float32)
    try:
        want: object = _chain(rec, target)
    except AttributeError as e:
        want = str(e)
    try:
        got: object = imp.attr(target)
    except AttributeError as e:
        got = str(e)
    assert got is want or got == want

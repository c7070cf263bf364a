"""The run-capture's fast paths against the slow ones they replace.

  * ``GraphWriter.node`` (cnnlab.ir.capture_graph) names and files each node exactly as
    ``torch.fx.Graph.create_node`` does, unusual names included;
  * a leaf watched through an instance ``_call_impl`` records the same graph as one watched
    by a forward pre-hook and hook (the path every leaf takes while a global module hook is
    registered), and the module is left as it was, also when the run fails.
"""

from __future__ import annotations

import operator

import pytest
import torch
from coverage_nets import NETS
from torch import fx, nn
from torch.nn.modules import module as module_mod
from zoo_nets import ZOO

from cnnlab.common.errors import CnnlabError
from cnnlab.ir.capture import record
from cnnlab.ir.capture_graph import GraphWriter

# fx candidates with every branch of create_name: plain, magic, camel case, a path, a
# trailing number, a builtin or keyword, an illegal character, a leading digit, repeats
TARGETS = ["conv2d", torch.conv2d, "__add__", operator.getitem, "layer1.0.conv1", "fooBar",
           "block_1", "block", "block", "block_1", "max", "sum", "max", "class", "a-b", "0x",
           "layer1.0.conv1", "features.10", "features", "features_10", torch.add, "add",
           "add_1", "add", "_", "__", "relu", torch.relu, "relu_2", "relu", "block_01", "block_01",
           "blocks.0.1", "blocks.0.1", "blocks_0", "blocks.0", "x_1", "x", "x_1", "max_1", "w_5",
           "w_1", "w_7", "w_1"]


def _state(g: fx.Graph) -> tuple:
    ns = g._graph_namespace
    table = {k: [n.name for n in v] for k, v in g._find_nodes_lookup_table.table.items() if v}
    def named(a: object) -> object:
        return fx.node.map_arg(a, lambda n: n.name)

    return ([(n.name, n.op, n.target, named(n.args), named(n.kwargs), type(n.kwargs),
              [u.name for u in n.users], [i.name for i in n.all_input_nodes]) for n in g.nodes],
            sorted(ns._used_names), ns._base_count, sorted(ns._obj_to_name.values()), table,
            g._len, len(g.nodes))


def test_the_writer_builds_what_create_node_builds() -> None:
    slow, fast = fx.Graph(), fx.Graph()
    writer = GraphWriter(fast)
    prev = [slow.placeholder("x"), fast.placeholder("x")]
    for i, t in enumerate(TARGETS):
        op = "call_function" if callable(t) else ("call_module" if i % 2 else "call_method")
        kwargs = {"k": prev[0]} if i % 3 == 0 else None
        prev = [slow.create_node(op, t, (prev[0], i), kwargs),
                writer.node(op, t, (prev[1], i), kwargs and {"k": prev[1]})]
    for g in (slow, fast):  # fx goes on as usual after the writer
        g.output(g.create_node("call_method", "block", (next(iter(g.nodes)),)))
    assert _state(fast) == _state(slow)


def _dump(net: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> list:
    x = torch.empty((2, *shape), dtype=dtype, device="meta")
    rec = record(net, x, fx.Tracer().is_leaf_module)
    return [(n.name, n.op, n.target, repr(n.args), repr(n.kwargs),
             [i.name for i in n.all_input_nodes]) for n in rec.graph.nodes]


def _by_hooks(net: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> list:
    handle = module_mod.register_module_forward_hook(lambda *_: None)
    try:
        return _dump(net, shape, dtype)
    finally:
        handle.remove()


class Awkward(nn.Module):
    """Leaves called in every way a hook sees differently from a plain call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.direct = nn.Conv2d(4, 4, 1)
        self.normed = nn.utils.parametrizations.weight_norm(nn.Conv2d(4, 4, 1))
        self.old_norm = nn.utils.weight_norm(nn.Conv2d(4, 4, 1))  # a forward pre-hook
        self.hooked = nn.BatchNorm2d(4)
        self.hooked.register_forward_hook(lambda _m, _a, out: out * 2)
        self.shared = nn.ReLU()
        self.seq = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shared(self.conv(x))
        y = self.direct.forward(y)  # not a module call: fx and hooks see the F.conv2d
        y = self.old_norm(self.normed(y))
        return self.shared(self.seq(self.hooked(y)))


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"),
                         [("awkward", Awkward, (3, 8, 8), torch.float32), *NETS,
                          *[(n, f, (3, 64, 64), torch.float32) for n, f in ZOO[:3]]],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_watched_leaves_record_what_hooks_record(name, factory, shape, dtype) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert _dump(net, shape, dtype) == _by_hooks(net, shape, dtype)


class Fails(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y


def _attributes(net: nn.Module) -> dict:
    return {p: (sorted(m.__dict__), dict(m._forward_hooks), dict(m._forward_pre_hooks),
                {k: id(v) for k, v in m._parameters.items()})
            for p, m in net.named_modules()}


def test_the_module_is_left_as_it_was() -> None:
    net, failing = Awkward(), Fails()
    before, before_failing = _attributes(net), _attributes(failing)
    _dump(net, (3, 8, 8), torch.float32)
    with pytest.raises(CnnlabError):
        _dump(failing, (3, 8, 8), torch.float32)
    assert _attributes(net) == before and _attributes(failing) == before_failing

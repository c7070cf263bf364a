"""Named models: options, shapes of the sheets' variants, factories, plugins."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.models import zoo as models

OUTPUTS = {"baseline": 10, "baseline-same": 10, "tf-tutorial": 10, "linear": 10, "shallow": 10,
           "eth": 10, "pairs-sum": 19, "pairs-digits": 20, "fast": 10}


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_named_models_build_and_output(name):
    m = models.get(name)
    net = m.build(seed=0).eval()
    out = net(torch.zeros(2, *m.input_shape))
    assert out.flatten(1).shape == (2, OUTPUTS[name])


def test_baseline_is_the_sheet_and_counts_params_by_hand():
    m = models.get("baseline")
    assert m.spec == "conv5x5x32 relu maxpool2 conv5x5x64 relu maxpool2 fc1024 relu fc10"
    by_hand = (5 * 5 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (4 * 4 * 64 * 1024 + 1024) + (
        1024 * 10 + 10)
    assert sum(p.numel() for p in m.build().parameters()) == by_hand


def test_options_change_the_graph():
    drop = models.get("baseline", keep_prob=0.5).graph()
    ps = [n.op.p for n in drop.nodes if isinstance(n.op, ir.Dropout)]
    assert ps == [0.5, 0.5, 0.5]  # HUJI 4.1: after every hidden layer
    bn = models.get("eth", conv2=True, batch_norm=True, keep_prob=0.8).graph()
    kinds = [n.op.kind for n in bn.nodes[1:]]
    assert kinds.count("conv") == 2 and kinds.count("batchnorm") == 2
    assert kinds.index("batchnorm") == kinds.index("conv") + 1  # BN right after the conv
    assert kinds.count("dropout") == 1 and kinds.index("dropout") > kinds.index("linear")
    small = models.get("baseline", widths="8x16x32").build()
    assert small.layers["fc1"].weight.shape == (32, 4 * 4 * 16)
    with pytest.raises(CnnlabError, match="widths"):
        models.get("baseline", widths="8x16")
    with pytest.raises(CnnlabError, match="keep_prob"):
        models.get("eth", keep_prob=0.0)
    with pytest.raises(CnnlabError):
        models.get("linear", keep_prob=0.5)


def test_linear_model_is_linear():
    g = models.get("linear").graph()
    assert not [n for n in g.nodes if isinstance(n.op, ir.Act)]
    assert all(n.op.op == "avg" for n in g.nodes if isinstance(n.op, ir.Pool))
    net = models.get("linear").build(seed=0).eval()
    a, b = torch.randn(1, 1, 28, 28), torch.randn(1, 1, 28, 28)
    zero = net(torch.zeros(1, 1, 28, 28))
    torch.testing.assert_close(net(a + b) - zero, (net(a) - zero) + (net(b) - zero),
                               rtol=1e-4, atol=1e-4)


def test_factory_models_and_spec_strings():
    class Tiny(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.fc = nn.Linear(shape[0] * shape[1] * shape[2], 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    m = models.ModelDef("tiny-factory", "", (1, 8, 8), factory=Tiny)
    assert isinstance(m.build(seed=1), Tiny)
    with pytest.raises(CnnlabError, match="no spec"):
        m.graph()
    custom = models.resolve("conv3x3x4 relu fc10")
    assert custom.name == "custom" and custom.build((1, 10, 10))(torch.zeros(1, 1, 10, 10)).shape \
        == (1, 10)
    with pytest.raises(CnnlabError, match="named models"):
        models.resolve("conv3x3x4 relu fc10", keep_prob=0.5)


def test_plugins_are_optional(monkeypatch):
    monkeypatch.setattr(models, "PLUGIN_GROUP", "cnnlab.no_such_plugin_group")
    monkeypatch.setattr(models, "_plugins_loaded", False)
    assert "baseline" in models.names()

"""The NumPy network runs an IR graph exactly like the torch module cnnlab.models.build makes of
it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir import spec
from cnnlab.models.build import build
from cnnlab.ref import layers
from cnnlab.ref.network import (
    init_params,
    loss_and_grads,
    network_backward,
    network_forward,
    params_from_torch,
)

CASES = [
    ("conv5x5x8 relu maxpool2 fc10", (1, 12, 12)),
    ("conv3x3x4(padding=same, stride=2) tanh avgpool2(stride=1) flatten dropout0.5 fc5 softmax",
     (2, 9, 8)),
    ("conv3x3x4(padding=same) res{conv3x3x4(padding=same) relu conv3x3x4(padding=same)} relu "
     "gap fc3", (2, 6, 6)),
    ("conv3x3x4(padding=same) bn sigmoid maxpool3(stride=2, padding=same) fc4", (3, 7, 7)),
    ("conv3x3x3x2(groups=1, dilation=2, padding=same) softplus maxpool2 fc3", (1, 5, 6, 6)),
    ("conv2x4(groups=2, stride=2, padding=full) relu globalmaxpool scale0.5 fc2",
     (4, 9)),
]


def torch_net(text, shape, seed=0):
    graph = spec.parse(text)
    module = build(graph, shape, seed=seed).double().eval()
    with torch.no_grad():  # non-trivial batchnorm statistics so eval mode is not the identity
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return graph, module


@pytest.mark.parametrize("text,shape", CASES)
def test_forward_and_backward_equal_torch(text, shape):
    graph, module = torch_net(text, shape)
    params = params_from_torch(module, graph)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, *shape))
    out, cache = network_forward(graph, params, x)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    d = rng.standard_normal(out.shape)
    yt.backward(torch.tensor(d))
    dx, grads = network_backward(d, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, g in grads.items():
        owner = next(m for m in module.layers[name].modules()
                     if getattr(m, "weight", None) is not None)
        for key, val in g.items():
            np.testing.assert_allclose(val, getattr(owner, key).grad.numpy(), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{name}.{key}")
    assert set(grads) == set(params)


def test_concat_and_gamma_residual_graph():
    text = "cat{conv1x2 | conv3x2(padding=same) elu | } res(gamma=0.7071){conv3x6(padding=same)} "
    text += "leakyrelu"
    graph = spec.parse(text)
    kinds = [n.op.kind for n in graph.nodes]
    assert "concat" in kinds and "add" in kinds
    shape = (2, 7)
    module = build(graph, shape, seed=0).double().eval()
    params = params_from_torch(module, graph)
    x = np.random.default_rng(2).standard_normal((2, *shape))
    out, cache = network_forward(graph, params, x)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10)
    yt.sum().backward()
    dx, _ = network_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_batchnorm_train_mode_equals_torch():
    text = "conv3x3x4 bn relu fc3"
    graph = spec.parse(text)
    module = build(graph, (2, 6, 6), seed=0).double().train()
    params = params_from_torch(module, graph)
    x = np.random.default_rng(3).standard_normal((5, 2, 6, 6))
    out, cache = network_forward(graph, params, x, train=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    bn = module.layers["bn1"]
    np.testing.assert_allclose(params["bn1"]["running_mean"], bn.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(params["bn1"]["running_var"], bn.running_var.numpy(), atol=1e-12)
    d = np.random.default_rng(4).standard_normal(out.shape)
    yt.backward(torch.tensor(d))
    dx, grads = network_backward(d, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(grads["bn1"]["weight"], bn.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(grads["conv1"]["weight"],
                               module.layers["conv1"].weight.grad.numpy(), atol=1e-10)


def test_loss_and_grads_use_the_logits_below_softmax():
    graph = spec.parse("conv3x3x4 relu maxpool2 fc5 softmax")
    module = build(graph, (1, 8, 8), seed=0).double()
    params = params_from_torch(module, graph)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 5, size=4)
    loss, dx, grads = loss_and_grads(graph, params, x, y)
    xt = torch.tensor(x, requires_grad=True)
    logits = module.layers["fc1"](module.layers["maxpool1"](
        module.layers["relu1"](module.layers["conv1"](xt))))
    lt = F.cross_entropy(logits, torch.tensor(y))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads["fc1"]["weight"], module.layers["fc1"].weight.grad.numpy(),
                               atol=1e-12)


def test_init_params_naive_network_and_numeric_gradient():
    graph = spec.parse("conv3x3x2(padding=same) tanh avgpool2 fc3")
    params = init_params(graph, (1, 4, 4), seed=0)
    assert params["conv1"]["weight"].shape == (2, 1, 3, 3)
    assert params["fc1"]["weight"].shape == (3, 8)
    assert not np.any(params["fc1"]["bias"])
    params["conv1"]["bias"] += 0.1
    x = np.random.default_rng(6).standard_normal((2, 1, 4, 4))
    out, cache = network_forward(graph, params, x)
    out_n, cache_n = network_forward(graph, params, x, naive=True)
    np.testing.assert_allclose(out, out_n, atol=1e-13)
    d = np.random.default_rng(7).standard_normal(out.shape)
    dx, grads = network_backward(d, cache)
    dx_n, grads_n = network_backward(d, cache_n)
    np.testing.assert_allclose(dx, dx_n, atol=1e-13)
    w = params["conv1"]["weight"]
    num = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        old = w[idx]
        w[idx] = old + 1e-6
        hi = np.sum(network_forward(graph, params, x)[0] * d)
        w[idx] = old - 1e-6
        lo = np.sum(network_forward(graph, params, x)[0] * d)
        w[idx] = old
        num[idx] = (hi - lo) / 2e-6
    np.testing.assert_allclose(grads["conv1"]["weight"], num, atol=1e-7)
    np.testing.assert_allclose(grads_n["conv1"]["weight"], num, atol=1e-7)


def test_dropout_train_mode_is_inverted_dropout():
    graph = spec.parse("fc50 dropout0.5")
    params = init_params(graph, (20,), seed=0)
    x = np.random.default_rng(0).standard_normal((4, 20))
    out_eval, _ = network_forward(graph, params, x)
    out, cache = network_forward(graph, params, x, train=True, rng=np.random.default_rng(1))
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2 * out_eval[kept])
    assert 0.3 < kept.mean() < 0.7
    dx, _ = network_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(dx, (2.0 * kept) @ params["fc1"]["weight"])


def test_unsupported_nodes_raise_clear_errors():
    with pytest.raises(CnnlabError, match="gelu"):
        init_params(spec.parse("fc4 gelu"), (3,))
    g = ir.Graph()
    g.add(ir.Unsupported("torch.fft.fft", shape=(3,)))
    with pytest.raises(CnnlabError, match="no NumPy reference"):
        network_forward(g, {}, np.zeros((1, 3)))
    graph = spec.parse("fc4")
    with pytest.raises(CnnlabError, match="missing parameter"):
        network_forward(graph, {}, np.zeros((1, 3)))
    with pytest.raises(CnnlabError, match="kernel"):
        network_forward(spec.parse("conv5x5x1"), {}, np.zeros((1, 1, 3, 3)))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**31))
def test_linear_fast_equals_naive_and_torch(n, c, f, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, c, 2)), rng.standard_normal((f, 2 * c))
    b = rng.standard_normal(f) if bias else None
    y, cache = layers.linear_forward(x, w, b)
    yn, cache_n = layers.linear_forward_naive(x, w, b)
    np.testing.assert_allclose(y, yn, atol=1e-12)
    d = rng.standard_normal(y.shape)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    F.linear(xt.flatten(1), wt, bt).backward(torch.tensor(d))
    for got, naive, want in zip(layers.linear_backward(d, cache),
                                layers.linear_backward_naive(d, cache_n),
                                (xt.grad, wt.grad, bt.grad if bias else None), strict=True):
        if want is None:
            assert got is None and naive is None
        else:
            np.testing.assert_allclose(got, want.numpy(), atol=1e-12)
            np.testing.assert_allclose(naive, want.numpy(), atol=1e-12)


@pytest.mark.parametrize("fn,torch_fn", [
    ("relu", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
    ("identity", lambda t: t * 1), ("leakyrelu", F.leaky_relu), ("elu", F.elu),
    ("softplus", F.softplus),
])
def test_activations_equal_torch_autograd(fn, torch_fn):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)) * 40  # large: overflow paths
    d = np.random.default_rng(1).standard_normal(x.shape)
    y, cache = layers.act_forward(x, fn)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(d))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layers.act_backward(d, cache), xt.grad.numpy(), rtol=1e-12,
                               atol=1e-12)

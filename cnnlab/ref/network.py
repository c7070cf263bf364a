"""Run a whole :class:`cnnlab.ir.graph.Graph` forward and backward in NumPy.

The graph is the one the analyzer and the torch builder read (``cnnlab.ir.spec.parse``); shapes
and window parameters come from :mod:`cnnlab.ir.shapes`, so ``'same'`` means the same here.
Parameters are a dict ``{node name: {"weight": ..., "bias": ...}}`` with torch's layouts:
conv ``weight (F, C/G, *k)``, linear ``weight (out, in)``, batchnorm ``weight``, ``bias``,
``running_mean``, ``running_var`` ``(C,)``.

Conv nodes are cross-correlations with zero padding (what the IR and every framework mean by
convolution); pools pad as torch does. Activations ``gelu`` and ``Unsupported`` nodes have no
NumPy reference and raise :class:`~cnnlab.common.errors.CnnlabError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.common.errors import CnnlabError
from cnnlab.ir import graph as ir
from cnnlab.ir.shapes import infer_shapes, window_params

from . import layers
from .conv import conv_backward, conv_backward_naive, conv_forward, conv_forward_naive
from .pool import pool_backward, pool_forward
from .softmax import (
    cross_entropy_backward,
    cross_entropy_forward,
    softmax_backward,
    softmax_forward,
)

Params = dict[str, dict[str, np.ndarray]]
Shape = tuple[int, ...]


_REF_OPS = (ir.Input, ir.Conv, ir.Pool, ir.GlobalPool, ir.Act, ir.BatchNorm, ir.Dropout,
            ir.Flatten, ir.Linear, ir.Softmax, ir.Add, ir.Concat, ir.Scale)


def _check_supported(graph: ir.Graph) -> None:
    for node in graph.nodes:
        op = node.op
        if isinstance(op, ir.Unsupported):
            raise CnnlabError(f"layer {node.name}: {op.target} has no NumPy reference; "
                              "the reference runs conv, pool, act, flatten, fc, dropout, bn, "
                              "softmax, add, concat, global pool and scale nodes")
        # ops and variants only traced modules bring (cnnlab.ir.fximport)
        variant = (isinstance(op, ir.Pool) and op.ceil
                   or isinstance(op, ir.GlobalPool) and op.keepdim
                   or isinstance(op, ir.Linear) and op.last
                   or isinstance(op, ir.Softmax) and (op.axis != 0 or op.log)
                   or isinstance(op, ir.Concat) and op.axis != 0)
        if variant or not isinstance(op, _REF_OPS):
            raise CnnlabError(f"layer {node.name}: {op.kind} ({op}) has no NumPy reference; "
                              "the reference runs conv, pool, act, flatten, fc, dropout, bn, "
                              "softmax, add, concat, global pool and scale nodes")
        if isinstance(op, ir.Act) and op.fn not in layers.ACTIVATIONS:
            raise CnnlabError(f"layer {node.name}: activation {op.fn} has no NumPy reference; "
                              f"use one of {', '.join(layers.ACTIVATIONS)}")


def init_params(graph: ir.Graph, input_shape: Shape, seed: int = 0,
                dtype: Any = np.float64) -> Params:
    """He-normal weights (``std = sqrt(2 / fan_in)``), zero biases, identity batchnorm.

    ``input_shape`` excludes the batch axis, e.g. ``(1, 28, 28)``.
    """
    _check_supported(graph)
    shapes = infer_shapes(graph, tuple(input_shape))
    rng = np.random.default_rng(seed)
    params: Params = {}
    for node in graph.nodes[1:]:
        op = node.op
        x = shapes[node.inputs[0]] if node.inputs else ()
        if isinstance(op, ir.Conv):
            w = window_params(node, x)
            shape = (op.out_channels, x[0] // op.groups, *w.kernel)
        elif isinstance(op, ir.Linear):
            shape = (op.out_features, int(np.prod(x)))
        elif isinstance(op, ir.BatchNorm):
            c = x[0]
            params[node.name] = {"weight": np.ones(c, dtype), "bias": np.zeros(c, dtype),
                                 "running_mean": np.zeros(c, dtype),
                                 "running_var": np.ones(c, dtype)}
            continue
        else:
            continue
        fan_in = int(np.prod(shape[1:]))
        p = {"weight": (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)}
        if op.bias:
            p["bias"] = np.zeros(shape[0], dtype)
        params[node.name] = p
    return params


def params_from_torch(module: Any, graph: ir.Graph, dtype: Any = np.float64) -> Params:
    """Copy the parameters of ``cnnlab.models.build.build(graph, ...)`` (``module.layers[name]``).

    A layer wrapped with explicit padding (``nn.Sequential(Pad, Conv2d)``) or flattening
    (``FlattenLinear``) is searched for its first submodule that owns a ``weight``.
    """
    _check_supported(graph)
    params: Params = {}
    for node in graph.nodes[1:]:
        if not isinstance(node.op, ir.Conv | ir.Linear | ir.BatchNorm):
            continue
        if node.name not in module.layers:
            raise CnnlabError(f"layer {node.name}: the torch module has no layers[{node.name!r}];"
                              " build it from the same graph with cnnlab.models.build.build")
        owner = next((m for m in module.layers[node.name].modules()
                      if getattr(m, "weight", None) is not None), None)
        if owner is None:
            raise CnnlabError(f"layer {node.name}: no submodule with a weight in the torch module")
        p: dict[str, np.ndarray] = {}
        for key in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(owner, key, None)
            if t is not None:
                p[key] = t.detach().cpu().numpy().astype(dtype)
        params[node.name] = p
    return params


@dataclass
class NetCache:
    graph: ir.Graph
    params: Params
    shapes: dict[str, Shape]
    caches: dict[str, Any] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    # after backward: dL/d(output of each node), e.g. to measure a receptive field
    node_grads: dict[str, np.ndarray] = field(default_factory=dict)
    naive: bool = False


def _param(params: Params, node: ir.Node, key: str, required: bool = True) -> np.ndarray | None:
    p = params.get(node.name, {}).get(key)
    if p is None and required:
        raise CnnlabError(f"layer {node.name}: missing parameter {key!r}; create parameters "
                          "with init_params(graph, input_shape) or params_from_torch")
    return p


def network_forward(graph: ir.Graph, params: Params, x: np.ndarray, train: bool = False,
                    rng: np.random.Generator | None = None, naive: bool = False
                    ) -> tuple[np.ndarray, NetCache]:
    """Run ``graph`` on a batch ``x`` of shape ``(N, *input_shape)``; returns the output node's
    value ``(N, *out_shape)`` and the cache for :func:`network_backward`.

    ``train``: dropout drops (with ``rng``) and batchnorm uses batch statistics (and updates
    the running ones in ``params``); ``naive``: the loop convolutions (slow, for testing).
    """
    _check_supported(graph)
    shapes = infer_shapes(graph, tuple(x.shape[1:]))
    cache = NetCache(graph, params, shapes, naive=naive)
    vals = cache.values
    for node in graph.nodes:
        op = node.op
        if isinstance(op, ir.Input):
            vals[node.name] = x
            continue
        xs = [vals[i] for i in node.inputs]
        a = xs[0]
        in_shape = shapes[node.inputs[0]]
        if isinstance(op, ir.Conv):
            w = window_params(node, in_shape)
            fwd = conv_forward_naive if naive else conv_forward
            y, c = fwd(a, _param(params, node, "weight"),
                       _param(params, node, "bias", required=op.bias), stride=w.stride,
                       padding=w.pads, dilation=w.dilation, groups=op.groups)
        elif isinstance(op, ir.Pool):
            w = window_params(node, in_shape)
            y, c = pool_forward(a, op.op, w.kernel, w.stride, w.pads)
        elif isinstance(op, ir.GlobalPool):
            y, c = layers.global_pool_forward(a, op.op)
        elif isinstance(op, ir.Act):
            y, c = layers.act_forward(a, op.fn)
        elif isinstance(op, ir.Linear):
            y, c = layers.linear_forward(a, _param(params, node, "weight"),
                                         _param(params, node, "bias", required=op.bias))
        elif isinstance(op, ir.Flatten):
            y, c = layers.flatten_forward(a)
        elif isinstance(op, ir.Dropout):
            y, c = layers.dropout_forward(a, op.p, train, rng)
        elif isinstance(op, ir.BatchNorm):
            y, c = layers.batchnorm_forward(
                a, _param(params, node, "weight"), _param(params, node, "bias"),
                _param(params, node, "running_mean"), _param(params, node, "running_var"),
                op.eps, op.momentum, train)
        elif isinstance(op, ir.Softmax):
            y, c = softmax_forward(a, axis=1)
        elif isinstance(op, ir.Add):
            y, c = layers.add_forward(xs, op.gamma), None
        elif isinstance(op, ir.Concat):
            y, c = layers.concat_forward(xs)
        elif isinstance(op, ir.Scale):
            y, c = layers.scale_forward(xs, op.factor), None
        else:  # pragma: no cover - _check_supported rejects the rest
            raise CnnlabError(f"layer {node.name}: {op.kind} has no NumPy reference")
        vals[node.name] = y
        cache.caches[node.name] = c
    return vals[graph.out], cache


def network_backward(dout: np.ndarray, cache: NetCache, at: str | None = None
                     ) -> tuple[np.ndarray, Params]:
    """Back-propagate ``dout = dL/d(output of node at)`` (default: the graph's output).

    Returns ``dL/dx`` (like the input batch) and gradients shaped like the parameters
    (``grads[name]["weight"]``...). ``cache.node_grads`` keeps every node's output gradient.
    """
    graph = cache.graph
    at = at or graph.out
    order = [n.name for n in graph.nodes]
    if at not in order:
        raise CnnlabError(f"network_backward: no node named {at!r}")
    pending: dict[str, np.ndarray] = {at: dout}
    grads: Params = {}

    def send(name: str, g: np.ndarray) -> None:
        pending[name] = pending[name] + g if name in pending else g

    for node in reversed(graph.nodes[: order.index(at) + 1]):
        if node.name not in pending:
            continue  # the output does not depend on this node
        d = pending.pop(node.name)
        cache.node_grads[node.name] = d
        op, c = node.op, cache.caches.get(node.name)
        if isinstance(op, ir.Input):
            continue
        src = node.inputs
        if isinstance(op, ir.Conv):
            dx, dw, db = (conv_backward_naive if cache.naive else conv_backward)(d, c)
            grads[node.name] = {"weight": dw} | ({"bias": db} if db is not None else {})
            send(src[0], dx)
        elif isinstance(op, ir.Linear):
            dx, dw, db = layers.linear_backward(d, c)
            grads[node.name] = {"weight": dw} | ({"bias": db} if db is not None else {})
            send(src[0], dx)
        elif isinstance(op, ir.BatchNorm):
            dx, dg, dbeta = layers.batchnorm_backward(d, c)
            grads[node.name] = {"weight": dg, "bias": dbeta}
            send(src[0], dx)
        elif isinstance(op, ir.Pool):
            send(src[0], pool_backward(d, c))
        elif isinstance(op, ir.GlobalPool):
            send(src[0], layers.global_pool_backward(d, c))
        elif isinstance(op, ir.Act):
            send(src[0], layers.act_backward(d, c))
        elif isinstance(op, ir.Flatten):
            send(src[0], layers.flatten_backward(d, c))
        elif isinstance(op, ir.Dropout):
            send(src[0], layers.dropout_backward(d, c))
        elif isinstance(op, ir.Softmax):
            send(src[0], softmax_backward(d, c))
        elif isinstance(op, ir.Add):
            for s in src:
                send(s, d * op.gamma)
        elif isinstance(op, ir.Concat):
            for s, g in zip(src, layers.concat_backward(d, c), strict=True):
                send(s, g)
        elif isinstance(op, ir.Scale):
            send(src[0], d * op.factor)
    dx = cache.node_grads.get(graph.nodes[0].name)
    if dx is None:
        dx = np.zeros_like(cache.values[graph.nodes[0].name])
    return dx, grads


def loss_and_grads(graph: ir.Graph, params: Params, x: np.ndarray, y: np.ndarray,
                   train: bool = False, rng: np.random.Generator | None = None
                   ) -> tuple[float, np.ndarray, Params]:
    """Mean cross-entropy of integer labels ``y (N,)``, ``dL/dx`` and the parameter gradients.

    If the output node is a softmax, the loss is computed from its input logits (stable
    log-sum-exp) and back-propagation starts there, as the sheets' "loss" layer does.
    """
    out, cache = network_forward(graph, params, x, train=train, rng=rng)
    last = graph.node(graph.out)
    at = graph.out
    logits = out
    if isinstance(last.op, ir.Softmax):
        at = last.inputs[0]
        logits = cache.values[at]
    if logits.ndim != 2:
        raise CnnlabError(f"loss: the network's output has shape {logits.shape[1:]}; "
                          "cross-entropy needs class scores (end with fc<classes>)")
    loss, ce = cross_entropy_forward(logits, y)
    dx, grads = network_backward(cross_entropy_backward(1.0, ce), cache, at=at)
    return loss, dx, grads

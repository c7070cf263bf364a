"""The rules of the ONNX importer: one ONNX node on the data path -> IR ops.

:func:`convert` returns the IR value of each output of the node. Attributes are read with
ONNX's defaults; explicit ``pads`` ``[b1..bn, e1..en]`` become the IR's ``(low, high)`` pairs
and ``auto_pad=SAME_UPPER`` the IR's ``"same"`` (the TF rule: the extra padding at the end).
An op without a rule is an ``Unsupported`` row with the inferred shape and its initializers'
sizes as parameters (never a silent 0).
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.ir import graph as ir

ACTS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leakyrelu",
    "Elu": "elu", "Selu": "selu", "Celu": "celu", "Softplus": "softplus",
    "Softsign": "softsign", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
    "Mish": "mish", "Gelu": "gelu", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs",
    "Neg": "neg", "Erf": "erf", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos",
    "Floor": "floor", "Round": "round", "Sign": "sign", "Softshrink": "softshrink",
    "Hardshrink": "hardshrink", "ThresholdedRelu": "threshold",
}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "max",
          "Min": "min"}
ALIASES = ("Identity", "Cast", "Dropout")


def attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _pads(a: dict[str, Any], dims: int) -> ir.Padding:
    auto = _s(a.get("auto_pad", "NOTSET"))
    if auto == "SAME_UPPER":
        return "same"
    if auto == "VALID":
        return "valid"
    if auto == "SAME_LOWER":
        raise ValueError("auto_pad SAME_LOWER has no IR rule; export with explicit pads")
    p = list(a.get("pads", [0] * 2 * dims))
    pads = tuple((int(p[i]), int(p[i + dims])) for i in range(dims))
    return "valid" if not any(lo or hi for lo, hi in pads) else pads


def _init_size(imp: Any, name: str) -> int:
    return math.prod(imp.inits[name].dims) if name in imp.inits else 0


def convert(imp: Any, node: Any, name: str) -> list[str]:
    op, a = node.op_type, attrs(node)
    ins = list(node.input)
    x = imp.outputs.get(ins[0], "") if ins else ""
    rank = len(imp.shape(x)) if x else 0
    if op in ALIASES:
        if op == "Dropout":
            ratio = imp.const(ins[1]) if len(ins) > 1 and ins[1] else None
            p = float(ratio) if ratio is not None else float(a.get("ratio", 0.5))
            return [imp.add(ir.Dropout(p), [x], name, op)]
        return [x]
    if op in ("Conv", "ConvTranspose"):
        return [_conv(imp, node, a, x, name)]
    if op in ("MaxPool", "AveragePool"):
        dims = rank - 1
        k = tuple(a["kernel_shape"])
        if any(d != 1 for d in a.get("dilations", [1] * dims)):
            return [_unsupported(imp, node, name, "dilated pooling")]
        return [imp.add(ir.Pool("max" if op == "MaxPool" else "avg", k,
                                tuple(a.get("strides", [1] * dims)), _pads(a, dims),
                                bool(a.get("ceil_mode", 0))), [x], name, op)]
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return [imp.add(ir.GlobalPool("max" if "Max" in op else "avg", True), [x], name, op)]
    if op == "Gemm":
        w = ins[1]
        if w not in imp.inits or a.get("transA", 0):
            return [_unsupported(imp, node, name, "Gemm with a computed weight")]
        dims = imp.inits[w].dims
        out = dims[0] if a.get("transB", 0) else dims[1]
        bias = len(ins) > 2 and bool(ins[2])
        return [imp.add(ir.Linear(int(out), bias), [x], name, op,
                        tuple(t for t in ins[1:3] if t in imp.inits))]
    if op == "MatMul":
        return [_matmul(imp, node, ins, x, name)]
    if op in ACTS:
        return [imp.add(ir.Act(ACTS[op]), [x], name, op)]
    if op == "Clip":
        lo = imp.const(ins[1]) if len(ins) > 1 and ins[1] else a.get("min")
        hi = imp.const(ins[2]) if len(ins) > 2 and ins[2] else a.get("max")
        relu6 = lo is not None and hi is not None and float(lo) == 0 and float(hi) == 6
        return [imp.add(ir.Act("relu6" if relu6 else "clamp"), [x], name, op)]
    if op == "PRelu":
        return [imp.add(ir.PReLU(_init_size(imp, ins[1]) or 1), [x], name, op, (ins[1],))]
    if op in ("Softmax", "LogSoftmax"):
        axis = int(a.get("axis", -1)) % (rank + 1) - 1
        return [imp.add(ir.Softmax(axis, op == "LogSoftmax"), [x], name, op)]
    if op == "BatchNormalization":
        return [imp.add(ir.BatchNorm(float(a.get("epsilon", 1e-5)),
                                     1.0 - float(a.get("momentum", 0.9))), [x], name, op,
                        tuple(t for t in ins[1:3] if t in imp.inits))]
    if op == "InstanceNormalization":  # torch's GroupNorm: affine ones/zeros, not weights
        affine = ins[1] in imp.inits
        return [imp.add(ir.Norm("instance", affine=affine, eps=float(a.get("epsilon", 1e-5))),
                        [x], name, op, tuple(t for t in ins[1:3] if t in imp.inits))]
    if op == "LayerNormalization":
        axis = int(a.get("axis", -1)) % (rank + 1)
        shape = imp.shape(x)[axis - 1:]
        bias = len(ins) > 2 and bool(ins[2])
        return [imp.add(ir.Norm("layer", shape=shape, bias=bias,
                                eps=float(a.get("epsilon", 1e-5))), [x], name, op,
                        tuple(t for t in ins[1:3] if t in imp.inits))]
    if op in BINARY:
        return [_binary(imp, node, ins, name)]
    if op == "Split":
        return _split(imp, node, a, x, name)
    return [_shaping(imp, node, a, ins, x, name)]


def _conv(imp: Any, node: Any, a: dict[str, Any], x: str, name: str) -> str:
    op, ins = node.op_type, list(node.input)
    if ins[1] not in imp.inits:
        return _unsupported(imp, node, name, "a convolution with a computed weight")
    wdims = tuple(imp.inits[ins[1]].dims)
    dims = len(wdims) - 2
    k = tuple(a.get("kernel_shape", wdims[2:]))
    s = tuple(a.get("strides", [1] * dims))
    d = tuple(a.get("dilations", [1] * dims))
    g = int(a.get("group", 1))
    bias = len(ins) > 2 and bool(ins[2])
    weights = tuple(t for t in ins[1:3] if t in imp.inits)
    if op == "Conv":
        return imp.add(ir.Conv(wdims[0], k, s, _pads(a, dims), d, g, bias), [x], name, op,
                       weights)
    pads = _pads(a, dims)
    if isinstance(pads, str) or any(lo != hi for lo, hi in pads) or "output_shape" in a:
        return _unsupported(imp, node, name, "transposed conv with asymmetric padding")
    return imp.add(ir.ConvTranspose(wdims[1] * g, k, s, tuple(lo for lo, _ in pads),
                                    tuple(a.get("output_padding", [0] * dims)), d, g, bias),
                   [x], name, op, weights)


def _matmul(imp: Any, node: Any, ins: list[str], x: str, name: str) -> str:
    """``x @ W`` with a weight initializer: a fc layer on the last axis (with the bias of a
    following ``Add``, as torch writes ``nn.Linear`` on an N-D input)."""
    w = ins[1]
    if not imp.is_data(ins[0]) or w not in imp.inits or len(imp.inits[w].dims) != 2:
        return _unsupported(imp, node, name, "a product of two computed tensors")
    out = int(imp.inits[w].dims[1])
    users = imp.users.get(node.output[0], [])
    bias = ""
    if len(users) == 1 and users[0].op_type == "Add":
        other = [t for t in users[0].input if t != node.output[0]]
        if len(other) == 1 and other[0] in imp.inits and tuple(imp.inits[other[0]].dims) == (
                out,):
            bias = other[0]
            imp.skip.add(users[0].output[0])
    last = len(imp.shape(x)) > 1
    v = imp.add(ir.Linear(out, bool(bias), last), [x], name, "MatMul",
                (w, bias) if bias else (w,))
    if bias:
        imp.outputs[users[0].output[0]] = v
    return v


def _binary(imp: Any, node: Any, ins: list[str], name: str) -> str:
    op = node.op_type
    fn = BINARY[op]
    data = [t for t in ins if imp.is_data(t)]
    if len(data) == 2:
        vals = [imp.outputs[t] for t in data]
        if fn == "add" and imp.shape(vals[0]) == imp.shape(vals[1]):
            return imp.add(ir.Add(), vals, name, op)
        return imp.add(ir.Binary(fn), vals, name, op)
    other = next(t for t in ins if not imp.is_data(t))
    value = imp.const(other)
    reverse = ins[0] == other
    x = imp.outputs[data[0]]
    if value is None:  # a tensor computed from constants only: its shape is unknown here
        return imp.add(ir.Binary(fn, (), reverse), [x], name, op)
    if value.size == 1 and fn in ("mul", "div") and not (fn == "div" and reverse):
        v = float(value.reshape(-1)[0])
        return imp.add(ir.Scale(v if fn == "mul" else 1.0 / v), [x], name, op)
    shape = tuple(int(v) for v in value.shape)
    if len(shape) == len(imp.shape(x)) + 1:  # a leading batch axis of 1
        shape = shape[1:]
    params = int(value.size) if other in imp.inits and value.size > 1 else 0
    return imp.add(ir.Binary(fn, shape, reverse, params), [x], name, op,
                   (other,) if params else ())


def _reshaped(imp: Any, node: Any, ins: list[str], x: str) -> tuple[int, ...]:
    """The output shape (no batch) of a flatten/reshape/squeeze/unsqueeze: inferred, else
    computed from the input's IR shape and the (folded) constant arguments."""
    if node.output[0] in imp.onnx_shapes:
        return imp.oshape(node.output[0])
    full = [1, *imp.shape(x)]
    op = node.op_type
    a = attrs(node)
    if op == "Flatten":
        ax = int(a.get("axis", 1)) % len(full)
        return (math.prod(full[ax:]),) if ax == 1 else (math.prod(full[1:ax]),
                                                         math.prod(full[ax:]))
    if op in ("Squeeze", "Unsqueeze"):
        axes = _ints(imp, node, a, "axes", 1)
        if op == "Squeeze":
            axes = [t % len(full) for t in axes] if axes else [
                i for i, v in enumerate(full) if v == 1 and i]
            return tuple(v for i, v in enumerate(full) if i not in axes)[1:]
        rank = len(full) + len(axes or [])
        out = list(full)
        for t in sorted(v % rank for v in axes or []):
            out.insert(t, 1)
        return tuple(out[1:])
    target = imp.const(ins[1])
    if target is None:
        return imp.oshape(node.output[0])
    dims = [full[i] if v == 0 else int(v) for i, v in enumerate(target.reshape(-1))]
    if -1 in dims:
        known = math.prod(v for v in dims if v != -1)
        dims[dims.index(-1)] = math.prod(full) // max(known, 1)
    return tuple(dims[1:])


def _resized(imp: Any, node: Any, ins: list[str], x: str) -> tuple[int, ...]:
    if node.output[0] in imp.onnx_shapes:
        return imp.oshape(node.output[0])
    full = (1, *imp.shape(x))
    sizes = imp.const(ins[3]) if len(ins) > 3 and ins[3] else None
    if sizes is not None and sizes.size:
        return tuple(int(v) for v in sizes.reshape(-1))[1:]
    scales = imp.const(ins[2] if node.op_type == "Resize" else ins[1])
    return tuple(int(math.floor(n * float(f))) for n, f in zip(full, scales.reshape(-1),
                                                                strict=True))[1:]


def _ints(imp: Any, node: Any, a: dict[str, Any], key: str, index: int) -> list[int] | None:
    ins = list(node.input)
    if len(ins) > index and ins[index]:
        v = imp.const(ins[index])
        return None if v is None else [int(t) for t in v.reshape(-1)]
    return list(a[key]) if key in a else None


def _shaping(imp: Any, node: Any, a: dict[str, Any], ins: list[str], x: str, name: str) -> str:
    """Reshapes, permutes, concatenation, padding, resampling, reductions, slices."""
    op = node.op_type
    rank = len(imp.shape(x))
    if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
        out = _reshaped(imp, node, ins, x)
        if op == "Flatten" and int(a.get("axis", 1)) == 1:
            users = imp.users.get(node.output[0], [])
            if len(users) == 1 and users[0].op_type == "Gemm" and rank > 1 and \
                    node.name == f"{users[0].name}.flatten":  # cnnlab export's fc layer
                imp.folded.add(node.output[0])
                return x  # the fc layer flattens its input itself (IR Linear)
            return imp.add(ir.Flatten(), [x], name, op)
        return imp.add(ir.Reshape(out), [x], name, op)
    if op == "Transpose":
        perm = list(a.get("perm", range(rank, -1, -1)))
        if perm[0] != 0:
            return _unsupported(imp, node, name, "a transpose that moves the batch axis")
        return imp.add(ir.Permute(tuple(p - 1 for p in perm[1:])), [x], name, op)
    if op == "Concat":
        vals = [imp.outputs[t] for t in ins if imp.is_data(t)]
        if len(vals) != len([t for t in ins if t]):
            return _unsupported(imp, node, name, "a concatenation with a constant")
        axis = int(a["axis"]) % (rank + 1) - 1
        return imp.add(ir.Concat(axis), vals, name, op)
    if op == "Pad":
        pads = _ints(imp, node, a, "pads", 1)
        mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
                "wrap": "circular"}[_s(a.get("mode", "constant"))]
        if pads is None or len(ins) > 3 and ins[3]:
            return _unsupported(imp, node, name, "padding with computed amounts or axes")
        n = len(pads) // 2
        pairs = [(pads[i], pads[i + n]) for i in range(1, n)]
        while len(pairs) > 1 and pairs[0] == (0, 0):
            pairs.pop(0)
        value = imp.const(ins[2]) if len(ins) > 2 and ins[2] else None
        fill = float(value.reshape(-1)[0]) if value is not None and value.size else 0.0
        return imp.add(ir.Pad(tuple(pairs), mode, fill), [x], name, op)
    if op in ("Resize", "Upsample"):
        out = _resized(imp, node, ins, x)
        mode = _s(a.get("mode", "nearest"))
        coord = _s(a.get("coordinate_transformation_mode", "half_pixel"))
        ir_mode = {"nearest": "nearest", "linear": "linear", "cubic": "bicubic"}[mode]
        return imp.add(ir.Upsample(ir_mode, tuple(out[1:]), None, coord == "align_corners"),
                       [x], name, op)
    if op.startswith("Reduce") and op[6:] in ("Mean", "Sum", "Max", "Min"):
        axes = _ints(imp, node, a, "axes", 1)
        if axes is None:
            axes = list(range(1, rank + 1))
        axes = [t % (rank + 1) for t in axes]
        if 0 in axes:
            return _unsupported(imp, node, name, "a reduction over the batch")
        fn = {"Mean": "mean", "Sum": "sum", "Max": "amax", "Min": "amin"}[op[6:]]
        return imp.add(ir.Reduce(fn, tuple(t - 1 for t in axes), bool(a.get("keepdims", 1))),
                       [x], name, op)
    if op == "Slice":
        starts, ends = _ints(imp, node, a, "starts", 1), _ints(imp, node, a, "ends", 2)
        axes = _ints(imp, node, a, "axes", 3) or list(range(len(starts or [])))
        steps = _ints(imp, node, a, "steps", 4) or [1] * len(axes)
        if not starts or len(axes) != 1 or steps != [1] or axes[0] % (rank + 1) == 0:
            return _unsupported(imp, node, name, "a slice of several axes or with a step")
        ax = axes[0] % (rank + 1) - 1
        n = imp.shape(x)[ax]
        lo = max(0, starts[0] + n if starts[0] < 0 else min(starts[0], n))
        hi = max(0, ends[0] + n if ends[0] < 0 else min(ends[0], n))
        return imp.add(ir.Slice(ax, lo, hi), [x], name, op)
    if op == "Expand":
        return imp.add(ir.Expand(imp.oshape(node.output[0])), [x], name, op)
    if op == "Gather" and ins[0] in imp.inits and len(imp.inits[ins[0]].dims) == 2:
        num, dim = imp.inits[ins[0]].dims
        return imp.add(ir.Embedding(int(num), int(dim)), [imp.outputs[ins[1]]], name, op,
                       (ins[0],))
    return _unsupported(imp, node, name, "no IR rule for this ONNX op")


def _split(imp: Any, node: Any, a: dict[str, Any], x: str, name: str) -> list[str]:
    rank = len(imp.shape(x))
    ax = int(a.get("axis", 0)) % (rank + 1) - 1
    if ax < 0:
        return [_unsupported(imp, node, name, "a split of the batch")]
    n = imp.shape(x)[ax]
    sizes = _ints(imp, node, a, "split", 1)
    if not sizes:
        k = len(node.output)
        sizes = [-(-n // k)] * (k - 1) + [n - -(-n // k) * (k - 1)]
    outs, start = [], 0
    for i, size in enumerate(sizes):
        outs.append(imp.add(ir.Slice(ax, start, start + size), [x], f"{name}.{i}",
                            "Split"))
        start += size
    return outs


def _unsupported(imp: Any, node: Any, name: str, reason: str) -> str:
    data = [imp.outputs[t] for t in node.input if t and imp.is_data(t)]
    weights = tuple(t for t in node.input if t in imp.inits)
    params = sum(_init_size(imp, t) for t in weights)
    return imp.add(ir.Unsupported(f"onnx {node.op_type}", imp.oshape(node.output[0]), params,
                                  reason), data, name, node.op_type, weights)

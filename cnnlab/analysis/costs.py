"""Parameters, MACs/FLOPs and descriptions of the ops beyond the sheets' (per sample).

Conventions (docs/analyze.md): MACs count multiplications, FLOPs every arithmetic operation.
A transposed conv multiplies every input value by ``out_channels/groups * prod(kernel)`` weights
(torch's FlopCounterMode convention); layer/group/instance norm cost 5 FLOPs per element for the
statistics and the normalisation (2 multiplications) plus 2 (1 multiplication) with an affine
transform; PReLU one multiplication and one comparison per element; linear interpolation
``2^d`` multiplications and ``2^(d+1) - 1`` FLOPs per output value (bicubic ``4^d``); nearest
upsampling, padding, reshapes, permutes, slices, stacks and lookups move data only (0).
"""

from __future__ import annotations

import math

from cnnlab.ir import graph as ir
from cnnlab.ir.mix import attention_macs, attention_params, matmul_macs
from cnnlab.ir.shapes import Shape, window_params

_MUL = ("mul", "div", "pow")
#: the sheets' own ops (exact types), which none of the rules below covers: returned None for
#: at once, without the chain of isinstance checks (most rows of a CNN are these)
SHEET_OPS = frozenset((ir.Act, ir.BatchNorm, ir.Dropout, ir.Conv, ir.Pool, ir.Add, ir.Linear,
                       ir.Flatten))


def other_params(op: ir.Op, x: Shape) -> tuple[int, int] | None:
    """(weights, biases) of the newer ops; None for the others."""
    if type(op) in SHEET_OPS:
        return None
    if isinstance(op, ir.PReLU):
        return op.num_parameters, 0
    if isinstance(op, ir.Norm):
        if not op.affine:
            return 0, 0
        n = math.prod(op.shape) if op.norm in ("layer", "rms") else x[0]
        return n, n if op.bias else 0
    if isinstance(op, ir.ConvTranspose):
        k = math.prod(ir.broadcast(op.kernel, len(x) - 1, "kernel"))
        return x[0] * (op.out_channels // op.groups) * k, op.out_channels * op.bias
    if isinstance(op, ir.Embedding):
        return op.num * op.dim, 0
    if isinstance(op, ir.Binary | ir.MatMul | ir.Concat):
        return op.params, 0
    if isinstance(op, ir.Attention):
        return attention_params(op)
    return None


def other_cost(node: ir.Node, in_shapes: list[Shape], out: Shape) -> tuple[int, int] | None:
    op = node.op
    if type(op) in SHEET_OPS:
        return None
    n_out = math.prod(out)
    x = in_shapes[0] if in_shapes else ()
    if isinstance(op, ir.ConvTranspose):
        macs = math.prod(x) * (op.out_channels // op.groups) * math.prod(
            window_params(node, x).kernel)
        return macs, 2 * macs
    if isinstance(op, ir.PReLU):
        return n_out, 2 * n_out
    if isinstance(op, ir.Norm):
        if op.running:
            return n_out, 2 * n_out
        if op.norm == "rms":  # square, sum, (root per group), multiply; times the weight
            return n_out * (2 + op.affine), n_out * (3 + op.affine)
        return n_out * (2 + op.affine), n_out * (5 + 2 * op.affine)
    if isinstance(op, ir.Upsample):
        if op.mode.startswith("nearest"):
            return 0, 0
        taps = (4 if op.mode == "bicubic" else 2) ** (len(out) - 1)
        return n_out * taps, n_out * (2 * taps - 1)
    if isinstance(op, ir.AdaptivePool):
        reads = x[0]
        for n, m in zip(x[1:], out[1:], strict=True):
            reads *= sum(-(-((o + 1) * n) // m) - (o * n) // m for o in range(m))
        return (0, reads - n_out) if op.op == "max" else (n_out, reads)
    if isinstance(op, ir.Binary):
        return (n_out if op.fn in _MUL else 0), n_out
    if isinstance(op, ir.Reduce):
        reads = math.prod(x)
        if op.fn == "norm":  # square, add, one square root per output
            return reads, 2 * reads
        if op.fn in ("var", "std"):  # mean (sum, scale), subtract, square, sum, scale (, root)
            return reads + 2 * n_out, 4 * reads + (n_out if op.fn == "std" else 0)
        return (n_out, reads) if op.fn == "mean" else (0, reads - n_out)
    if isinstance(op, ir.MatMul):
        macs = matmul_macs(node, op, in_shapes)
        return macs, 2 * macs
    if isinstance(op, ir.Attention):
        macs = attention_macs(op, in_shapes)
        return macs, 2 * macs
    if isinstance(op, ir.Normalize):  # |x|^p, sum, root, divide
        return 2 * n_out, 3 * n_out
    if isinstance(op, ir.Pad | ir.Reshape | ir.Permute | ir.Slice | ir.Stack | ir.Embedding
                  | ir.Expand | ir.Roll):
        return 0, 0
    return None


def _x(v: tuple) -> str:
    return "x".join(map(str, v))


def other_desc(op: ir.Op, x: Shape) -> str | None:
    if type(op) in SHEET_OPS:
        return None
    if isinstance(op, ir.PReLU):
        return f"prelu {op.num_parameters}"
    if isinstance(op, ir.Norm):
        what = {"layer": f"layernorm {_x(op.shape)}", "group": f"groupnorm g{op.groups}",
                "instance": "instancenorm", "rms": f"rmsnorm {_x(op.shape)}"}[op.norm]
        return what + ("" if op.affine else " noaffine") + (" running" if op.running else "")
    if isinstance(op, ir.ConvTranspose):
        parts = [_x(op.kernel) + f"x{op.out_channels}"]
        for tag, v, default in (("s", op.stride, 1), ("p", op.padding, 0),
                                ("op", op.output_padding, 0), ("d", op.dilation, 1)):
            if any(a != default for a in v):
                parts.append(tag + _x(v))
        if op.groups != 1:
            parts.append(f"g{op.groups}")
        return "deconv " + " ".join(parts)
    if isinstance(op, ir.Upsample):
        how = f"to {_x(op.size)}" if op.size is not None else \
            "x" + "x".join(f"{f:g}" for f in op.scale or (1.0,))
        return f"upsample {op.mode} {how}" + (" align_corners" if op.align_corners else "")
    if isinstance(op, ir.AdaptivePool):
        return f"adaptive {op.op}pool {_x(op.size)}"
    if isinstance(op, ir.Pad):
        pads = ",".join(f"{lo}" if lo == hi else f"{lo}:{hi}" for lo, hi in op.pads)
        return f"pad {op.mode} {pads}"
    if isinstance(op, ir.Binary):
        if op.const is None:
            return op.fn
        return f"{op.fn} const {_x(op.const) or 'scalar'}" + (" (left)" if op.reverse else "")
    if isinstance(op, ir.Reshape):
        return f"reshape {_x(op.shape)}"
    if isinstance(op, ir.Permute):
        return "permute " + ",".join(map(str, op.perm))
    if isinstance(op, ir.Slice):
        step = f":{op.step}" if op.step != 1 else ""
        return f"slice axis{op.axis} {op.start}:{op.stop}{step}"
    if isinstance(op, ir.MatMul):
        return f"matmul {op.equation}" + (f" const {_x(op.const)}" if op.const else "")
    if isinstance(op, ir.Attention):
        return (f"multi-head attention {op.heads}x{op.embed // op.heads}" if op.heads
                else "attention (scaled dot product)")
    if isinstance(op, ir.Normalize):
        return f"normalize p={op.p:g} axis{op.axis}"
    if isinstance(op, ir.Stack):
        return f"stack axis{op.axis}"
    if isinstance(op, ir.Reduce):
        return f"{op.fn} axes {','.join(map(str, op.axes))}" + (" keepdim" if op.keepdim else "") \
            + (f" correction {op.correction}" if op.fn in ("var", "std") else "")
    if isinstance(op, ir.Expand):
        return f"expand {_x(op.shape)}"
    if isinstance(op, ir.Roll):
        return "roll " + ",".join(f"axis{a} by {k}" for a, k in zip(op.axes, op.shifts,
                                                                     strict=True))
    if isinstance(op, ir.Embedding):
        return f"embedding {op.num}x{op.dim}"
    if isinstance(op, ir.Concat) and (op.axis != 0 or op.consts):
        return f"concat axis{op.axis}" + "".join(f" +const {_x(c)}" for _, c in op.consts)
    if isinstance(op, ir.GlobalPool) and op.keepdim:
        return f"global {op.op}pool keepdim"
    return None

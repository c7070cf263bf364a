"""Products of tensors in the IR: einsum equations, their shapes, and matmul as an einsum.

:class:`~cnnlab.ir.ops.MatMul` stores one einsum ``equation`` over the operands *without* the
batch axis; :func:`einsum_per_sample` derives it from a torch call written with the batch
axis (``torch.einsum("bnk,bkm->bnm", ...)``, ``x @ w``, ``torch.bmm``), and
:func:`mix_shape` gives the output shape of a MatMul, an Attention or a Normalize node.
"""

from __future__ import annotations

import math
import string

from cnnlab.common.errors import ShapeError
from cnnlab.ir import graph as ir

Shape = tuple[int, ...]


def parse(eq: str) -> tuple[list[str], str]:
    """``"nk,km->nm"`` -> (["nk", "km"], "nm")."""
    lhs, _, out = eq.replace(" ", "").partition("->")
    return lhs.split(","), out


def matmul_equation(ra: int, rb: int) -> str:
    """torch.matmul of operands of ranks ``ra`` and ``rb`` (batch included) as an einsum."""
    lead = "abcdefgh"[:max(ra - 2, rb - 2, 0)]
    a = (lead[len(lead) - (ra - 2):] + "iz") if ra >= 2 else "z"
    b = (lead[len(lead) - (rb - 2):] + "zj") if rb >= 2 else "z"
    return f"{a},{b}->{lead}{'i' if ra >= 2 else ''}{'j' if rb >= 2 else ''}"


def expand_ellipsis(eq: str, ranks: list[int]) -> str:
    """Replace ``...`` by explicit letters, given each operand's rank."""
    if "..." not in eq:
        return eq
    ins, out = parse(eq)
    used = set(eq)
    free = [c for c in string.ascii_letters if c not in used]
    width = max(r - (len(s) - 3) for s, r in zip(ins, ranks, strict=True) if "..." in s)
    dots = "".join(free[:width])
    ins = [s.replace("...", dots[width - (r - (len(s) - 3)):]) for s, r in zip(
        ins, ranks, strict=True)]
    return ",".join(ins) + "->" + out.replace("...", dots)


def einsum_per_sample(eq: str, shapes: list[Shape], tensor: list[bool],
                      shared: list[bool] | None = None) -> tuple[str, list[Shape]] | str:
    """The equation without the batch letter, and the shapes of the constant operands
    without a batch axis; or a one-line reason it has no per-sample form. ``shared[k]``: the
    constant operand ``k`` is the same along its first axis (an ``expand``), which may then
    be the batch axis."""
    eq = expand_ellipsis(eq, [len(s) for s in shapes])
    ins, out = parse(eq)
    if "->" not in eq or len(ins) != len(shapes):
        return f"einsum {eq!r} without an explicit output"
    first = next(i for i, t in enumerate(tensor) if t)
    b = ins[first][:1]
    if not b or not out.startswith(b) or any(t and not s.startswith(b) for s, t in zip(
            ins, tensor, strict=True)):
        return f"a product that mixes the batch axis ({eq})"
    new, consts = [], []
    for k, (s, shp, t) in enumerate(zip(ins, shapes, tensor, strict=True)):
        if t:
            new.append(s[1:])
            continue
        if b in s and shp[s.index(b)] != 1 and not (shared and shared[k] and s[0] == b):
            return f"a constant operand that spans the batch axis ({eq})"
        keep = [i for i, c in enumerate(s) if c != b]
        new.append("".join(s[i] for i in keep))
        consts.append(tuple(shp[i] for i in keep))
    return ",".join(new) + "->" + out[1:], consts


def operands(op: ir.MatMul, in_shapes: list[Shape]) -> list[Shape]:
    shapes = list(in_shapes)
    if op.const is not None:
        shapes.insert(op.const_index, tuple(op.const))
    return shapes


def letter_sizes(node: ir.Node, op: ir.MatMul, in_shapes: list[Shape]) -> dict[str, int]:
    ins, _ = parse(op.equation)
    shapes = operands(op, in_shapes)
    if len(ins) != len(shapes) or any(len(s) != len(x) for s, x in zip(ins, shapes,
                                                                       strict=True)):
        raise ShapeError(node.name, f"einsum {op.equation!r} does not fit the shapes {shapes}")
    sizes: dict[str, int] = {}
    for s, x in zip(ins, shapes, strict=True):
        for c, n in zip(s, x, strict=True):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise ShapeError(node.name, f"einsum {op.equation!r}: axis {c!r} has sizes "
                                 f"{sizes[c]} and {n}")
            sizes[c] = max(sizes.get(c, 1), n)
    return sizes


def matmul_macs(node: ir.Node, op: ir.MatMul, in_shapes: list[Shape]) -> int:
    """Multiplications of a two-operand product: one per combination of every letter."""
    return math.prod(letter_sizes(node, op, in_shapes).values())


def _attention_shape(node: ir.Node, op: ir.Attention, in_shapes: list[Shape]) -> Shape:
    if len(in_shapes) != 3:
        raise ShapeError(node.name, "attention takes (query, key, value)")
    q, k, v = in_shapes
    if op.heads:
        if len(q) != 2 or q[-1] != op.embed or k[-1] != op.kdim or v[-1] != op.vdim \
                or k[0] != v[0] or op.embed % op.heads:
            raise ShapeError(node.name, f"multi-head attention on {q}, {k}, {v} does not fit "
                             f"embed={op.embed}, kdim={op.kdim}, vdim={op.vdim}")
        return q
    if q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(node.name, f"attention on {q}, {k}, {v}: query and key must share "
                         "their last axis, key and value their length")
    return (*q[:-1], v[-1])


def mix_shape(node: ir.Node, in_shapes: list[Shape]) -> Shape | None:
    """Output shape of a MatMul, Attention or Normalize node (None for other ops)."""
    op = node.op
    if isinstance(op, ir.MatMul):
        sizes = letter_sizes(node, op, in_shapes)
        return tuple(sizes[c] for c in parse(op.equation)[1])
    if isinstance(op, ir.Attention):
        return _attention_shape(node, op, in_shapes)
    if isinstance(op, ir.Normalize):
        return in_shapes[0]
    return None


def attention_macs(op: ir.Attention, in_shapes: list[Shape]) -> int:
    """q k^T and the weighted sum of v (and the projections of multi-head attention)."""
    q, k, v = in_shapes
    if not op.heads:
        lead = math.prod(q[:-2])
        return lead * q[-2] * k[-2] * (q[-1] + v[-1])
    n_q, n_k, e = q[0], k[0], op.embed
    proj = n_q * e * e + n_k * op.kdim * e + n_k * op.vdim * e + n_q * e * e
    return proj + 2 * n_q * n_k * e


def attention_params(op: ir.Attention) -> tuple[int, int]:
    if not op.heads:
        return op.params, 0
    e = op.embed
    weights = e * e + op.kdim * e + op.vdim * e + e * e
    biases = (4 * e if op.bias else 0) + (2 * e if op.bias_kv else 0)
    return weights, biases

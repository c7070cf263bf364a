"""Receptive fields of products of tensors: einsum/matmul, attention and L_p normalisation.

The rule is the einsum's: an output unit reads, of every operand, the units whose letters
agree with its own on the letters the output keeps, and *all* units along the letters it sums
over. So each operand's field is collapsed over its summed axes (every unit sees everything
read along them), laid out on the output's axes (an axis the operand lacks is a feature axis
of size 1, broadcast) and joined as an element-wise op joins its inputs. Attention is the
einsum ``q: ...le, k: ...se, v: ...sv -> ...lv`` (the softmax sums over ``s`` too): a query
position sees its own field and everything the keys and values read -- the whole attention
window, which is the whole input once the tokens are the flattened image. Used by
:mod:`cnnlab.analysis.receptive`.
"""

from __future__ import annotations

from dataclasses import replace

from cnnlab.ir import graph as ir
from cnnlab.ir.mix import parse
from cnnlab.ir.shapes import Shape


def _aligned(f, shape: Shape, letters: str, out: str):
    summed = [f.axes[i] for i, c in enumerate(letters) if c not in out and f.axes[i] is not None]
    g = f.collapse(summed) if summed else f
    axes = tuple(g.axes[letters.index(c)] if c in letters else None for c in out)
    sizes = tuple(shape[letters.index(c)] if c in letters else 1 for c in out)
    return replace(g, axes=axes), sizes


def einsum_field(node: ir.Node, ins: list, in_shapes: list[Shape], out: Shape, eq: str,
                 skip: int | None, join):
    """Field of an einsum over ``ins`` (``skip``: the index of a constant operand)."""
    letters, target = parse(eq)
    if skip is not None:
        letters = letters[:skip] + letters[skip + 1:]
    parts = [_aligned(f, s, lets, target) for f, s, lets in zip(ins, in_shapes, letters,
                                                                strict=True)]
    return join(node, [p[0] for p in parts], [p[1] for p in parts], out)


def attention_equation(op: ir.Attention, in_shapes: list[Shape]) -> str:
    if op.heads:  # the projections mix every feature of q, k and v
        return "lq,sk,sv->le"
    lead = "abcdefgh"[:len(in_shapes[0]) - 2]
    lk = "abcdefgh"[:len(in_shapes[1]) - 2]
    lv = "abcdefgh"[:len(in_shapes[2]) - 2]
    return f"{lead}lx,{lk}sx,{lv}sv->{lead}lv"


def mix_field(node: ir.Node, ins: list, in_shapes: list[Shape], out: Shape, join):
    """The field of a MatMul, Attention, Normalize or Roll node; None for other ops."""
    op = node.op
    if isinstance(op, ir.MatMul):
        skip = op.const_index if op.const is not None else None
        return einsum_field(node, ins, in_shapes, out, op.equation, skip, join)
    if isinstance(op, ir.Attention):
        return einsum_field(node, ins, in_shapes, out, attention_equation(op, in_shapes),
                            None, join)
    if isinstance(op, ir.Normalize):
        f, x = ins[0], in_shapes[0]
        a = f.axes[op.axis % len(x)]
        return f.collapse([a], keep=True) if a is not None else f
    if isinstance(op, ir.Roll):  # a cyclic shift of feature axes moves no image position
        f, x = ins[0], in_shapes[0]
        if all(f.axes[a % len(x)] is None for a in op.axes):
            return f
        # every unit already sees all it can along the rolled axes (after a window attention
        # the field is the union over the map): a cyclic shift of the units changes nothing
        if all(f.glob[i] is not None and f.glob[i] == f.span(i)
               for i in (f.axes[a % len(x)] for a in op.axes) if i is not None):
            return f
        return (f"{node.name} rolls a position axis (a cyclic shift: the units at the border "
                "see both ends of the image)")
    return None

"""The IR's ops that traced models use to move, reshape and combine tensors: views and
permutes, slices and stacks, reductions, broadcasts, embeddings, products of two tensors,
attention, normalisation by a norm and cyclic shifts. One frozen dataclass per op, as in
:mod:`cnnlab.ir.ops` (which re-exports them); shapes are without the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

Axes = tuple[int, ...]


@dataclass(frozen=True)
class Reshape:
    """View/reshape/flatten/unflatten to ``shape`` (no batch axis; sizes must multiply out)."""

    shape: tuple[int, ...]
    kind = "reshape"


@dataclass(frozen=True)
class Permute:
    """Reorder the axes (no batch axis): output axis ``i`` is input axis ``perm[i]``."""

    perm: tuple[int, ...]
    kind = "permute"


@dataclass(frozen=True)
class Slice:
    """``x[..., start:stop, ...]`` along ``axis`` (no batch axis): one part of chunk/split."""

    axis: int
    start: int
    stop: int
    step: int = 1
    kind = "slice"


@dataclass(frozen=True)
class Stack:
    """Stack same-shaped inputs along a new axis ``axis`` (no batch axis)."""

    axis: int = 0
    kind = "stack"


@dataclass(frozen=True)
class Reduce:
    """``mean/sum/amax/amin/norm/var/std`` over ``axes`` (no batch axis), e.g. a channel mean
    ``x.mean(1, keepdim=True)``; all spatial axes of a feature map is a global pool.
    ``correction``: what ``var``/``std`` subtract from the count they divide by (torch's
    ``correction``; ``unbiased=False`` is 0)."""

    fn: str = "mean"
    axes: tuple[int, ...] = (0,)
    keepdim: bool = False
    correction: int = 1
    kind = "reduce"


@dataclass(frozen=True)
class Expand:
    """Broadcast to ``shape`` (no batch axis): ``expand``/``expand_as``."""

    shape: tuple[int, ...]
    kind = "expand"


@dataclass(frozen=True)
class Embedding:
    """Token lookup: integer ids ``(*S)`` -> ``(*S, dim)``; weight ``(num, dim)``."""

    num: int
    dim: int
    kind = "embedding"


@dataclass(frozen=True)
class MatMul:
    """A product of two tensors written as an einsum ``equation`` without the batch axis
    (``"nk,km->nm"``; matmul, bmm and ``@`` are converted to one). With ``const``, the operand
    at ``const_index`` is a constant of that shape (a weight: ``params`` of its values).
    Sizes of 1 broadcast as in matmul."""

    equation: str
    const: tuple[int, ...] | None = None
    const_index: int = 1
    params: int = 0
    kind = "matmul"


@dataclass(frozen=True)
class Attention:
    """Scaled dot-product attention of ``(q, k, v)``: ``softmax(q k^T / sqrt(E)) v``.

    ``heads == 0``: ``F.scaled_dot_product_attention`` on ``(..., L, E)``, ``(..., S, E)``,
    ``(..., S, Ev)`` (no parameters). ``heads > 0``: ``nn.MultiheadAttention`` (batch first)
    on ``(L, embed)``, ``(S, kdim)``, ``(S, vdim)``, with its input and output projections.
    ``params``: learned values of a constant ``attn_mask`` (a relative-position bias table).
    """

    heads: int = 0
    embed: int = 0
    kdim: int = 0
    vdim: int = 0
    bias: bool = True
    bias_kv: bool = False
    params: int = 0
    kind = "attention"


@dataclass(frozen=True)
class Normalize:
    """``F.normalize``: divide by the ``p``-norm over ``axis`` (no batch axis)."""

    p: float = 2.0
    axis: int = 0
    kind = "normalize"


@dataclass(frozen=True)
class Roll:
    """``torch.roll``: a cyclic shift by ``shifts`` along ``axes`` (no batch), Swin's shifted
    windows; moves data only."""

    shifts: Axes
    axes: Axes
    kind = "roll"

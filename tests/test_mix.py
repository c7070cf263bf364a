"""``cnnlab.ir.mix.einsum_per_sample``: a product written with the batch axis -> its
per-sample equation and constant shapes, or the one-line reason there is none."""

from __future__ import annotations

import pytest

from cnnlab.ir.mix import einsum_per_sample, matmul_equation

CASES = [
    # a weight without a batch axis (x @ W)
    ("azi,ij->azj", [(2, 5, 3), (3, 4)], [True, False], None, ("zi,ij->zj", [(3, 4)])),
    # a constant with a batch axis of 1 broadcasts: per sample it drops that axis
    ("abiz,abzj->abij", [(1, 6, 4, 6), (2, 1, 6, 3)], [False, True], None,
     ("biz,bzj->bij", [(6, 4, 6)])),
    # timm's LambdaLayer: pos_emb[idx].expand(B, ...) is one constant for every sample
    ("abiz,abzj->abij", [(2, 6, 4, 6), (2, 1, 6, 3)], [False, True], [True, False],
     ("biz,bzj->bij", [(6, 4, 6)])),
    # the same constant not expanded (one per sample): no per-sample form
    ("abiz,abzj->abij", [(2, 6, 4, 6), (2, 1, 6, 3)], [False, True], [False, False],
     "a constant operand that spans the batch axis (abiz,abzj->abij)"),
    # expanded along its first axis, but the batch axis is another one of it: refused
    ("iaz,azj->aij", [(4, 2, 3), (2, 3, 5)], [False, True], [True, False],
     "a constant operand that spans the batch axis (iaz,azj->aij)"),
    ("abz,cz->bca", [(2, 3, 4), (5, 4)], [True, False], None,
     "a product that mixes the batch axis (abz,cz->bca)"),
]


@pytest.mark.parametrize("eq,shapes,tensor,shared,want", CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_einsum_per_sample(eq, shapes, tensor, shared, want) -> None:
    assert einsum_per_sample(eq, shapes, tensor, shared) == want


@pytest.mark.parametrize("ra,rb,want", [(2, 2, "iz,zj->ij"), (3, 2, "aiz,zj->aij"),
                                        (4, 4, "abiz,abzj->abij"), (4, 3, "abiz,bzj->abij"),
                                        (1, 3, "z,azj->aj")])
def test_matmul_equation(ra, rb, want) -> None:
    assert matmul_equation(ra, rb) == want

"""cnnlab.ref.filters: kernels, Problem Sheet 3 2(d)-(e) and 3(b)-(f), TTIC Problem 4 pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sig
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.ref import filters as FL

SETTINGS = settings(max_examples=30, deadline=None)
# Problem Sheet 3, 2(d): ten identical rows
SHEET_IMAGE = np.tile([3.0, 4, 8, 10, 22, 45, 50, 65], (10, 1))
# what the sheet prints as the magnitude in 2(e) (a copy of 2(d)'s answer)
SHEET_2E_MAGNITUDE = [12, 15, 18, 42, 105, 84, 60, 150]
NDIMAGE = {"zero": "constant", "reflect": "mirror", "symmetric": "reflect",
           "replicate": "nearest", "circular": "wrap"}


def test_named_kernels():
    assert FL.kernel("prewitt-x").tolist() == [[1, 0, -1]] * 3
    assert FL.kernel("prewitt-y").tolist() == [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    assert FL.kernel("sobel-x").tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    np.testing.assert_array_equal(FL.kernel("sobel-y"), FL.SOBEL_X.T)
    assert FL.kernel("laplacian").sum() == 0
    g = FL.gaussian(5, 1.0)
    assert g.sum() == pytest.approx(1.0) and g[2, 2] == g.max()
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(FL.box(3), np.full((3, 3), 1 / 9))
    with pytest.raises(CnnlabError, match="unknown kernel"):
        FL.kernel("canny")


def test_sheet3_2d_zero_padding_exact():
    g = FL.gradient_magnitude(SHEET_IMAGE, "prewitt-x", "prewitt-y", padding="zero")
    assert g.gx[1].tolist() == [12, 15, 18, 42, 105, 84, 60, -150]
    assert g.gy[1].tolist() == [0] * 8
    assert g.magnitude[1].tolist() == [12, 15, 18, 42, 105, 84, 60, 150]
    # without the flip (cross-correlation) g_x changes sign, the magnitude does not
    c = FL.gradient_magnitude(SHEET_IMAGE, padding="zero", op="corr")
    assert c.gx[1].tolist() == [-12, -15, -18, -42, -105, -84, -60, 150]
    np.testing.assert_array_equal(c.magnitude, g.magnitude)
    # "transpose the kernel" (the sheet's hint) turns h_x into h_y: the vertical gradient
    np.testing.assert_array_equal(FL.PREWITT_X.T, FL.PREWITT_Y)


def test_sheet3_2e_reflection_padding_both_readings():
    r = FL.gradient_magnitude(SHEET_IMAGE, padding="reflect")  # cb|abcd|cb
    assert r.gx[1].tolist() == [0, 15, 18, 42, 105, 84, 60, 0]
    assert r.gy[1].tolist() == [0] * 8
    assert r.magnitude[1].tolist() == [0, 15, 18, 42, 105, 84, 60, 0]
    s = FL.gradient_magnitude(SHEET_IMAGE, padding="symmetric")  # ba|abcd|dc
    assert s.gx[1].tolist() == [3, 15, 18, 42, 105, 84, 60, 45]
    assert s.magnitude[1].tolist() == [3, 15, 18, 42, 105, 84, 60, 45]
    # the printed 2(e) magnitude matches neither reading (docs/errata.md)
    assert r.magnitude[1].tolist() != SHEET_2E_MAGNITUDE
    assert s.magnitude[1].tolist() != SHEET_2E_MAGNITUDE


@SETTINGS
@given(st.data())
def test_filter2d_matches_scipy(data):
    h, w = data.draw(st.integers(3, 8)), data.draw(st.integers(3, 8))
    m, n = 2 * data.draw(st.integers(0, 1)) + 1, 2 * data.draw(st.integers(0, 1)) + 1
    mode = data.draw(st.sampled_from(sorted(NDIMAGE)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    img, k = rng.standard_normal((h, w)), rng.standard_normal((m, n))
    np.testing.assert_allclose(FL.filter2d(img, k, mode), ndi.convolve(img, k, mode=NDIMAGE[mode]),
                               atol=1e-12)
    np.testing.assert_allclose(FL.filter2d(img, k, mode, op="corr"),
                               ndi.correlate(img, k, mode=NDIMAGE[mode]), atol=1e-12)
    for size in ("valid", "full"):
        np.testing.assert_allclose(FL.filter2d(img, k, mode=size),
                                   sig.convolve2d(img, k, mode=size), atol=1e-12)
    boundary = {"zero": "fill", "symmetric": "symm", "circular": "wrap"}.get(mode)
    if boundary:
        np.testing.assert_allclose(FL.filter2d(img, k, mode),
                                   sig.convolve2d(img, k, "same", boundary=boundary), atol=1e-12)


def test_filter2d_channels_last_and_errors():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((6, 5, 3))
    out = FL.filter2d(img, FL.SOBEL_X, "replicate")
    for c in range(3):
        np.testing.assert_allclose(out[..., c], FL.filter2d(img[..., c], FL.SOBEL_X, "replicate"))
    with pytest.raises(CnnlabError, match="matrix kernel"):
        FL.filter2d(img[..., 0], np.ones(3))
    with pytest.raises(CnnlabError, match=r"\(H, W\) or \(H, W, C\)"):
        FL.filter2d(np.ones(4), FL.SOBEL_X)
    with pytest.raises(CnnlabError, match="same, valid or full"):
        FL.filter2d(img[..., 0], FL.SOBEL_X, mode="half")


def test_separability_sheet3_3b_3c():
    p = FL.separate(FL.PREWITT_X)
    assert p.separable and p.rank == 1
    assert p.column.tolist() == pytest.approx([1, 1, 1]) and p.row.tolist() == pytest.approx(
        [1, 0, -1])
    np.testing.assert_allclose(np.outer(p.column, p.row), FL.PREWITT_X, atol=1e-14)
    assert FL.separate(FL.SOBEL_X).column.tolist() == pytest.approx([1, 2, 1])
    assert FL.separate(FL.gaussian(7)).separable and FL.separate(FL.box(4)).separable
    assert not FL.separate(FL.LAPLACIAN).separable
    f = FL.separate([[2, 3], [1, 1]])
    assert not f.separable and f.rank == 2 and f.column is None
    assert f.determinant == pytest.approx(-1.0)
    assert f.singular_values[1] > 0.25  # far from rank 1
    assert f.singular_values[0] * f.singular_values[1] == pytest.approx(1.0)  # |det|


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31))
def test_separate_recovers_outer_products(m, n, seed):
    rng = np.random.default_rng(seed)
    v, h = rng.standard_normal(m), rng.standard_normal(n)
    s = FL.separate(np.outer(v, h))
    assert s.separable and s.rank == 1
    np.testing.assert_allclose(np.outer(s.column, s.row), np.outer(v, h), atol=1e-12)
    if min(m, n) > 1:
        full = FL.separate(rng.standard_normal((m, n)))
        assert full.rank == min(m, n) and not full.separable


@SETTINGS
@given(st.integers(3, 12), st.integers(3, 12), st.sampled_from([1, 2, 3, 5]),
       st.sampled_from(["valid", "same", "full"]), st.sampled_from(sorted(NDIMAGE)),
       st.integers(0, 2**31))
def test_counted_filtering_matches_filter2d_and_formulas(h, w, k, mode, padding, seed):
    assume(mode != "valid" or k <= min(h, w))
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((h, w))
    v, r = rng.standard_normal(k), rng.standard_normal(k)
    out_full, n_full = FL.filter2d_counted(img, np.outer(v, r), padding, mode)
    out_sep, n_sep = FL.separable_filter2d_counted(img, v, r, padding, mode)
    ref = FL.filter2d(img, np.outer(v, r), padding, mode)
    np.testing.assert_allclose(out_full, ref, atol=1e-12)
    np.testing.assert_allclose(out_sep, ref, atol=1e-12)
    grow = {"valid": 0, "same": k - 1, "full": 2 * (k - 1)}[mode]
    assert n_full == FL.mults_full(h + grow, w + grow, k, k)
    assert n_sep == FL.mults_separable(h + grow, w + grow, k, k)


def test_separable_cost_is_order_n2_k_sheet3_3f():
    img = np.random.default_rng(0).standard_normal((64, 64))
    g = FL.gaussian(9, 2.0)
    s = FL.separate(g)
    _, full = FL.filter2d_counted(img, g, mode="same")
    _, sep = FL.separable_filter2d_counted(img, s.column, s.row, mode="same")
    assert full == 64 * 64 * 81  # N^2 K^2
    assert sep == (64 + 8) * 64 * 9 + 64 * 64 * 9  # ~ 2 N^2 K
    assert 4.0 < full / sep < 4.5  # ~ K/2


def test_pyramid_ttic_problem_4():
    img = np.arange(16.0).reshape(4, 4)
    levels = FL.pyramid(img)
    assert [lv.shape for lv in levels] == [(4, 4), (2, 2), (1, 1)]
    assert levels[1].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert levels[2].tolist() == [[7.5]]
    # a batch of RGB images I[b, x, y, c] reduces over x, y; equals 2x2 average pooling
    batch = np.random.default_rng(1).standard_normal((2, 8, 8, 3))
    pyr = FL.pyramid(batch, axes=(1, 2))
    assert [p.shape for p in pyr] == [(2, 8, 8, 3), (2, 4, 4, 3), (2, 2, 2, 3), (2, 1, 1, 3)]
    pooled = F.avg_pool2d(torch.tensor(batch).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    np.testing.assert_allclose(pyr[1], pooled.numpy(), atol=1e-14)
    assert len(FL.pyramid(batch, levels=1, axes=(1, 2))) == 2
    with pytest.raises(CnnlabError, match="odd size"):
        FL.pyramid(np.ones((6, 6)))

"""ETH Problem 2 as `cnnlab analyze --compare` prints it: exact ratios (fractions.Fraction of
the counts is the oracle) and the formulas in m, p, K, n, C with the numbers put in."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cnnlab.analysis.render import compare_lines, exact_ratio, render
from cnnlab.models.resolve import analyze


@pytest.mark.parametrize("num, den, text", [
    (1216, 12_092_424_448, "1/9,944,428"), (1, 15376, "1/15,376"),
    (1200, 12_092_178_432, "25/251,920,384 = 1/10,076,815.4"), (0, 5, "-")])
def test_exact_ratio(num: int, den: int, text: str) -> None:
    assert exact_ratio(num, den) == text


@pytest.mark.parametrize("m, p, k", [(128, 5, 16), (32, 3, 4)])
def test_eth_p2_formulas_and_exact_ratios(m: int, p: int, k: int) -> None:
    a = analyze(f"conv{p}x{p}x{k}", input=f"3x{m}x{m}", compare=True)
    n = m - p + 1
    lines = compare_lines(a)
    text = "\n".join(lines)
    conv, local = k * (3 * p * p + 1), n * n * k * (3 * p * p + 1)
    full = n * n * k * (3 * m * m + 1)
    assert f"conv:  K(Cp² + 1) = {k}·(3·{p}² + 1) = {conv:,}" in text
    assert f"local: n²K(Cp² + 1) = {n}²·{k}·(3·{p}² + 1) = {local:,}" in text
    assert f"full:  n²K(Cm² + 1) = {n}²·{k}·(3·{m}² + 1) = {full:,}" in text
    r = Fraction(conv, full)
    assert r.numerator == 1 and f"= 1/{r.denominator:,}; weights only" in text
    w = Fraction(p * p, n * n * m * m)
    assert f"p²/(n²m²) = {w.numerator:,}/{w.denominator:,}" in text
    table = render(a, "table")
    assert "e+" not in table and f"1/{r.denominator:,}" in table


def test_a_strided_layer_gets_counts_without_the_valid_formula() -> None:
    a = analyze("conv3x3x8(stride=2)", input="3x32x30", compare=True)
    text = "\n".join(compare_lines(a))
    assert "K(Cp² + 1)" not in text and "conv 224 (weights 216)" in text

"""95% intervals: the t quantile, a mean's interval, paired and Welch differences, checked
against scipy.stats (the independent oracle); the rule that decides pairing."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.experiments.report.intervals import (
    data_order,
    difference,
    mean_interval,
    pairs,
    t_quantile,
)

scipy_stats = pytest.importorskip("scipy.stats")

ORDER = ("mnist", 50, None, 0)


@pytest.mark.parametrize("df", [1, 1.5, 2, 2.7, 3, 4, 5, 7.3, 10, 29.3, 100, 1e4])
@pytest.mark.parametrize("p", [0.975, 0.995, 0.9, 0.6, 0.025, 0.5001])
def test_t_quantile_matches_scipy(df: float, p: float) -> None:
    assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-8)


@settings(max_examples=60, deadline=None)
@given(df=st.floats(0.5, 500), p=st.floats(0.51, 0.9999))
def test_t_quantile_matches_scipy_anywhere(df: float, p: float) -> None:
    assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-8)


def test_t_quantile_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df > 0"):
        t_quantile(0.975, 0)


def test_the_two_seed_interval_is_wide() -> None:
    # the figure: a 95% t-interval at n = 2 is ±12.7 standard errors
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    iv = mean_interval([0.9790, 0.9873])
    se = scipy_stats.sem([0.9790, 0.9873])
    assert (iv.estimate, iv.half) == pytest.approx((0.98315, 12.7062047 * se), rel=1e-7)


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.5], [0.9, 0.91, 0.95, 0.97, 0.90],
                                    [5.0, 5.0, 5.0]])
def test_mean_interval_matches_scipy(values: list[float]) -> None:
    iv = mean_interval(values)
    assert iv.n == len(values) and iv.method == "mean"
    if len(set(values)) == 1:
        assert (iv.lo, iv.hi) == (5.0, 5.0)
        return
    lo, hi = scipy_stats.t.interval(0.95, len(values) - 1, loc=sum(values) / len(values),
                                    scale=scipy_stats.sem(values))
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), rel=1e-9)


def test_one_value_has_no_interval() -> None:
    iv = mean_interval([0.98])
    assert (iv.estimate, iv.n, iv.method, iv.has_interval, iv.distinguishable) == (
        0.98, 1, "none", False, False)
    assert math.isnan(iv.lo) and math.isnan(iv.half)


def _obs(values: list[float], order: tuple | None = ORDER, seeds: list | None = None):
    return [(s, order, v) for s, v in zip(seeds or range(len(values)), values, strict=True)]


def test_paired_difference_matches_scipy_ttest_rel() -> None:
    a, b = [0.91, 0.95, 0.93, 0.97], [0.90, 0.93, 0.925, 0.95]
    d = difference(_obs(a), _obs(b))
    ci = scipy_stats.ttest_rel(a, b).confidence_interval()
    assert d.method == "paired" and d.n == 4
    assert (d.estimate, d.lo, d.hi) == pytest.approx(
        (sum(a) / 4 - sum(b) / 4, ci.low, ci.high), rel=1e-9)
    assert d.distinguishable


def test_welch_difference_matches_scipy_ttest_ind() -> None:
    a, b = [0.91, 0.95, 0.93], [0.90, 0.93, 0.925, 0.95, 0.89]
    d = difference(_obs(a), _obs(b))  # different seed sets: not paired
    res = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval()
    assert d.method == "welch" and d.n == (3, 5)
    assert (d.lo, d.hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert not d.distinguishable


def test_pairing_removes_the_shared_seed_effect() -> None:
    # truth: b = a - 0.004 on every seed, on top of a large seed-to-seed effect shared by both
    seed_effect = [0.0, 0.008, -0.006, 0.003]
    a = [0.95 + e for e in seed_effect]
    b = [x - 0.004 + n for x, n in zip(a, [0.0002, -0.0001, 0.0001, -0.0002], strict=True)]
    paired = difference(_obs(a), _obs(b))
    welch = difference(_obs(a), _obs(b, order=("mnist", 100, None, 0)))
    assert paired.method == "paired" and paired.distinguishable
    assert paired.lo > 0.0035 and paired.hi < 0.0045
    assert welch.method == "welch" and not welch.distinguishable
    assert welch.estimate == pytest.approx(paired.estimate, rel=1e-12)


@pytest.mark.parametrize("b, method", [
    (_obs([1.0, 2.0, 3.0]), "paired"),
    (_obs([1.0, 2.0, 3.0], order=("mnist", 100, None, 0)), "welch"),     # another batch size
    (_obs([1.0, 2.0, 3.0], order=None), "welch"),                        # unknown config
    (_obs([1.0, 2.0, 3.0], seeds=[0, 1, 7]), "welch"),                   # other seeds
    (_obs([1.0, 2.0, 3.0], seeds=[0, 1, 1]), "welch"),                   # a seed twice
    (_obs([1.0, 2.0]), "welch"),                                         # a seed missing
    (_obs([1.0]), "none"),                                               # one seed
])
def test_pairing_rule(b: list, method: str) -> None:
    a = _obs([1.5, 2.2, 3.9])
    assert difference(a, b).method == method
    assert (pairs(a, b) is not None) == (method == "paired")


def test_two_single_seeds_pair_to_no_interval() -> None:
    d = difference(_obs([0.9]), _obs([0.8]))
    assert (d.method, d.n, d.distinguishable) == ("none", (1, 1), False)
    assert d.estimate == pytest.approx(0.1)


def test_an_interval_touching_zero_is_not_distinguishable() -> None:
    d = difference(_obs([1.0, 2.0]), _obs([1.0, 2.0]))
    assert (d.lo, d.hi, d.distinguishable) == (0.0, 0.0, False)


BASE = {"seed": 0, "dataset": "mnist", "batch_size": 50, "train_size": None, "validation": 0,
        "lr": 1e-3, "augment": "", "augment_mode": "batch"}


@pytest.mark.parametrize("change, same", [
    ({"lr": 0.1}, True), ({"keep_prob": 0.5}, True), ({"model": "linear"}, True),
    ({"augment": "shift=2"}, True),  # per-batch augmentation: the permutation is unchanged
    ({"batch_size": 100}, False), ({"train_size": 250}, False), ({"validation": 1000}, False),
    ({"dataset": "fashion-mnist"}, False),
    ({"augment": "shift=2", "augment_mode": "upfront"}, False),
])
def test_data_order_key(change: dict, same: bool) -> None:
    assert (data_order(BASE) == data_order({**BASE, **change})) == same
    assert data_order({}) is None


samples = st.lists(st.floats(0.5, 1.0, allow_nan=False), min_size=2, max_size=6)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, near-ties
@settings(max_examples=80, deadline=None)
@given(a=samples, b=samples, paired=st.booleans())
def test_difference_and_its_verdict_agree_with_scipy(a: list[float], b: list[float],
                                                     paired: bool) -> None:
    """Paired (same seeds, same order) or Welch, the interval is scipy's, and a difference is
    distinguishable exactly when that interval excludes 0."""
    if paired:
        b = (b * 6)[:len(a)]
    d = difference(_obs(a), _obs(b, order=ORDER if paired else ("mnist", 100, None, 0)))
    if paired:
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        if len(set(diffs)) == 1 or statistics.stdev(diffs) < 1e-12:
            return  # scipy's interval is nan for zero spread; ours is the point itself
        ci = scipy_stats.ttest_rel(a, b).confidence_interval()
    else:
        if statistics.stdev(a) < 1e-9 and statistics.stdev(b) < 1e-9:
            return
        ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert d.method == ("paired" if paired else "welch")
    assert (d.lo, d.hi) == pytest.approx((ci.low, ci.high), rel=1e-7, abs=1e-12)
    if min(abs(ci.low), abs(ci.high)) > 1e-9:  # not on the edge
        assert d.distinguishable == (ci.low > 0 or ci.high < 0)

"""95% confidence intervals over seeds: a configuration's mean, and a difference of two.

The rules (docs/experiments.md, "Statistics"):

* a mean over ``n >= 2`` seeds is ``mean ± t(0.975, n-1) · s / sqrt(n)`` (Student t, ``s`` the
  sample standard deviation); one seed has no interval;
* a difference of two configurations is **paired by seed** when both were trained on the same
  seeds with the same data order (:func:`data_order`: same seed, dataset, batch size, training
  subset, validation split and up-front augmentation), over at least two seeds: the interval
  of the mean of the per-seed differences (t with ``n-1`` degrees of freedom). Otherwise it is
  **Welch's** interval (unequal variances, Welch-Satterthwaite degrees of freedom), which
  needs at least two seeds on each side;
* a difference whose interval contains 0, or that has no interval, is "not distinguishable".

The t quantile is computed here (regularized incomplete beta, inverted by bisection), so the
report needs no scipy; ``tests/test_stats_intervals.py`` checks it against ``scipy.stats.t``.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Any

LEVEL = 0.95

#: TrainConfig fields that, with the seed, fix the order in which a run sees its training
#: examples (engine.py: the permutation of ``randperm(n, seed)`` in mini-batches of
#: ``batch_size``; ``n`` from the dataset, the subset and the validation split)
DATA_ORDER_KEYS = ("dataset", "batch_size", "train_size", "validation")


def data_order(cfg: dict[str, Any]) -> tuple | None:
    """The key that, with the seed, fixes a run's data order; ``None`` for an unknown config.

    An up-front augmentation enlarges the training set (so its ``augment``,
    ``augment_copies`` are part of the key); per-batch augmentation leaves the order alone.
    """
    if not cfg or "seed" not in cfg:
        return None
    key = tuple(cfg.get(k) for k in DATA_ORDER_KEYS)
    if cfg.get("augment") and cfg.get("augment_mode") == "upfront":
        key += (cfg.get("augment"), cfg.get("augment_copies"))
    return key


# ------------------------------------------------------------------------ Student t


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, real) degrees of freedom."""
    t2 = t * t
    if t2 < df:  # near the centre: P(|T| < |t|) = I_{t²/(df+t²)}(1/2, df/2), no cancellation
        tail = 0.5 * (1.0 - _betai(0.5, df / 2.0, t2 / (df + t2)))
    else:        # in the tails: P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2)
        tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t2))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``).

    Bisection on the cdf to a relative 1e-13; ``df`` may be fractional (Welch).
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------ intervals


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% confidence interval (``lo``/``hi`` NaN when there is none).

    ``n`` is the seed count (pairs for a paired difference, ``(na, nb)`` for Welch's);
    ``method`` is ``"mean"``, ``"paired"``, ``"welch"`` or ``"none"`` (too few seeds).
    """

    estimate: float
    lo: float
    hi: float
    n: int | tuple[int, int]
    method: str

    @property
    def has_interval(self) -> bool:
        return self.method != "none"

    @property
    def half(self) -> float:
        return (self.hi - self.lo) / 2 if self.has_interval else math.nan

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0 (an interval that touches 0 does not)."""
        return self.has_interval and (self.lo > 0 or self.hi < 0)


def mean_interval(values: list[float], level: float = LEVEL) -> Interval:
    """Mean of ``values`` ± the Student-t half-width; no interval for one value."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, "none")
    half = t_quantile(0.5 + level / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "mean")


Obs = tuple[Any, Any, float]  # (seed, data-order key, value) of one run


def pairs(a: list[Obs], b: list[Obs]) -> list[tuple[float, float]] | None:
    """Per-seed value pairs when ``a`` and ``b`` share their data order, else ``None``:
    the same seeds (each once, at least two) and, seed by seed, the same known data-order key.
    """
    sa, sb = {o[0]: o for o in a}, {o[0]: o for o in b}
    if (len(sa) != len(a) or len(sb) != len(b) or set(sa) != set(sb) or len(sa) < 2
            or None in sa):
        return None
    if any(sa[s][1] is None or sa[s][1] != sb[s][1] for s in sa):
        return None
    return [(sa[s][2], sb[s][2]) for s in sorted(sa, key=str)]


def difference(a: list[Obs], b: list[Obs], level: float = LEVEL) -> Interval:
    """``mean(a) - mean(b)`` with its interval: paired by seed (:func:`pairs`), else Welch."""
    va, vb = [o[2] for o in a], [o[2] for o in b]
    if not va or not vb:
        return Interval(math.nan, math.nan, math.nan, (len(va), len(vb)), "none")
    est = statistics.fmean(va) - statistics.fmean(vb)
    matched = pairs(a, b)
    if matched is not None:
        d = mean_interval([x - y for x, y in matched], level)
        return Interval(est, d.lo, d.hi, len(matched), "paired")
    na, nb = len(va), len(vb)
    if na < 2 or nb < 2:
        return Interval(est, math.nan, math.nan, (na, nb), "none")
    qa, qb = statistics.variance(va) / na, statistics.variance(vb) / nb
    se = math.sqrt(qa + qb)
    if se == 0:
        return Interval(est, est, est, (na, nb), "welch")
    df = (qa + qb) ** 2 / (qa ** 2 / (na - 1) + qb ** 2 / (nb - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return Interval(est, est - half, est + half, (na, nb), "welch")

"""The claims catalogue: statements from the exercise sheets, each checked numerically.

A claim is one function registered with :func:`claim`; it measures something with the NumPy
reference (or torch autograd, imported inside the claim) and returns a :class:`Check`.
Adding a claim is adding one function::

    @claim("valid convolution output has length n - k + 1", "HUJI A1 theory 1.2.1")
    def _valid_length() -> Check:
        ...
        return at_most(mismatches, 0)

:func:`run_claims` evaluates them (an exception is a FAIL carrying its message);
``cnnlab verify`` prints the table or JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnlab.ir import spec
from cnnlab.ref import filters, layers
from cnnlab.ref.conv import conv_backward, conv_forward, convolve
from cnnlab.ref.network import init_params, network_backward, network_forward
from cnnlab.ref.pool import pool_forward
from cnnlab.ref.softmax import softmax_forward


@dataclass(frozen=True)
class Check:
    measured: float | str
    tolerance: str
    passed: bool


@dataclass(frozen=True)
class Claim:
    name: str
    text: str
    source: str
    fn: Callable[[], Check]


@dataclass(frozen=True)
class Result:
    claim: str
    source: str
    measured: float | str
    tolerance: str
    status: str  # "PASS" or "FAIL"
    seconds: float

    def as_dict(self) -> dict[str, float | str]:
        return {"claim": self.claim, "source": self.source, "measured": self.measured,
                "tolerance": self.tolerance, "status": self.status}


CLAIMS: list[Claim] = []


def claim(text: str, source: str) -> Callable[[Callable[[], Check]], Callable[[], Check]]:
    """Register the decorated function as the check of ``text`` (``source``: sheet, question)."""
    def deco(fn: Callable[[], Check]) -> Callable[[], Check]:
        CLAIMS.append(Claim(fn.__name__.strip("_"), text, source, fn))
        return fn
    return deco


def at_most(value: float, tol: float) -> Check:
    return Check(float(value), f"<= {tol:g}", bool(value <= tol))


def at_least(value: float, bound: float) -> Check:
    return Check(float(value), f">= {bound:g}", bool(value >= bound))


def near(value: float, expected: float, tol: float) -> Check:
    return Check(float(value), f"{expected:g} +- {tol:g}", bool(abs(value - expected) <= tol))


def equals(value: object, expected: object) -> Check:
    return Check(str(value), f"== {expected}", value == expected)


def run_claims(names: list[str] | None = None) -> list[Result]:
    """Evaluate every registered claim (or those whose name/text contains one of ``names``)."""
    out = []
    for c in CLAIMS:
        if names and not any(n.lower() in (c.name + " " + c.text).lower() for n in names):
            continue
        t0 = time.perf_counter()
        try:
            chk = c.fn()
            status = "PASS" if chk.passed else "FAIL"
            measured, tol = chk.measured, chk.tolerance
        except Exception as e:  # a crashing check is a failed claim, reported, not raised
            status, measured, tol = "FAIL", f"error: {type(e).__name__}: {e}", "-"
        out.append(Result(c.text, c.source, measured, tol, status, time.perf_counter() - t0))
    return out


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------- convolution


@claim("convolution is translation equivariant: exact with circular padding",
       "ETH Ex.5 P1.1; HUJI theory 1.1; PS3 3(a)")
def _equivariance_circular() -> Check:
    f, k = _rng(1).standard_normal((16, 20)), _rng(2).standard_normal((5, 3))
    worst = 0.0
    for s, t in ((1, 0), (3, -2), (-5, 7)):
        lhs = filters.filter2d(np.roll(f, (s, t), (0, 1)), k, "circular")
        rhs = np.roll(filters.filter2d(f, k, "circular"), (s, t), (0, 1))
        worst = max(worst, float(np.abs(lhs - rhs).max()))
    return at_most(worst, 1e-12)


@claim("convolution is translation equivariant: exact away from the border with zero padding",
       "ETH Ex.5 P1.1; PS3 3(a)")
def _equivariance_zero_interior() -> Check:
    f, k = _rng(3).standard_normal((24, 24)), _rng(4).standard_normal((3, 5))
    s, t = 2, 3
    shifted = np.zeros_like(f)
    shifted[s:, t:] = f[:-s, :-t]  # tau_(s,t) f, zeros shifted in
    lhs = filters.filter2d(shifted, k, "zero")
    rhs = np.zeros_like(f)
    rhs[s:, t:] = filters.filter2d(f, k, "zero")[:-s, :-t]
    r, q = k.shape[0] // 2, k.shape[1] // 2  # the kernel's reach past a border
    interior = (slice(s + r, -r), slice(t + q, -q))
    return at_most(float(np.abs(lhs - rhs)[interior].max()), 1e-12)


@claim("2x2 max pooling makes a conv+ReLU feature map approximately shift invariant: "
       "relative change after a 1-pixel shift, max-pooled / stride-2 subsampled",
       "PS3 3(a) side note; PS3 1(a)")
def _maxpool_invariance() -> Check:
    x = _rng(5).standard_normal((8, 1, 40, 40))
    w = _rng(6).standard_normal((4, 1, 3, 3))
    feat = np.maximum(conv_forward(x, w)[0], 0)  # (8, 4, 38, 38)
    a, b = feat[..., :, :-2], feat[..., :, 1:-1]  # b is a shifted by one pixel

    def rel(p: np.ndarray, q: np.ndarray) -> float:
        return float(np.linalg.norm(q - p) / np.linalg.norm(p))

    pooled = rel(pool_forward(a, "max", 2)[0], pool_forward(b, "max", 2)[0])
    # the baseline has the same output grid but no max: what stride alone does
    strided = rel(a[..., ::2, ::2], b[..., ::2, ::2])
    return at_most(pooled / strided, 0.6)


@claim("a ReLU unit whose pre-activations are all negative passes zero gradient to its "
       "filter and bias", "HUJI theory 2.1")
def _dead_relu() -> Check:
    graph = spec.parse("conv3x3x2 relu fc3")
    params = init_params(graph, (1, 8, 8), seed=0)
    params["conv1"]["bias"][:] = -100.0
    x = _rng(7).uniform(-1, 1, (4, 1, 8, 8))
    out, cache = network_forward(graph, params, x)
    if cache.values["conv1"].max() >= 0:
        return Check("pre-activations not all negative", "-", False)
    _, grads = network_backward(_rng(8).standard_normal(out.shape), cache)
    g = max(np.abs(grads["conv1"]["weight"]).max(), np.abs(grads["conv1"]["bias"]).max())
    return at_most(float(g), 0.0)


@claim("gradient descent on only such examples never changes that filter and bias",
       "HUJI theory 2.2")
def _dead_relu_stays_dead() -> Check:
    graph = spec.parse("conv3x3x2 relu fc3")
    params = init_params(graph, (1, 8, 8), seed=1)
    params["conv1"]["bias"][:] = -100.0
    before = {k: v.copy() for k, v in params["conv1"].items()}
    x, y = _rng(9).uniform(-1, 1, (4, 1, 8, 8)), np.array([0, 1, 2, 0])
    from cnnlab.ref.network import loss_and_grads

    for _ in range(5):
        _, _, grads = loss_and_grads(graph, params, x, y)
        for name, g in grads.items():
            for key, val in g.items():
                params[name][key] -= 0.5 * val
    moved = max(np.abs(params["conv1"][k] - before[k]).max() for k in before)
    return at_most(float(moved), 0.0)


@claim("conv layer dL/dw and dL/dx (NumPy backward) equal torch autograd",
       "ETH Ex.5 P3; HUJI theory 3")
def _conv_grads_autograd() -> Check:
    import torch
    import torch.nn.functional as F

    x, w = _rng(10).standard_normal((2, 3, 9, 8)), _rng(11).standard_normal((4, 3, 3, 2))
    b, worst = _rng(12).standard_normal(4), 0.0
    for stride, pad in ((1, "valid"), (2, "same")):
        out, cache = conv_forward(x, w, b, stride=stride, padding=pad)
        d = _rng(13).standard_normal(out.shape)
        dx, dw, db = conv_backward(d, cache)
        xt, wt, bt = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
        lo_hi = cache.geom.pads
        xp = F.pad(xt, (lo_hi[1][0], lo_hi[1][1], lo_hi[0][0], lo_hi[0][1]))
        yt = F.conv2d(xp, wt, bt, stride=stride)
        gx, gw, gb = torch.autograd.grad(yt, (xt, wt, bt), torch.tensor(d))
        for mine, ref in ((dx, gx), (dw, gw), (db, gb)):
            worst = max(worst, float(np.abs(mine - ref.numpy()).max()))
    return at_most(worst, 1e-10)


@claim("a valid convolution of length n with a length-k filter has n - k + 1 outputs",
       "HUJI theory 1.2.1; ETH Ex.5 P1.2")
def _valid_length() -> Check:
    bad = 0
    for n in range(1, 13):
        for k in range(1, n + 1):
            out = convolve(np.ones((1, 1, n)), np.ones((1, 1, k)))
            bad += out.shape[-1] != n - k + 1
    return at_most(bad, 0)


@claim("n = k gives an output of length 1 (the inner product of signal and flipped filter)",
       "HUJI theory 1.2.2")
def _n_equals_k() -> Check:
    f, k = _rng(14).standard_normal(7), _rng(15).standard_normal(7)
    out = convolve(f[None, None], k[None, None])[0, 0]
    if out.shape != (1,):
        return equals(out.shape, (1,))
    return at_most(abs(float(out[0]) - float(f @ k[::-1])), 1e-12)


@claim("zero padding by p keeps the size of a (2p+1)-kernel convolution",
       "ETH Ex.5 P1.2")
def _same_size() -> Check:
    bad = 0
    for p in range(0, 4):
        for m in range(2 * p + 1, 2 * p + 6):
            out = convolve(np.ones((1, 1, m, m + 1)), np.ones((1, 1, 2 * p + 1, 2 * p + 1)),
                           padding=p)
            bad += out.shape[2:] != (m, m + 1)
    return at_most(bad, 0)


@claim("four stacked 3x3 convolutions (stride 1) see a 9x9 input patch, measured by the "
       "gradient footprint of one output", "PS3 3(d)")
def _receptive_field() -> Check:
    graph = spec.parse("conv3x3x1 * 4")
    params = init_params(graph, (1, 17, 17), seed=0)
    for p in params.values():
        p["weight"][:] = 1.0  # positive weights: no cancellation can hide a pixel
    x = np.ones((1, 1, 17, 17))
    out, cache = network_forward(graph, params, x)
    d = np.zeros_like(out)
    d[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0
    dx, _ = network_backward(d, cache)
    rows, cols = np.nonzero(dx[0, 0])
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    return equals(f"{h}x{w} ({int(np.count_nonzero(dx))} px)", "9x9 (81 px)")


# ----------------------------------------------------------------------------- softmax


@claim("softmax outputs are non-negative and sum to 1", "PS3 2(a)")
def _softmax_sums() -> Check:
    c = np.concatenate([_rng(16).standard_normal((50, 3)) * 10,
                        np.array([[1000.0, -1000.0, 0.0], [-800.0, -800.0, -801.0]])])
    p, _ = softmax_forward(c)
    if p.min() < 0:
        return Check(float(p.min()), ">= 0", False)
    return at_most(float(np.abs(p.sum(axis=1) - 1).max()), 1e-12)


@claim("softmax Jacobian p_i (delta_ij - p_j) equals torch autograd", "PS3 2(b)")
def _softmax_jacobian() -> Check:
    import torch

    from cnnlab.ref.jacobian import softmax_jacobian

    worst = 0.0
    for seed in range(5):
        c = _rng(20 + seed).standard_normal(3) * 3
        auto = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, 0),
                                                  torch.tensor(c)).numpy()
        worst = max(worst, float(np.abs(softmax_jacobian(c) - auto).max()))
    return at_most(worst, 1e-12)


# ---------------------------------------------------------------------- noise, residual


@claim("averaging N noisy images leaves noise variance sigma^2/N (Monte Carlo: "
       "measured / (sigma^2/N))", "PS3 2(c)")
def _averaging_variance() -> Check:
    sigma, n = 2.0, 8
    image = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    noisy = image + sigma * _rng(30).standard_normal((n, 50, 64, 64))  # 50 trials
    err = noisy.mean(axis=0) - image
    # 204800 samples: the variance estimate's relative standard error is sqrt(2/M) ~ 0.003
    return near(float(err.var() / (sigma**2 / n)), 1.0, 0.02)


@claim("gamma = 1/sqrt(2) keeps zero mean, unit variance in gamma (L + L_hat) "
       "(Monte Carlo variance)", "TTIC Problem 3(b)")
def _residual_gamma_variance() -> Check:
    a, b = _rng(31).standard_normal(400_000), _rng(32).standard_normal(400_000)
    out = layers.add_forward([a, b], gamma=1 / math.sqrt(2))
    if abs(out.mean()) > 0.01:
        return Check(float(out.mean()), "|mean| <= 0.01", False)
    return near(float(out.var()), 1.0, 0.01)


@claim("with gamma < 1 the gradient reaching the bottom layer shrinks by gamma^(L-2) "
       "(L = 6 layers incl. input, gamma = 1/sqrt(2); measured / expected)",
       "TTIC Problem 3(c)")
def _residual_gamma_gradient() -> Check:
    layers_total = 6
    blocks = layers_total - 1
    gamma = 1 / math.sqrt(2)
    norms = []
    for g in (gamma, 1.0):
        graph = spec.parse(f"res(gamma={g!r}){{fc16}} * {blocks}")
        params = init_params(graph, (16,), seed=0)  # the same weights for both gammas
        x = _rng(33).standard_normal((4, 16))
        out, cache = network_forward(graph, params, x)
        network_backward(_rng(34).standard_normal(out.shape), cache)
        norms.append(np.linalg.norm(cache.node_grads["add1"]))  # dL/dL_2: bottom layer
    return near(float(norms[0] / norms[1] / gamma ** (layers_total - 2)), 1.0, 1e-12)


# ----------------------------------------------------------------------------- filters


@claim("the Prewitt filter is separable: rank 1, (1,1,1)^T (1,0,-1) "
       "(measured: s2/s1)", "PS3 3(b)")
def _prewitt_separable() -> Check:
    s = filters.separate(filters.PREWITT_X)
    ratio = s.singular_values[1] / s.singular_values[0]
    ok = s.separable and s.residual <= 1e-12
    return Check(ratio, "rank 1 (s2/s1 <= 1e-10)", bool(ok and ratio <= 1e-10))


@claim("[[2,3],[1,1]] is not separable: rank 2, det -1 (measured: s2/s1)", "PS3 3(c)")
def _not_separable() -> Check:
    s = filters.separate([[2, 3], [1, 1]])
    ratio = s.singular_values[1] / s.singular_values[0]
    ok = not s.separable and s.rank == 2 and abs((s.determinant or 0) + 1) < 1e-12
    return Check(ratio, "rank 2 (s2/s1 > 1e-10), det = -1", bool(ok))


@claim("separable KxK filtering of an NxN image costs O(N^2 K) multiplications, full "
       "O(N^2 K^2) (N=64, K=9: counted full / separable)", "PS3 3(f)")
def _separable_cost() -> Check:
    img = _rng(40).standard_normal((64, 64))
    g = filters.gaussian(9, 2.0)
    s = filters.separate(g)
    out_f, n_full = filters.filter2d_counted(img, g, mode="same")
    out_s, n_sep = filters.separable_filter2d_counted(img, s.column, s.row, mode="same")
    exact = (n_full == filters.mults_full(72, 72, 9, 9)
             and n_sep == filters.mults_separable(72, 72, 9, 9)
             and np.abs(out_f - out_s).max() < 1e-12)
    ratio = n_full / n_sep
    return Check(round(ratio, 4), "counts = formulas; ratio ~ K/2 in [4, 5]",
                 bool(exact and 4 <= ratio <= 5))


@claim("gradient magnitude of row 2 with zero padding is (12 15 18 42 105 84 60 150)",
       "PS3 2(d)")
def _sheet_gradient_zero() -> Check:
    img = np.tile([3.0, 4, 8, 10, 22, 45, 50, 65], (10, 1))
    g = filters.gradient_magnitude(img, padding="zero").magnitude[1]
    return equals(" ".join(f"{v:g}" for v in g), "12 15 18 42 105 84 60 150")


@claim("with reflect padding g_x of row 2 is (0 15 18 42 105 84 60 0) and so is the "
       "magnitude (the printed magnitude is a slip, docs/errata.md)", "PS3 2(e), corrected")
def _sheet_gradient_reflect() -> Check:
    img = np.tile([3.0, 4, 8, 10, 22, 45, 50, 65], (10, 1))
    g = filters.gradient_magnitude(img, padding="reflect")
    same = np.array_equal(g.gx[1], g.magnitude[1])
    text = " ".join(f"{v:g}" for v in g.magnitude[1])
    return Check(text, "== 0 15 18 42 105 84 60 0 (= g_x)",
                 bool(same and text == "0 15 18 42 105 84 60 0"))


@claim("the 2x2-average pyramid of a 2^k image has k+1 levels, each the mean of the last",
       "TTIC Problem 4")
def _pyramid() -> Check:
    img = _rng(41).standard_normal((32, 32, 3))
    levels = filters.pyramid(img)
    drift = max(abs(float(lv.mean() - img.mean())) for lv in levels)
    if len(levels) != 6 or levels[-1].shape != (1, 1, 3):
        return equals(len(levels), 6)
    return at_most(drift, 1e-12)

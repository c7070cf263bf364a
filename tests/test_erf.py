"""The effective receptive field (cnnlab.analysis.erf) against Luo et al.'s laws and oracles.

Oracles: for a linear stack of uniform convolutions the input gradient of the centre unit is
the n-fold convolution of the kernel (``np.convolve``, an outer product per axis); its variance
is ``n`` times the kernel's (2/3 for a uniform 3-tap kernel); the theoretical field is the
analyzer's ``rf`` (``cnnlab.analyze`` on the same module, traced by torch.fx); a single conv's
gradient is its own |weights|; box masses are counted by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from arch_strategies import specs
from hypothesis import HealthCheck, given, settings
from torch import nn

import cnnlab
from cnnlab.analysis.erf import effective_rf, mass_side
from cnnlab.common.errors import CnnlabError

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def uniform_stack(n: int, dims: int = 2) -> nn.Sequential:
    """``n`` valid 3-tap (3x3, 3x3x3) convolutions, every weight 1/3**dims, no bias, linear."""
    convs = []
    for _ in range(n):
        c = CONV[dims](1, 1, 3, bias=False, dtype=torch.float64)
        nn.init.constant_(c.weight, 1 / 3**dims)
        convs.append(c)
    return nn.Sequential(*convs)


def taps(n: int) -> np.ndarray:
    """The n-fold convolution of the uniform 3-tap kernel: the exact 1-D ERF of the stack."""
    k = np.array([1.0])
    for _ in range(n):
        k = np.convolve(k, np.full(3, 1 / 3))
    return k


def rfs(net: nn.Module, shape: tuple[int, ...], layers: list[str]) -> dict[str, tuple]:
    a = cnnlab.analyze(net, shape)
    return {name: a.layer(name).rf for name in layers}


# ------------------------------------------------------------------------- linear: exact


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_uniform_stack_is_the_n_fold_convolution(dims: int, n: int) -> None:
    size = 2 * n + 1 + 4
    shape = (1, *([size] * dims))
    net = uniform_stack(n, dims)
    last = str(n - 1)
    r = effective_rf(net, shape, [last], samples=2, rf=rfs(net, shape, [last])).layer(last)
    t = taps(n)
    expect = t
    for _ in range(dims - 1):
        expect = np.multiply.outer(expect, t)
    lo = r.centre[0]  # valid convs: the centre unit u reads inputs u .. u + 2n
    window = tuple(slice(lo, lo + 2 * n + 1) for _ in range(dims))
    np.testing.assert_allclose(r.grad[window], expect, rtol=1e-12, atol=1e-15)
    assert r.grad.sum() == pytest.approx(1.0, rel=1e-12)  # every kernel sums to 1
    assert r.rf == (2 * n + 1,) * dims
    assert r.footprint == r.rf  # zero gradient outside the theoretical field, none inside
    assert r.footprint_box == r.rf_box == ((lo, lo + 2 * n),) * dims
    for ax in range(dims):
        np.testing.assert_allclose(r.marginal(ax)[lo:lo + 2 * n + 1], t, rtol=1e-12)
        assert r.std[ax] == pytest.approx(math.sqrt(2 * n / 3), rel=1e-12)


def test_uniform_stack_is_gaussian_like() -> None:
    """The marginal approaches N(0, 2n/3) (local central limit theorem): the L1 distance is
    small and halves each time n doubles (measured: 0.0446, 0.0229, 0.0113 for n = 4, 8, 16)."""
    net = uniform_stack(16)
    shape = (1, 37, 37)
    layers = ["3", "7", "15"]
    res = effective_rf(net, shape, layers, samples=1, rf=rfs(net, shape, layers))
    dist = []
    for name in layers:
        r = res.layer(name)
        n = int(name) + 1
        m = r.marginal(0)
        x = np.arange(m.size) - r.centre_at[0]
        s = math.sqrt(2 * n / 3)
        gauss = np.exp(-x**2 / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)
        dist.append(float(np.abs(m - gauss).sum()))
    assert dist[-1] < 0.012
    for a, b in zip(dist, dist[1:], strict=False):
        assert 0.45 < b / a < 0.55


def test_sqrt_law_uniform_stack() -> None:
    """std of the ERF grows like n**0.5 (fitted over n = 2..16) while the analyzer's RF is
    2n+1; ERF95 (an integer side) follows the same exponent within 0.1; ERF/RF falls."""
    ns = list(range(2, 17))
    net = uniform_stack(16)
    shape = (1, 37, 37)
    layers = [str(n - 1) for n in ns]
    res = effective_rf(net, shape, layers, samples=1, rf=rfs(net, shape, layers))
    std = [res.layer(name).std[0] for name in layers]
    e95 = [res.layer(name).erf95 for name in layers]
    assert [res.layer(name).rf for name in layers] == [(2 * n + 1,) * 2 for n in ns]
    slope = np.polyfit(np.log(ns), np.log(std), 1)[0]
    assert slope == pytest.approx(0.5, abs=1e-9)
    assert np.polyfit(np.log(ns), np.log(e95), 1)[0] == pytest.approx(0.5, abs=0.1)
    ratio = [res.layer(str(n - 1)).ratio95 for n in (2, 4, 8, 16)]
    assert ratio[0] == 1.0 and ratio[-1] < 0.5
    assert all(b < a for a, b in zip(ratio, ratio[1:], strict=False))
    spread = [s / (2 * n + 1) for s, n in zip(std, ns, strict=True)]  # std / RF
    assert all(b < a for a, b in zip(spread, spread[1:], strict=False))


# ------------------------------------------------------------------------- random ReLU nets


def relu_stack(n: int, width: int = 8, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    ch = 1
    for _ in range(n):
        mods += [nn.Conv2d(ch, width, 3), nn.ReLU()]
        ch = width
    return nn.Sequential(*mods)


def test_random_relu_net_erf_inside_rf_and_sublinear() -> None:
    """Random-init ReLU stack (torch's default init, 8 channels, 16 inputs): every footprint
    lies inside and spans the analyzer's RF; the std exponent over n = 2..16 is near 1/2
    (measured 0.59-0.63 over seeds 0-3), far below the RF's own on the same n (0.89)."""
    ns = list(range(2, 17))
    net = relu_stack(16)
    shape = (1, 35, 35)
    layers = [str(2 * n - 1) for n in ns]  # the ReLU after conv n
    res = effective_rf(net, shape, layers, samples=16, rf=rfs(net, shape, layers))
    for name, n in zip(layers, ns, strict=True):
        r = res.layer(name)
        assert r.rf == (2 * n + 1,) * 2
        assert r.footprint == r.rf
        assert r.erf50 <= r.erf95 <= max(r.rf)
    std = [float(np.mean(res.layer(name).std)) for name in layers]
    slope = np.polyfit(np.log(ns), np.log(std), 1)[0]
    rf_slope = np.polyfit(np.log(ns), np.log([2 * n + 1 for n in ns]), 1)[0]
    assert 0.45 < slope < 0.75
    assert slope < rf_slope - 0.15
    assert res.layer(layers[-1]).ratio95 < 0.75


# ------------------------------------------------------------------------- stride, dilation


CASES = {
    "dilated": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3, dilation=2),
                                      nn.Conv2d(3, 1, 3, dilation=3)), (1, 31, 31)),
    "strided": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3, stride=2), nn.Conv2d(3, 3, 3),
                                      nn.Conv2d(3, 1, 3, stride=2)), (1, 33, 33)),
    "avgpool": (lambda: nn.Sequential(nn.Conv2d(1, 2, 5), nn.AvgPool2d(3, stride=2),
                                      nn.Conv2d(2, 1, 3, dilation=2)), (1, 30, 30)),
    "maxpool-padded": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2),
                                             nn.Conv2d(2, 1, (3, 5), padding=1)), (1, 24, 32)),
    "1d": (lambda: nn.Sequential(nn.Conv1d(1, 2, 7, stride=3), nn.Conv1d(2, 1, 3, dilation=4)),
           (1, 101)),
    "3d": (lambda: nn.Sequential(nn.Conv3d(1, 2, 3, stride=(1, 2, 2)),
                                 nn.Conv3d(2, 1, (1, 3, 3), dilation=2)), (1, 9, 21, 21)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_footprint_equals_analyzer_rf(case: str) -> None:
    """Positive weights, no nonlinearity: no cancellation, so the non-zero gradient spans the
    analyzer's RF exactly, and the centre unit's field starts at centre * jump - padding."""
    make, shape = CASES[case]
    torch.manual_seed(0)
    net = make().double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    last = str(len(net) - 1)
    a = cnnlab.analyze(net, shape)
    row = a.layer(last)
    r = effective_rf(net, shape, [last], samples=32, rf={last: row.rf}).layer(last)
    assert r.footprint == row.rf
    lo = _field_start(net, len(shape) - 1)
    start = tuple(c * j + o for c, j, o in zip(r.centre, row.jump, lo, strict=True))
    assert tuple(a for a, _ in r.footprint_box) == start  # the field lies inside the input
    assert r.rf_box == r.footprint_box


def _field_start(net: nn.Sequential, dims: int) -> tuple[int, ...]:
    """Per axis, the first input position read by unit 0: minus the sum of padding * jump."""
    def per_axis(v) -> tuple[int, ...]:
        return tuple(v) if isinstance(v, tuple) else (v,) * dims

    jump, lo = [1] * dims, [0] * dims
    for m in net:
        for ax, (p, s) in enumerate(zip(per_axis(m.padding), per_axis(m.stride), strict=True)):
            lo[ax] -= p * jump[ax]
            jump[ax] *= s
    return tuple(lo)


def test_single_dilated_conv_gradient_is_its_weights() -> None:
    conv = nn.Conv2d(1, 1, 3, dilation=2, bias=False).double()
    r = effective_rf(conv, (1, 9, 9), [""], samples=4).layers[0]
    # output 5x5, centre (2, 2) reads inputs 2, 4, 6 per axis
    np.testing.assert_allclose(r.grad[2:7:2, 2:7:2], conv.weight.detach().abs()[0, 0].numpy(),
                               rtol=1e-12)
    assert np.count_nonzero(r.grad) == 9 and r.footprint == (5, 5)


# ------------------------------------------------------------------------- box masses


def test_mass_side_by_hand() -> None:
    g = np.zeros((9, 9))
    g[4, 4] = 1
    assert mass_side(g, (4, 4), 0.5) == mass_side(g, (4, 4), 0.95) == 1
    g = np.zeros((9, 9))
    g[2:7, 2:7] = 1  # 5x5 block: the 3x3 box holds 9/25 < 50%, the 5x5 all
    assert mass_side(g, (4, 4), 0.36) == 3 and mass_side(g, (4, 4), 0.5) == 5
    g = np.zeros((8, 8))
    g[2:6, 2:6] = 1  # 4x4 block around a pixel corner: 2x2 holds 25%, 4x4 all
    assert mass_side(g, (3.5, 3.5), 0.25) == 2 and mass_side(g, (3.5, 3.5), 0.5) == 4
    line = np.array([0, 1, 2, 4, 2, 1, 0], float)  # 1-D: 4/10, 8/10, 10/10
    assert [mass_side(line, (3,), p) for p in (0.4, 0.5, 0.8, 0.95)] == [1, 3, 3, 5]


# ------------------------------------------------------------------------- behaviour, errors


def test_eval_mode_and_training_state_restored() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())
    net.train()
    net[1].eval()  # a frozen batch norm inside a training model stays frozen
    a = effective_rf(net, (1, 11, 11), ["3"], samples=8, seed=1).layers[0].grad
    b = effective_rf(net, (1, 11, 11), ["3"], samples=8, seed=1).layers[0].grad
    np.testing.assert_array_equal(a, b)  # dropout off, batch statistics not used
    assert net.training and net[2].training and not net[1].training


@pytest.mark.parametrize("layers, shape, message", [
    (["nope"], (1, 11, 11), "no module 'nope'"),
    (["2"], (1, 11, 11), "not a feature map"),
    ([], (1, 11, 11), "no layers chosen"),
    (["0"], (1,), "1 to 3 spatial sizes"),
    (["0"], (1, 2, 3, 4, 5), "1 to 3 spatial sizes"),
])
def test_bad_input_is_one_line_error(layers: list[str], shape: tuple, message: str) -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 9 * 9, 3))
    with pytest.raises(CnnlabError, match=message) as e:
        effective_rf(net, shape, layers, samples=2)
    assert "\n" not in str(e.value)


def test_samples_must_be_positive() -> None:
    with pytest.raises(CnnlabError, match="--erf-samples"):
        effective_rf(nn.Conv2d(1, 1, 3), (1, 5, 5), [""], samples=0)


def test_uniform_weights_average_their_input() -> None:
    """After uniform_weights every conv (grouped, transposed too) maps a constant 1 to 1
    away from the borders, biases are 0, and the ERF of a linear stack is exact (above)."""
    from cnnlab.analysis.erf import uniform_weights

    net = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Conv2d(4, 6, (1, 5), padding=2),
                        nn.ConvTranspose2d(6, 4, 3, groups=2), nn.Conv2d(4, 1, 3)).double()
    assert uniform_weights(net) == 4
    assert all(not m.bias.detach().any() for m in net)
    y = net(torch.ones(1, 2, 15, 15, dtype=torch.float64))
    np.testing.assert_allclose(y[0, 0, 4:-4, 4:-4].detach().numpy(), 1.0, rtol=1e-12)


def test_model_that_cannot_take_the_input_is_one_line_error() -> None:
    net = nn.Sequential(nn.Embedding(10, 4))  # integer tokens, not a float feature map
    with pytest.raises(CnnlabError, match="N\\(0,1\\) inputs of shape \\(2, 1, 8\\)") as e:
        effective_rf(net, (1, 8), ["0"], samples=2)
    assert "\n" not in str(e.value)
    with pytest.raises(CnnlabError, match="check --input"):
        effective_rf(nn.Conv2d(3, 2, 3), (1, 9, 9), [""], samples=2)  # wrong channel count


# ------------------------------------------------------------------------- random architectures


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(specs())
def test_erf_never_leaves_the_analyzer_rf(case: tuple[str, tuple[int, ...]]) -> None:
    """Random specs (1-3-D, padding modes, stride, dilation, groups, pools, residual and
    concat blocks), random init: at every spatial layer the non-zero gradient of the centre
    unit lies within the analyzer's RF on every axis."""
    from cnnlab.models import zoo

    text, shape = case
    a = cnnlab.analyze(text, shape)
    net = zoo.resolve(text).build(shape, seed=0)
    rows = [r for r in a.layers if r.kind not in ("input",) and r.jump is not None
            and r.rf is not None]
    if not rows:
        return
    names = [f"layers.{r.name}" for r in rows]
    res = effective_rf(net, shape, names, samples=4,
                       rf={f"layers.{r.name}": r.rf for r in rows})
    for r in res.layers:
        assert all(f <= k for f, k in zip(r.footprint, r.rf, strict=True)), (text, r.layer)
        assert r.erf50 <= r.erf95


def test_rf_of_finds_traced_names_in_a_built_graph() -> None:
    """A traced module rebuilt from its IR keeps node ``a.b`` as ``layers.a/b``; rf_of maps
    it back to the analyzer's row."""
    from cnnlab.ir.fximport import from_module
    from cnnlab.models.build import build

    shape = (1, 15, 15)
    src = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Conv2d(2, 1, 5))
    a = cnnlab.analyze(src, shape)
    net = build(from_module(src, shape), shape, seed=0)
    res = effective_rf(net, shape, ["layers.0/0", "layers.1"], samples=4, rf=a)
    assert [r.rf for r in res.layers] == [a.layer("0.0").rf, a.layer("1").rf] == [(3, 3), (7, 7)]
    assert [r.footprint for r in res.layers] == [(3, 3), (7, 7)]

"""The effective receptive field (ERF) of a network's units, after Luo et al., NeurIPS 2016.

For a layer with output ``y`` of shape ``(N, C_out, *S_out)`` the ERF of its centre unit is
the input gradient ``g = d(sum_c y[:, c, centre]) / dx`` (output gradient 1 at every channel of
the centre position, 0 elsewhere), taken in absolute value, summed over the input channels
and averaged over ``N`` random inputs ``x ~ N(0, 1)`` of shape ``(N, C_in, *S_in)``: an array
of shape ``S_in`` (1-D, 2-D or 3-D). The module runs in eval mode (batch norm uses its running
statistics, dropout is off), so the ``N`` samples are independent and one backward pass per
layer gives all ``N`` gradients.

Sizes measured on ``g`` (see docs/erf.md):

* ``footprint`` -- per axis, the extent of the box holding every non-zero gradient; no unit
  reads outside its theoretical field, so it never exceeds the theoretical RF;
* ``erf50`` / ``erf95`` -- the side of the smallest square (cube, segment) centred on the
  field's centre that holds 50% / 95% of the gradient mass; the centre is the centre of the
  theoretical field placed on the footprint when the RF is given, else the centre of mass;
* ``std`` -- per axis, the standard deviation of the 1-D marginal of ``g`` (the quantity that
  grows like ``sqrt(n)`` for ``n`` stacked convolutions while the RF grows like ``n``).

Only torch and numpy: the theoretical RF comes from the caller (``cnnlab analyze`` passes the
analyzer's ``rf`` column), so this module sits below the model layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from cnnlab.common.errors import CnnlabError

if TYPE_CHECKING:
    from cnnlab.analysis.analyze import Analysis


@dataclass
class LayerERF:
    """The ERF of the centre unit of one layer; ``grad`` has the input's spatial shape."""

    layer: str
    output_shape: tuple[int, ...]  # (C, *S_out), no batch
    centre: tuple[int, ...]  # index of the centre unit in S_out
    grad: np.ndarray  # mean |gradient|, shape S_in, float64
    footprint: tuple[int, ...]  # extent per axis of the non-zero gradient
    footprint_box: tuple[tuple[int, int], ...]  # per axis (first, last) non-zero input index
    centroid: tuple[float, ...]  # centre of mass per axis, input coordinates
    std: tuple[float, ...]  # std of the 1-D marginal per axis
    centre_at: tuple[float, ...]  # where the ERF squares are centred (half-pixel grid)
    erf50: int
    erf95: int
    rf: tuple[int, ...] | None = None  # theoretical RF (from the analyzer), per axis
    rf_box: tuple[tuple[int, int], ...] | None = None  # the RF placed on the footprint

    @property
    def ratio50(self) -> float | None:
        """``erf50 / max(rf)`` (None without a theoretical RF)."""
        return None if not self.rf else self.erf50 / max(self.rf)

    @property
    def ratio95(self) -> float | None:
        """``erf95 / max(rf)`` (None without a theoretical RF)."""
        return None if not self.rf else self.erf95 / max(self.rf)

    def marginal(self, axis: int) -> np.ndarray:
        """The 1-D marginal of ``grad`` along spatial ``axis``, normalised to sum 1."""
        others = tuple(a for a in range(self.grad.ndim) if a != axis)
        m = self.grad.sum(axis=others) if others else self.grad.copy()
        total = m.sum()
        return m / total if total > 0 else m


@dataclass
class ERFResult:
    """Result of :func:`effective_rf`: one :class:`LayerERF` per requested layer."""

    input_shape: tuple[int, ...]
    samples: int
    seed: int
    layers: list[LayerERF] = field(default_factory=list)

    def layer(self, name: str) -> LayerERF:
        for r in self.layers:
            if r.layer == name:
                return r
        raise KeyError(name)


# ------------------------------------------------------------------------- measures


def mass_side(grad: np.ndarray, centre: Sequence[float], fraction: float) -> int:
    """Side of the smallest box centred on ``centre`` (a half-pixel grid point per axis)
    holding at least ``fraction`` of ``grad``'s mass.

    A pixel at Chebyshev distance ``d`` from the centre lies in the boxes of side ``>= 2d+1``
    (odd sides around a pixel centre, even ones around a pixel corner).
    """
    total = float(grad.sum())
    if total <= 0:
        return 0
    grids = np.meshgrid(*(np.arange(n) - c for n, c in zip(grad.shape, centre, strict=True)),
                        indexing="ij")
    dist = np.max(np.abs(np.stack(grids)), axis=0).ravel()
    order = np.argsort(dist, kind="stable")
    cum = np.cumsum(grad.ravel()[order])
    i = int(np.searchsorted(cum, fraction * total * (1 - 1e-12)))
    return int(round(2 * dist[order][min(i, len(order) - 1)] + 1))


def _footprint(grad: np.ndarray) -> tuple[tuple[int, int], ...]:
    box = []
    for ax in range(grad.ndim):
        others = tuple(a for a in range(grad.ndim) if a != ax)
        nz = np.nonzero(grad.sum(axis=others) if others else grad)[0]
        box.append((int(nz[0]), int(nz[-1])) if nz.size else (0, -1))
    return tuple(box)


def place_rf(rf: Sequence[int], footprint: Sequence[tuple[int, int]],
             size: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The theoretical field ``rf`` placed on the measured ``footprint`` (input coordinates,
    inclusive, may run past the input into the padding): aligned with the footprint's first
    pixel unless that pixel is the input's first, else with its last; centred on it when the
    footprint spans the whole axis (the field is clipped on both sides)."""
    out = []
    for r, (a, b), n in zip(rf, footprint, size, strict=True):
        if a > 0:
            out.append((a, a + r - 1))
        elif b < n - 1:
            out.append((b - r + 1, b))
        else:
            lo = (a + b - (r - 1)) // 2
            out.append((lo, lo + r - 1))
    return tuple(out)


def measure(layer: str, grad: np.ndarray, output_shape: Sequence[int], centre: Sequence[int],
            rf: Sequence[int] | None = None) -> LayerERF:
    """The sizes of one ERF array ``grad`` (shape ``S_in``), see the module docstring."""
    box = _footprint(grad)
    foot = tuple(b - a + 1 for a, b in box)
    total = float(grad.sum())
    grids = [np.arange(n, dtype=np.float64) for n in grad.shape]
    centroid, std = [], []
    for ax, x in enumerate(grids):
        others = tuple(a for a in range(grad.ndim) if a != ax)
        m = grad.sum(axis=others) if others else grad
        mu = float((m * x).sum() / total) if total > 0 else 0.0
        centroid.append(mu)
        std.append(float(np.sqrt((m * (x - mu) ** 2).sum() / total)) if total > 0 else 0.0)
    rf_t = tuple(int(r) for r in rf) if rf is not None else None
    rf_box = place_rf(rf_t, box, grad.shape) if rf_t is not None and total > 0 else None
    if rf_box is not None:
        at = tuple((a + b) / 2 for a, b in rf_box)
    else:
        at = tuple(round(2 * c) / 2 for c in centroid)
    return LayerERF(layer, tuple(output_shape), tuple(centre), grad, foot, box,
                    tuple(centroid), tuple(std), at, mass_side(grad, at, 0.5),
                    mass_side(grad, at, 0.95), rf_t, rf_box)


# ------------------------------------------------------------------------- the gradients


def uniform_weights(module: nn.Module) -> int:
    """Luo et al.'s "uniform weights": every convolution kernel weight set to ``1 / fan_in``
    (``fan_in = C_in / groups * prod(kernel)``), every conv bias to 0, in place. Returns the
    number of conv layers changed. A linear stack of such convs averages its input."""
    count = 0
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.ConvTranspose1d
                          | nn.ConvTranspose2d | nn.ConvTranspose3d):
                fan_in = m.weight[0].numel() if not m.transposed else (
                    m.weight.shape[0] // m.groups * m.weight[0, 0].numel())
                m.weight.fill_(1.0 / fan_in)
                if m.bias is not None:
                    m.bias.zero_()
                count += 1
    return count


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) not in (2, 3, 4) or any(v < 1 for v in shape):
        raise CnnlabError(f"ERF input shape {shape}: give channels and 1 to 3 spatial sizes, "
                          "e.g. (1, 28, 28), (1, 16000) or (3, 8, 32, 32)")
    return shape


def rf_of(analysis: Analysis, layers: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """The analyzer's RF of each of ``layers`` (module names; a built model's ``layers.X`` is
    the analyzer's row ``X``, ``layers.a/b`` the row ``a.b``) that has a spatial field."""
    rows = {r.name: r for r in analysis.layers}
    out = {}
    for name in layers:
        bare = name.removeprefix("layers.")
        row = rows.get(name) or rows.get(bare) or rows.get(bare.replace("/", "."))
        if row is not None and row.rf is not None and row.jump is not None:
            out[name] = tuple(row.rf)
    return out


def effective_rf(module: nn.Module, input_shape: Sequence[int], layers: Sequence[str],
                 samples: int = 32, seed: int = 0,
                 rf: Mapping[str, Sequence[int] | None] | Analysis | None = None) -> ERFResult:
    """The ERF of the centre unit of each of ``layers`` (names from ``module.named_modules()``)
    for ``samples`` inputs ``x ~ N(0, 1)`` of shape ``(samples, *input_shape)``.

    ``input_shape`` is ``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)``. ``rf`` maps a layer to its
    theoretical receptive field per spatial axis, or is the model's
    :class:`~cnnlab.analysis.analyze.Analysis` (see :func:`rf_of`); it adds ``rf``, ``rf_box``
    and the ratios to a layer's result. The module's own weights are used (random init or
    loaded); it runs in eval mode and its mode is restored afterwards.
    """
    shape = _check_shape(input_shape)
    if rf is not None and not isinstance(rf, Mapping):
        rf = rf_of(rf, layers)
    if samples < 1:
        raise CnnlabError(f"--erf-samples must be >= 1, got {samples}")
    if not layers:
        raise CnnlabError("no layers chosen for the ERF; name them with --erf-layers a,b")
    mods = dict(module.named_modules())
    for name in layers:
        if name not in mods:
            known = [n for n, m in mods.items() if n and not list(m.children())]
            raise CnnlabError(f"--erf-layers: no module {name!r} in {type(module).__name__}; "
                              f"modules: {', '.join(known[:30])}"
                              + (" ..." if len(known) > 30 else ""))
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((samples, *shape), generator=gen, dtype=torch.float64).to(dtype).to(device)
    x.requires_grad_(True)

    outputs: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    handles = [mods[n].register_forward_hook(
        lambda _m, _i, out, n=n: outputs[n].append(out)) for n in dict.fromkeys(layers)]
    modes = [(m, m.training) for m in module.modules()]  # each submodule's own mode
    module.eval()
    try:
        with torch.enable_grad():
            try:
                module(x)
            except (RuntimeError, TypeError, ValueError, IndexError) as e:
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                raise CnnlabError(
                    f"ERF: running {type(module).__name__} on N(0,1) inputs of shape "
                    f"{(samples, *shape)} failed ({type(e).__name__}: {first}); the ERF "
                    "needs a float input of this shape (check --input)") from None
            result = ERFResult(shape, samples, seed)
            for name in layers:
                result.layers.append(_layer_erf(name, outputs[name], x, shape, rf))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return result


def _layer_erf(name: str, outs: list, x: torch.Tensor, shape: tuple[int, ...],
               rf: Mapping[str, Sequence[int] | None] | None) -> LayerERF:
    if len(outs) != 1:
        raise CnnlabError(f"--erf-layers: module {name!r} ran {len(outs)} times in one forward "
                          "pass; choose a module that is called once")
    y = outs[0]
    if not isinstance(y, torch.Tensor) or y.dim() != len(shape) + 1 or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise CnnlabError(f"--erf-layers: {name!r} outputs {got}, not a feature map "
                          f"(N, C, {', '.join('.' * (len(shape) - 1))}); an ERF needs a "
                          "layer that keeps the spatial axes (conv, pool, activation...)")
    if not y.requires_grad:
        raise CnnlabError(f"--erf-layers: the output of {name!r} does not depend on the input")
    centre = tuple((n - 1) // 2 for n in y.shape[2:])
    seed_grad = torch.zeros_like(y)
    seed_grad[(slice(None), slice(None), *centre)] = 1
    (g,) = torch.autograd.grad(y, x, seed_grad, retain_graph=True, allow_unused=True)
    if g is None:
        raise CnnlabError(f"--erf-layers: the output of {name!r} does not depend on the input")
    grad = g.detach().abs().sum(dim=1).mean(dim=0).double().cpu().numpy()
    r = None if rf is None else rf.get(name)
    if r is not None and len(r) != len(shape) - 1:
        raise CnnlabError(f"rf of {name!r} has {len(r)} axes, the input {len(shape) - 1}")
    return measure(name, grad, tuple(y.shape[1:]), centre, r)


# ------------------------------------------------------------------------- the figure


def plot(result: ERFResult, stem: str, formats: Sequence[str] = ("png",),
         title: str = "", labels: Mapping[str, str] | None = None) -> list:
    """Heatmaps of the ERFs of ``result`` (one panel per layer, 3-D inputs: the slice through
    the centre of the field along the first spatial axis; 1-D inputs: a curve), each with the
    theoretical field outlined (solid) and the ERF95 square (dashed). Written with
    :func:`cnnlab.common.plotting.save_figure`; ``labels`` renames layers in the panel
    titles; returns the paths."""
    from matplotlib.patches import Rectangle

    from cnnlab.common.plotting import pyplot, save_figure

    plt = pyplot()
    n = len(result.layers)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, r in zip(axes.ravel(), result.layers, strict=False):
        g = r.grad / r.grad.max() if r.grad.max() > 0 else r.grad
        box = r.rf_box
        where = ""
        if g.ndim == 3:
            k = min(max(int(round(r.centre_at[0])), 0), g.shape[0] - 1)
            g, where = g[k], f" (slice {k})"
            box = box[1:] if box else None
            at = r.centre_at[1:]
        else:
            at = r.centre_at
        half = (r.erf95 - 1) / 2
        if g.ndim == 1:
            ax.plot(np.arange(g.size), g, color="C0")
            if box:
                ax.axvspan(box[0][0] - 0.5, box[0][1] + 0.5, color="C3", alpha=0.12,
                           label=f"RF {r.rf[0]}")
            ax.axvspan(at[0] - half - 0.5, at[0] + half + 0.5, fill=False, ls="--",
                       edgecolor="k", label=f"ERF95 {r.erf95}")
            ax.set_xlabel("input position")
            ax.legend(fontsize=7)
        else:
            im = ax.imshow(g, cmap="viridis", interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            if box:
                (y0, y1), (x0, x1) = box
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1,
                                       fill=False, edgecolor="red", lw=1.2))
            ax.add_patch(Rectangle((at[1] - half - 0.5, at[0] - half - 0.5), r.erf95, r.erf95,
                                   fill=False, edgecolor="white", ls="--", lw=1))
        rf = "x".join(map(str, r.rf)) if r.rf else "?"
        name = (labels or {}).get(r.layer, r.layer)
        ax.set_title(f"{name}: RF {rf}, ERF95 {r.erf95}{where}", fontsize=8)
    fig.suptitle(title or f"effective receptive field, {result.samples} random inputs "
                 f"(seed {result.seed}); red: theoretical RF, dashed: ERF95", fontsize=9)
    fig.tight_layout()
    paths = save_figure(fig, stem, formats=formats, dpi=110)
    plt.close(fig)
    return paths

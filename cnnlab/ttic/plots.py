"""Figures of the TTIC studies (PNG and SVG, matplotlib's Agg backend, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.plotting import pyplot, save_figure


def _save(fig: Any, out_dir: Path, name: str) -> list[Path]:
    return save_figure(fig, out_dir / name, bbox_inches="tight", dpi=120)


def _gamma(g: float) -> str:
    return "1/sqrt2" if abs(g - 2 ** -0.5) < 1e-9 else f"{g:g}"


def plot_bottleneck(res: dict[str, Any], out_dir: Path) -> list[Path]:
    """Variance per layer at init, bottom-block gradient vs depth, first/last block probes."""
    plt = pyplot()
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in res["init"]:
        ax.plot(range(1, len(s["var"]) + 1), s["var"], marker="o",
                label=f"gamma={_gamma(s['gamma'])}, {s['branch']} branch")
    ax.set(xlabel="layer l", ylabel="Var L_l at init", yscale="log",
           title="TTIC 3(b): activation variance by layer")
    ax.legend(fontsize=8)
    paths += _save(fig, out_dir, "bottleneck_variance")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in res["grad_depth"]:
        line, = ax.plot(r["depths"], r["ratios"], marker="o", linestyle="-" if r["mode"] ==
                        "linear" else ":", label=f"gamma={_gamma(r['gamma'])}, {r['mode']}")
        if r["mode"] == "linear":
            ax.plot(r["depths"], [r["gamma"] ** (d - 2) for d in r["depths"]], color="k",
                    linewidth=0.5)
    ax.set(xlabel="depth L", ylabel="bottom-block grad norm / value at L=2", yscale="log",
           title="TTIC 3(c): bottom gradient vs depth (black: gamma^(L-2))")
    ax.legend(fontsize=7)
    paths += _save(fig, out_dir, "bottleneck_grad_depth")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for p in res["train"]:
        label = f"L={p['depth']}, gamma={_gamma(p['gamma'])}"
        ax = axes[0 if p["optimizer"] == "sgd" else 1]
        ax.plot(p["steps"], p["first_update"], label=label)
    for ax, opt in zip(axes, ("sgd", "adam"), strict=True):
        ax.set(xlabel="iteration", ylabel="first block ||dW|| / ||W||", yscale="log",
               title=f"relative update of the bottom block ({opt})")
        ax.legend(fontsize=7)
    paths += _save(fig, out_dir, "bottleneck_first_block_updates")
    plt.close(fig)
    return paths


def plot_pyramid(res: dict[str, Any], out_dir: Path) -> list[Path]:
    """Test accuracy against the test scale, training range shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    lo, hi = res["train_scales"]
    ax.axvspan(lo, hi, color="0.9", label="training scales")
    for name, m in res["models"].items():
        ax.plot(res["scales"], m["acc_per_scale"], marker="o",
                label=f"{name} ({m['params']:,} params)")
    ax.set(xlabel="test scale (digit size / 28 px)", ylabel="test accuracy", xscale="log",
           title="TTIC 4: accuracy per test scale")
    ax.minorticks_off()
    ax.set_xticks(res["scales"], [f"{s:g}" for s in res["scales"]])
    ax.legend(fontsize=8)
    paths = _save(fig, out_dir, "pyramid_accuracy_per_scale")
    plt.close(fig)
    return paths


def plot_clips(x: Any, out_dir: Path, name: str = "moving_mnist_clips", n: int = 3) -> list[Path]:
    """The first ``n`` clips ``(N, 1, T, H, W)``, one row per clip."""
    plt = pyplot()
    frames = x.shape[2]
    fig, axes = plt.subplots(n, frames, figsize=(1.2 * frames, 1.3 * n))
    for i in range(n):
        for t in range(frames):
            axes[i, t].imshow(x[i, 0, t].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            axes[i, t].axis("off")
    paths = _save(fig, out_dir, name)
    plt.close(fig)
    return paths

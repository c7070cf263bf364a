"""TTIC 31230 CNN problems: the models of the three TTIC systems (a :mod:`cnnlab.models.zoo`
plugin).

Kept free of torch at import time so ``cnnlab analyze`` stays fast; the datasets register from
:mod:`cnnlab.ttic`. See docs/ttic.md.
"""

from __future__ import annotations

from cnnlab.models import zoo as models
from cnnlab.models.zoo import ModelDef, int_tuple

PYRAMID_WIDTHS = (16, 32, 64)
PLAIN_BASE = (16, 32, 64, 64, 64)


def _widths(value: object) -> tuple[int, ...]:
    n = len(value.split("x")) if isinstance(value, str) else (
        1 if isinstance(value, int) else len(value))  # type: ignore[arg-type]
    return int_tuple(value, n, "widths")


@models.register("video3d")
def video3d(frames: int = 8, size: int = 64, widths: object = (8, 16, 32, 64),
            classes: int = 10) -> ModelDef:
    """TTIC Problem 2: 3D convolutions with stride 2 in space and time, then fc.

    Input ``(1, frames, size, size)``; ``classes=8`` for ``moving-mnist-direction``.
    """
    from cnnlab.ttic.video3d import video3d_spec

    return ModelDef("video3d", video3d_spec(_widths(widths), classes), (1, frames, size, size),
                    "TTIC P2 video 3D CNN")


@models.register("bottleneck-mlp")
def bottleneck_mlp(depth: int = 8, width: int = 256, bottleneck: int = 64,
                   gamma: float = 1.0, classes: int = 10) -> ModelDef:
    """TTIC Problem 3: ``fcN res(gamma=G){fcNb relu fcN relu}*(L-1) fc10``, L layers
    counting the input layer."""
    from cnnlab.ttic.bottleneck import bottleneck_spec

    if depth < 2:
        from cnnlab.common.errors import CnnlabError

        raise CnnlabError(f"bottleneck-mlp needs depth >= 2 (one residual block), got {depth}")
    return ModelDef("bottleneck-mlp", bottleneck_spec(depth, width, bottleneck, float(gamma),
                                                      classes),
                    (1, 28, 28), "TTIC P3 bottleneck residual MLP")


@models.register("pyramid")
def pyramid(widths: object = PYRAMID_WIDTHS, classes: int = 10, kernel: int = 3,
            scale_pool: str = "max") -> ModelDef:
    """TTIC Problem 4: the scale-invariant pyramid CNN (weights shared across scales)."""
    w = _widths(widths)

    def factory(shape: tuple[int, ...]):
        from cnnlab.ttic.pyramid import PyramidCNN

        return PyramidCNN(shape[0], w, classes, kernel, scale_pool)

    return ModelDef("pyramid", "", (1, 64, 64), "TTIC P4 scale-invariant pyramid CNN",
                    factory=factory)


@models.register("plain-cnn")
def plain_cnn(widths: object = None, classes: int = 10) -> ModelDef:
    """Problem 4's baseline: stride-2 convs, global max pool, fc. Default widths match the
    default ``pyramid``'s parameter count."""
    from cnnlab.ttic.pyramid import matched_plain_widths, plain_cnn_spec, pyramid_params

    w = (_widths(widths) if widths is not None else
         matched_plain_widths(pyramid_params(1, PYRAMID_WIDTHS, classes), PLAIN_BASE, 1, classes))
    return ModelDef("plain-cnn", plain_cnn_spec(w, classes), (1, 64, 64),
                    "plain CNN baseline for the pyramid")

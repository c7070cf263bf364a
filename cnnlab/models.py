"""Named models: the sheets' architectures as spec strings (the IR is built by the parser).

``get(name)`` returns a :class:`ModelDef`; anything that is not a name is treated as a spec
string by :func:`resolve`. Options (``batch_norm``, ``keep_prob``...) are keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ir, spec
from .errors import CnnlabError


@dataclass(frozen=True)
class ModelDef:
    name: str
    spec: str
    input_shape: tuple[int, ...]
    description: str = ""

    def graph(self) -> ir.Graph:
        return spec.parse(self.spec)


REGISTRY: dict[str, Callable[..., ModelDef]] = {}


def register(name: str) -> Callable[[Callable[..., ModelDef]], Callable[..., ModelDef]]:
    def deco(fn: Callable[..., ModelDef]) -> Callable[..., ModelDef]:
        REGISTRY[name] = fn
        return fn

    return deco


@register("baseline")
def baseline() -> ModelDef:
    """HUJI 67103 Assignment 1, 1.1: Keras defaults, so 'valid' padding and stride 1."""
    return ModelDef("baseline",
                    "conv5x5x32 relu maxpool2 conv5x5x64 relu maxpool2 fc1024 relu fc10",
                    (1, 28, 28), "HUJI 1.1 baseline (valid padding)")


@register("baseline-same")
def baseline_same() -> ModelDef:
    """The HUJI baseline with 'same' padding (as in the TF tutorial)."""
    return ModelDef("baseline-same",
                    "conv5x5x32(padding=same) relu maxpool2 conv5x5x64(padding=same) relu "
                    "maxpool2 fc1024 relu fc10", (1, 28, 28), "HUJI 1.1 with same padding")


@register("sheet3-1c")
def sheet3_1c() -> ModelDef:
    """Problem sheet 3, 1(c): the LeNet-like table (conv/pool/conv/pool/conv/conv/loss)."""
    return ModelDef("sheet3-1c",
                    "conv5x5x20 maxpool2 conv5x5x50 maxpool2 conv4x4x500 conv1x1x10 softmax",
                    (1, 28, 28), "Problem sheet 3 1(c)")


@register("vgg16")
def vgg16() -> ModelDef:
    """VGG-16 (configuration D), 3x224x224."""
    c = "conv3x3x{}(padding=1) relu"
    blocks = []
    for width, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        blocks += [c.format(width)] * n + ["maxpool2"]
    head = "fc4096 relu dropout0.5 fc4096 relu dropout0.5 fc1000"
    return ModelDef("vgg16", " ".join(blocks) + " " + head, (3, 224, 224), "VGG-16 (D)")


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, **options: object) -> ModelDef:
    if name not in REGISTRY:
        raise CnnlabError(f"unknown model {name!r}; known: {', '.join(names())}, "
                          "or give a spec string such as 'conv5x5x32 relu maxpool2 fc10'")
    try:
        return REGISTRY[name](**options)
    except TypeError as e:
        raise CnnlabError(f"model {name!r}: {e}") from None


def resolve(name_or_spec: str, **options: object) -> ModelDef:
    """A registered name, or else a spec string (parsed to check it)."""
    if name_or_spec in REGISTRY:
        return get(name_or_spec, **options)
    spec.parse(name_or_spec)
    return ModelDef("custom", name_or_spec, (), "")

"""Named models: the sheets' architectures as spec strings (the IR is built by the parser).

``get(name)`` returns a :class:`ModelDef`; anything that is not a name is treated as a spec
string by :func:`resolve`. Options (``batch_norm``, ``keep_prob``...) are keyword arguments.
A model that a spec cannot express (weight sharing across branches) gives a ``factory``
instead: ``factory(input_shape) -> nn.Module``. Plugin modules (entry-point group
``cnnlab.models``, see :mod:`cnnlab.common.plugins`) are imported on first lookup so they can
register their own models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.common.errors import CnnlabError, SpecError
from cnnlab.common.plugins import load_plugins, plugin_modules
from cnnlab.ir import graph as ir
from cnnlab.ir import spec

if TYPE_CHECKING:
    from torch import nn

PLUGIN_GROUP = "cnnlab.models"  # entry-point group of model plugins (cnnlab.common.plugins)


@dataclass(frozen=True)
class ModelDef:
    name: str
    spec: str
    input_shape: tuple[int, ...]
    description: str = ""
    factory: Callable[[tuple[int, ...]], nn.Module] | None = None
    ir_graph: ir.Graph | None = None  # a model read from a TOML/JSON layer list

    def graph(self) -> ir.Graph:
        if self.ir_graph is not None:
            return self.ir_graph
        if not self.spec:
            raise CnnlabError(f"model {self.name!r} is built by code and has no spec/IR graph")
        return spec.parse(self.spec)

    def to_graph(self, input_shape: tuple[int, ...] | None = None) -> ir.Graph:
        """The IR: parsed from the spec, or traced by torch.fx from the factory's module."""
        if self.factory is None:
            return self.graph()
        from cnnlab.ir.fximport import from_module

        shape = tuple(input_shape or self.input_shape)
        return from_module(self.build(shape), shape)

    def build(self, input_shape: tuple[int, ...] | None = None,
              seed: int | None = None) -> nn.Module:
        """The ``nn.Module`` for inputs of ``input_shape`` (default: the model's own)."""
        shape = tuple(input_shape or self.input_shape)
        if not shape:
            raise CnnlabError(f"model {self.name!r}: give an input shape such as 1x28x28")
        if self.factory is not None:
            import torch

            if seed is not None:
                torch.manual_seed(seed)
            return self.factory(shape)
        from cnnlab.models.build import build

        return build(self.graph(), shape, seed)


REGISTRY: dict[str, Callable[..., ModelDef]] = {}


def register(name: str) -> Callable[[Callable[..., ModelDef]], Callable[..., ModelDef]]:
    def deco(fn: Callable[..., ModelDef]) -> Callable[..., ModelDef]:
        REGISTRY[name] = fn
        return fn

    return deco


def int_tuple(value: object, n: int, what: str) -> tuple[int, ...]:
    """Widths given as a tuple/list, ``"16x32x128"`` or a single int."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, str):
        value = tuple(value.split("x"))
    try:
        out = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise CnnlabError(f"{what} must be {n} integers like 32x64x1024, got {value!r}") from None
    if len(out) != n or min(out) < 1:
        raise CnnlabError(f"{what} must be {n} positive integers like 32x64x1024, got {value!r}")
    return out


def _keep(keep_prob: float) -> str:
    if not 0.0 < keep_prob <= 1.0:
        raise CnnlabError(f"keep_prob must be in (0, 1], got {keep_prob}")
    return "" if keep_prob == 1.0 else f" dropout(keep={keep_prob:g})"


def _two_conv(widths: tuple[int, ...], kernels: tuple[int, int], padding: str,
              batch_norm: bool, keep_prob: float, classes: int, act: str = "relu",
              pool: str = "maxpool2", hidden_dropout: bool = True,
              pool2: str | None = None) -> str:
    pad = "" if padding == "valid" else f"(padding={padding})"
    pool2 = pool if pool2 is None else pool2
    bn = " bn" if batch_norm else ""
    act_ = f" {act}" if act else ""
    drop = _keep(keep_prob)
    conv_drop = drop if hidden_dropout else ""
    c1, c2, fc = widths
    k1, k2 = kernels
    return (f"conv{k1}x{k1}x{c1}{pad}{bn}{act_} {pool}{conv_drop} "
            f"conv{k2}x{k2}x{c2}{pad}{bn}{act_} {pool2}{conv_drop} "
            f"fc{fc}{act_}{drop} fc{classes}")


@register("baseline")
def baseline(keep_prob: float = 1.0, widths: object = (32, 64, 1024),
             batch_norm: bool = False, kernels: object = (5, 5), pools: object = (2, 2),
             padding: str = "valid", act: str = "relu", pool_type: str = "max") -> ModelDef:
    """HUJI 67103 Assignment 1, 1.1: Keras defaults, so 'valid' padding and stride 1.

    ``widths`` (conv1, conv2, fc) shrinks it for HUJI 3.2/4.1; ``keep_prob < 1`` puts dropout
    on "the outputs of all the hidden layers" (HUJI 4.1). HUJI 3.2's search frees every size
    of the same layer sequence: ``kernels`` (k1, k2), ``pools`` (p1, p2; 1 = no pooling),
    ``padding`` (valid/same), ``act`` (an activation name) and ``pool_type`` (max/avg).
    """
    w = int_tuple(widths, 3, "widths")
    k = int_tuple(kernels, 2, "kernels")
    p = int_tuple(pools, 2, "pools")
    pl = [_pool(pool_type, size) for size in p]
    return ModelDef("baseline", _two_conv(w, (k[0], k[1]), padding, batch_norm, keep_prob, 10,
                                          act=_act(act), pool=pl[0], pool2=pl[1]),
                    (1, 28, 28), "HUJI 1.1 baseline (valid padding)")


@register("baseline-same")
def baseline_same() -> ModelDef:
    """The HUJI baseline with 'same' padding (as in the TF tutorial)."""
    return ModelDef("baseline-same",
                    "conv5x5x32(padding=same) relu maxpool2 conv5x5x64(padding=same) relu "
                    "maxpool2 fc1024 relu fc10", (1, 28, 28), "HUJI 1.1 with same padding")


@register("tf-tutorial")
def tf_tutorial(keep_prob: float = 0.6, batch_norm: bool = False) -> ModelDef:
    """The TF 'cnn_mnist' estimator tutorial the ETH sheet follows: 'same' padding and
    dropout rate 0.4 (keep 0.6) on the dense layer only.
    """
    return ModelDef("tf-tutorial", _two_conv((32, 64, 1024), (5, 5), "same", batch_norm,
                                             keep_prob, 10, hidden_dropout=False),
                    (1, 28, 28), "TF MNIST tutorial CNN (same padding, dropout 0.4)")


@register("linear")
def linear(widths: object = (32, 64, 1024)) -> ModelDef:
    """HUJI 2.1: the baseline with its non-linearities removed and max-pooling replaced by a
    uniform-stride average (a linear map), so the whole network is one linear function.
    """
    w = int_tuple(widths, 3, "widths")
    return ModelDef("linear", _two_conv(w, (5, 5), "valid", False, 1.0, 10, act="",
                                        pool="avgpool2"),
                    (1, 28, 28), "HUJI 2.1 linear baseline")


@register("shallow")
def shallow(filters: int = 8, kernel: int = 5, pool: int = 2, stride: int = 1,
            keep_prob: float = 1.0, padding: str = "valid", act: str = "relu",
            pool_type: str = "max") -> ModelDef:
    """HUJI 3.1: one convolution and one fully connected layer; pooling adds no parameters
    but shrinks the FC layer, which holds most of them. ``padding`` (valid/same), ``act``
    (an activation name) and ``pool_type`` (max/avg) are free for HUJI 3.1's search.
    """
    pool_ = f" {_pool(pool_type, pool)}" if pool > 1 else ""
    conv_opts = ([f"stride={stride}"] if stride != 1 else []) + (
        [f"padding={padding}"] if padding != "valid" else [])
    opts_ = f"({','.join(conv_opts)})" if conv_opts else ""
    return ModelDef("shallow", f"conv{kernel}x{kernel}x{filters}{opts_} {_act(act)}{pool_}"
                    f"{_keep(keep_prob)} fc10", (1, 28, 28), "HUJI 3.1 shallow CNN")


def _pool(kind: str, size: int) -> str:
    """A pooling token (``maxpool3``, ``avgpool2``); size 1 is no pooling (empty string)."""
    if kind not in ("max", "avg"):
        raise CnnlabError(f"pool_type must be max or avg, got {kind!r}")
    if size < 1:
        raise CnnlabError(f"pool size must be >= 1, got {size}")
    return f"{kind}pool{size}" if size > 1 else ""


def _act(name: str) -> str:
    if name not in ir.ACTIVATIONS:
        raise CnnlabError(f"act must be one of {', '.join(ir.ACTIVATIONS)}, got {name!r}")
    return name


@register("eth")
def eth(conv2: bool = False, k1: int = 5, k2: int = 5, filters1: int = 32, filters2: int = 64,
        fc: int = 1024, batch_norm: bool = False, keep_prob: float = 1.0) -> ModelDef:
    """ETH Problem 4's skeleton: conv, relu, max-pool, fc, relu, fc (softmax in the loss).

    ``conv2`` adds the second conv/relu/max-pool; ``batch_norm`` goes after the convolutions
    (before their relu); ``keep_prob`` is dropout on the fully connected layer.
    """
    bn = " bn" if batch_norm else ""
    body = f"conv{k1}x{k1}x{filters1}(padding=same){bn} relu maxpool2"
    if conv2:
        body += f" conv{k2}x{k2}x{filters2}(padding=same){bn} relu maxpool2"
    return ModelDef("eth", f"{body} fc{fc} relu{_keep(keep_prob)} fc10", (1, 28, 28),
                    "ETH Problem 4 CNN")


@register("pairs-sum")
def pairs_sum(keep_prob: float = 1.0, batch_norm: bool = False,
              widths: object = (32, 64, 1024)) -> ModelDef:
    """HUJI 5.1: the baseline on two digits side by side (1x28x56), 19 classes (sums 0..18)."""
    w = int_tuple(widths, 3, "widths")
    return ModelDef("pairs-sum", _two_conv(w, (5, 5), "valid", batch_norm, keep_prob, 19),
                    (1, 28, 56), "HUJI 5.1 two-digit sum")


@register("pairs-digits")
def pairs_digits(keep_prob: float = 1.0, batch_norm: bool = False,
                 widths: object = (32, 64, 1024)) -> ModelDef:
    """HUJI 5.2: same body, 20 logits read as two 10-way heads (one per digit)."""
    w = int_tuple(widths, 3, "widths")
    return ModelDef("pairs-digits", _two_conv(w, (5, 5), "valid", batch_norm, keep_prob, 20),
                    (1, 28, 56), "HUJI 5.2 two digits, two heads")


@register("fast")
def fast(widths: object = (16, 32, 128), keep_prob: float = 1.0) -> ModelDef:
    """The fastest model found for the time-to-99% benchmark on a 2-core CPU (see
    docs/training.md): the baseline's shape, narrower, with batch norm after each conv.
    """
    c1, c2, fc = int_tuple(widths, 3, "widths")
    return ModelDef("fast", f"conv5x5x{c1} bn relu maxpool2 conv5x5x{c2} bn relu maxpool2 "
                    f"fc{fc} relu{_keep(keep_prob)} fc10", (1, 28, 28),
                    "small BN CNN for fast MNIST training")


@register("fast2")
def fast2(widths: object = (16, 32, 256), keep_prob: float = 1.0) -> ModelDef:
    """The time-to-99% model since round 2 (docs/training.md): ``fast`` made cheaper per image
    on a CPU. The first conv has stride 2 instead of a max-pool (a quarter of the work, no
    pool), the second pools before its batch norm and relu (they touch a quarter of the
    values), and neither conv has a bias (the batch norm after it has one).
    """
    c1, c2, fc = int_tuple(widths, 3, "widths")
    return ModelDef("fast2", f"conv5x5x{c1}(stride=2,bias=false) bn relu "
                    f"conv5x5x{c2}(bias=false) maxpool2 bn relu "
                    f"fc{fc} relu{_keep(keep_prob)} fc10", (1, 28, 28),
                    "strided small BN CNN for fast MNIST training on a CPU")


@register("fast3")
def fast3(widths: object = (16, 32, 256), keep_prob: float = 1.0) -> ModelDef:
    """The fixed-schedule speed model since round 3 (docs/training.md, bench/
    bench_fixed_schedule.py): ``fast2`` with a 3x3 second conv (about half its MACs) that pools
    after its batch norm, trained at batch 256 where per-step overhead, not FLOPs, sets the pace.
    """
    c1, c2, fc = int_tuple(widths, 3, "widths")
    return ModelDef("fast3", f"conv5x5x{c1}(stride=2,bias=false) bn relu "
                    f"conv3x3x{c2}(bias=false) maxpool2 bn relu "
                    f"fc{fc} relu{_keep(keep_prob)} fc10", (1, 28, 28),
                    "strided 5x5 + 3x3 BN CNN, the fixed-schedule speed model")


@register("fast4")
def fast4(widths: object = (16, 32, 256), keep_prob: float = 1.0) -> ModelDef:
    """``fast3`` without its first batch norm (the first conv gets its bias back): that norm
    touched the largest activation of the step (16x12x12 per image) forward and backward,
    and the one after the second conv is enough to train at Adam 3e-2 (docs/training.md).
    """
    c1, c2, fc = int_tuple(widths, 3, "widths")
    return ModelDef("fast4", f"conv5x5x{c1}(stride=2) relu "
                    f"conv3x3x{c2}(bias=false) maxpool2 bn relu "
                    f"fc{fc} relu{_keep(keep_prob)} fc10", (1, 28, 28),
                    "strided 5x5 + 3x3 CNN with one BN, the fixed-schedule speed model")


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


_plugins_loaded = False


def _ensure_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    load_plugins(plugin_modules(PLUGIN_GROUP))


def known(name: str) -> bool:
    """Is ``name`` a registered model (plugins included)?"""
    _ensure_plugins()
    return name in REGISTRY


def names() -> list[str]:
    _ensure_plugins()
    return sorted(REGISTRY)


def get(name: str, **options: object) -> ModelDef:
    _ensure_plugins()
    if name not in REGISTRY:
        raise CnnlabError(f"unknown model {name!r}; known: {', '.join(names())}, "
                          "or give a spec string such as 'conv5x5x32 relu maxpool2 fc10'")
    try:
        return REGISTRY[name](**options)
    except TypeError as e:
        raise CnnlabError(f"model {name!r}: {e}") from None


def _is_file(text: str) -> bool:
    """Whether ``source`` names an architecture file: it ends in .toml/.json, or it looks like
    a path (a separator, ``~`` or ``.`` first, no spaces, parentheses or newlines, at most 4096
    characters) and that file exists. A spec string is never tried as a file name."""
    text = text.strip()
    if text.endswith((".toml", ".json")):
        return True
    looks = ("/" in text or "\\" in text or text.startswith(("~", "."))) and len(text) <= 4096 \
        and not any(c in text for c in " \t\n(),=")
    if not looks:
        return False
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError):
        return False


def resolve(source: str, **options: object) -> ModelDef:
    """The one model resolver: a registered name, a ``.toml``/``.json`` architecture file, or
    else a spec string (parsed to check it). Used by the trainer, ``cnnlab.analyze`` and the CLI.
    """
    _ensure_plugins()
    if source in REGISTRY:
        return get(source, **options)
    if options:
        raise CnnlabError(f"model options {', '.join(sorted(options))} apply to named models; "
                          "write dropout/bn layers into the spec string instead")
    if _is_file(source):
        from cnnlab.ir.specfile import load

        graph, shape, name = load(source)
        return ModelDef(name, "", tuple(shape or ()), f"from {source}", ir_graph=graph)
    try:
        spec.parse(source)
    except SpecError as e:
        word = source.strip()
        kind = re.match(r"[A-Za-z_]+", word)
        layer = kind is not None and (kind.group().lower() in spec.ALIASES or any(
            kind.group().lower().startswith(a) for a in spec.ALIASES if len(a) > 2))
        if " " not in word and not layer:
            # one word that is neither a model nor a layer: most likely a mistyped model name
            raise CnnlabError(f"unknown model {source!r}; known models: "
                              f"{', '.join(names())}; or a spec string ({e})") from None
        if " " not in word:  # a layer with a mistake ('fc10*²'): the spec's reason first
            raise CnnlabError(f"{e} (and {word!r} is not a model name)") from None
        raise
    return ModelDef("custom", source, (), "")

"""Layers of the spec language: a type name and keyword arguments -> one checked IR op.

:func:`make_op` is shared by the spec parser (:mod:`cnnlab.ir.spec`) and the TOML/JSON reader
(:mod:`cnnlab.ir.specfile`): the aliases of layer and argument names, the limits a network
must stay within (:data:`MAX_LAYERS`, :data:`MAX_SIZE`...), and one clear
:class:`~cnnlab.common.errors.SpecError` for every bad value.
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.common.errors import SpecError
from cnnlab.ir import graph as ir

ALIASES = {
    "conv": "conv", "convolution": "conv",
    "maxpool": "maxpool", "pool": "maxpool", "mp": "maxpool", "avgpool": "avgpool",
    "gap": "gap", "globalavgpool": "gap", "gmp": "gmp", "globalmaxpool": "gmp",
    "fc": "fc", "linear": "fc", "dense": "fc",
    "bn": "bn", "batchnorm": "bn",
    "dropout": "dropout", "drop": "dropout",
    "flatten": "flatten", "softmax": "softmax", "scale": "scale",
    **{a: a for a in ir.ACTIVATIONS},
}
BLOCKS = ("res", "add", "cat")

# Bounds that keep parsing and analysis arithmetic (time and memory bounded for any input);
# each is far above any network the sheets or the zoo describe. Going past one is a SpecError.
MAX_LAYERS = 10_000  # layers after expanding '*N' repeats
MAX_DEPTH = 50  # nested res/add/cat blocks
MAX_SIZE = 65_536  # kernel, stride, dilation and padding, per axis
MAX_UNITS = 1 << 20  # filters / fc units / groups
MAX_SPEC_CHARS = 1_000_000
# keyword aliases accepted in (...) and in TOML
KEY_ALIASES = {
    "s": "stride", "pad": "padding", "d": "dilation", "g": "groups",
    "filters": "out", "out_channels": "out", "units": "out", "out_features": "out",
    "k": "kernel", "size": "kernel",
}
LAYER_KEYS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "out", "stride", "padding", "dilation", "groups", "bias"),
    "maxpool": ("kernel", "stride", "padding"),
    "avgpool": ("kernel", "stride", "padding"),
    "gap": (), "gmp": (), "flatten": (), "softmax": (),
    "fc": ("out", "bias"),
    "bn": ("eps", "momentum"),
    "dropout": ("p", "keep"),
    "scale": ("factor",),
    **{a: () for a in ir.ACTIVATIONS},
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _range_word(key: str, v: Any, low: int, high: int) -> str:
    if _is_int(v) and v > high:
        return f"{key} must be at most {high} (cnnlab's size limit), got {v}"
    word = "a positive integer" if low == 1 else f"an integer >= {low}"
    return f"{key} must be {word}, got {v!r}"


def _axes(value: Any, key: str, where: str, token: str | None, low: int = 1) -> ir.Axes:
    """One size per axis (or one for all), each in ``[low, MAX_SIZE]``."""
    vals = (value,) if _is_int(value) else value
    if (isinstance(vals, list | tuple) and vals and all(_is_int(v) for v in vals)
            and len(vals) <= 8):
        bad = [v for v in vals if not low <= v <= MAX_SIZE]
        if not bad:
            return tuple(vals)
        raise SpecError(_range_word(key, bad[0], low, MAX_SIZE), None, token)
    raise SpecError(f"{key} must be an integer or one per axis like 2x2, got {value!r}",
                    None, token)


def check_number(value: Any, key: str, token: str | None, low: float = -math.inf,
            high: float = math.inf, open_low: bool = False, open_high: bool = False) -> float:
    """A finite real number in the given range, or a SpecError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{key} must be a number, got {value!r}", None, token)
    v = float(value)
    if not math.isfinite(v) or v < low or v > high or (open_low and v == low) or (
            open_high and v == high):
        lb, hb = "(" if open_low else "[", ")" if open_high else "]"
        raise SpecError(f"{key} must be a finite number in {lb}{low:g}, {high:g}{hb}, "
                        f"got {value!r}", None, token)
    return v


def _bool(value: Any, key: str, token: str | None) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{key} must be true or false, got {value!r}", None, token)
    return value


def _padding(value: Any, token: str | None) -> ir.Padding:
    if isinstance(value, str):
        if value in ("valid", "same", "full"):
            return value
        raise SpecError(f"padding must be valid, same, full or integers, got {value!r}", None,
                        token)
    def amount(v: Any) -> int:
        if not _is_int(v) or not 0 <= v <= MAX_SIZE:
            raise SpecError(_range_word("padding", v, 0, MAX_SIZE), None, token)
        return v

    if _is_int(value):
        return ((amount(value), amount(value)),)
    if isinstance(value, list | tuple) and 0 < len(value) <= 8:
        out = []
        for v in value:
            if _is_int(v):
                out.append((amount(v), amount(v)))
            elif isinstance(v, list | tuple) and len(v) == 2:
                out.append((amount(v[0]), amount(v[1])))
            else:
                raise SpecError(f"bad padding entry {v!r}; use an int or [low, high]", None,
                                token)
        return tuple(out)
    raise SpecError(f"bad padding {value!r}; use valid, same, full or integers", None, token)


def make_op(kind: str, args: dict[str, Any], token: str | None = None) -> ir.Op:
    """Build one IR op from a layer type and its keyword arguments (already typed)."""
    if kind not in ALIASES:
        raise SpecError(f"unknown layer type {kind!r}; known: {', '.join(sorted(ALIASES))}",
                        None, token)
    kind = ALIASES[kind]
    args = {KEY_ALIASES.get(k, k): v for k, v in args.items()}
    allowed = LAYER_KEYS[kind]
    bad = sorted(set(args) - set(allowed))
    if bad:
        raise SpecError(f"{kind} does not take {', '.join(bad)}; it takes "
                        f"{', '.join(allowed) or 'no arguments'}", None, token)

    def need(key: str) -> Any:
        if key not in args:
            raise SpecError(f"{kind} needs {key} (e.g. conv5x5x32, maxpool2, fc10)", None, token)
        return args[key]

    def pos_int(key: str, v: Any, high: int = MAX_UNITS) -> int:
        if not _is_int(v) or not 1 <= v <= high:
            raise SpecError(_range_word(key, v, 1, high), None, token)
        return v

    if kind == "conv":
        kernel = _axes(need("kernel"), "kernel", "", token)
        return ir.Conv(
            out_channels=pos_int("filters", need("out")),
            kernel=kernel,
            stride=_axes(args.get("stride", 1), "stride", "", token),
            padding=_padding(args.get("padding", "valid"), token),
            dilation=_axes(args.get("dilation", 1), "dilation", "", token),
            groups=pos_int("groups", args.get("groups", 1)),
            bias=_bool(args.get("bias", True), "bias", token),
        )
    if kind in ("maxpool", "avgpool"):
        kernel = _axes(need("kernel"), "kernel", "", token)
        stride = args.get("stride")
        return ir.Pool(
            op="max" if kind == "maxpool" else "avg",
            kernel=kernel,
            stride=_axes(stride, "stride", "", token) if stride is not None else None,
            padding=_padding(args.get("padding", "valid"), token),
        )
    if kind in ("gap", "gmp"):
        return ir.GlobalPool("avg" if kind == "gap" else "max")
    if kind == "fc":
        return ir.Linear(pos_int("units", need("out")),
                         bias=_bool(args.get("bias", True), "bias", token))
    if kind == "bn":
        return ir.BatchNorm(
            eps=check_number(args.get("eps", 1e-5), "eps", token, 0, 1, True),
            momentum=check_number(args.get("momentum", 0.1), "momentum", token, 0, 1))
    if kind == "dropout":
        if "keep" in args:
            p = 1.0 - check_number(args["keep"], "keep", token)
        else:
            p = check_number(args.get("p", 0.5), "p", token)
        if not 0.0 <= p < 1.0:
            raise SpecError(f"dropout probability must be in [0, 1), got {p}", None, token)
        return ir.Dropout(p)
    if kind == "scale":
        return ir.Scale(check_number(need("factor"), "factor", token))
    if kind == "flatten":
        return ir.Flatten()
    if kind == "softmax":
        return ir.Softmax()
    return ir.Act(kind)

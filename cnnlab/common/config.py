"""Typed dataclass configs <-> CLI flags, dicts and TOML, strictly: unknown keys, wrong types
(``lr = "1e-3"``, ``epochs = [1, 2]``, ``batch_norm = "no"``) and non-finite numbers are errors.

Every configurable thing in cnnlab (training, experiments) is a dataclass. ``add_arguments``
generates ``--flag`` options from its fields (``keep_prob`` -> ``--keep-prob``), ``from_args``
builds the instance back, ``from_dict`` validates keys from a TOML/JSON file, and ``to_dict``
gives the resolved config that is saved next to every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from cnnlab.common.errors import CnnlabError

T = TypeVar("T")

#: Field metadata key of a numeric field's domain ``(low, high, low open?, high open?)``:
#: :func:`from_dict` (and so every flag, config file and recipe) checks it. Every ``int`` and
#: ``float`` field of a config dataclass has one (``tests/test_robust_inputs.py`` checks).
RANGE = "range"


def check_range(key: str, v: float, bounds: tuple, where: str = "flags") -> None:
    """``v`` inside ``bounds`` = ``(low, high, low_open, high_open)``, finite; else one error
    naming the key as a flag (``where="flags"``) or as ``where: key 'name'``."""
    lo, hi, lo_open, hi_open = (tuple(bounds) + (False, False))[:4]
    if isinstance(v, float) and not math.isfinite(v) or v < lo or v > hi or (
            lo_open and v == lo) or (hi_open and v == hi):
        lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise CnnlabError(f"{_key(key, where)} must be in {lb}{_num(lo)}, {_num(hi)}{hb}, "
                          f"got {v!r}")


def _key(key: str, where: str) -> str:
    """How an error names a key: ``--lr`` (flags), ``--augment: shift``, ``file: key 'lr'``."""
    if where == "flags":
        return f"--{key.replace('_', '-')}"
    return f"{where}: {key}" if where.startswith("--") else f"{where}: key {key!r}"


def _num(x: float) -> str:
    """``1000000`` -> ``1,000,000``; ``2**62`` -> ``2^62``; floats as ``%g``."""
    if isinstance(x, int):
        return f"2^{x.bit_length() - 1}" if x > 10**12 and x & (x - 1) == 0 else f"{x:,}"
    return f"{x:g}"


def check_ranges(obj: Any, where: str = "flags") -> None:
    """Every field of the dataclass instance ``obj`` that declares a :data:`RANGE`."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if RANGE in f.metadata and v is not None:
            check_range(f.name, v, f.metadata[RANGE], where)


def _base_type(tp: Any) -> tuple[type, bool]:
    """(scalar type, optional?) for a field annotation such as ``float | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])[0], True
    if origin is typing.Literal:
        return type(typing.get_args(tp)[0]), False
    return tp, False


def _choices(tp: Any) -> tuple | None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            c = _choices(a)
            if c:
                return c
    if origin is typing.Literal:
        return typing.get_args(tp)
    return None


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(text)
    return v


_finite_float.__name__ = "float"  # argparse names the type in its message: "invalid float"


def _none_or(conv):
    def parse(text: str):
        if text.strip().lower() in ("none", "null"):
            return None
        return conv(text)

    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--field-name`` option per dataclass field; help comes from field metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        tp, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if tp is bool and not optional:
            kw.update(action=argparse.BooleanOptionalAction)
        else:
            conv = {int: int, float: _finite_float, str: str, bool: _parse_bool}.get(tp, str)
            kw["type"] = _none_or(conv) if optional else conv
            choices = _choices(hints[f.name])
            if choices:
                kw["choices"] = list(choices) + ([None] if optional else [])
            kw["metavar"] = tp.__name__.upper() if not choices else None
        # argparse %-formats help strings: a literal '%' (e.g. "99%") must be doubled
        text = f"{help_} (default: {default})".strip().replace("%", "%%")
        parser.add_argument(flag, help=text, **kw)


def _type_word(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_word(args[0]) if args else 'values'}"
    return {bool: "true or false (no quotes)", int: "an integer", float: "a number",
            str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def check_value(tp: Any, v: Any) -> Any:
    """``v`` as the field type ``tp`` demands, strictly: a bool only from a bool, an int only
    from an int (not a bool, not 8.0, not "8"), a float from any finite number, a str from a
    str, a list from a list of such; raises ValueError with the reason otherwise."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(v, list | tuple):
            raise ValueError(f"expected {_type_word(tp)}")
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        out = [check_value(inner[0], x) for x in v] if inner else list(v)
        return out if origin is list else tuple(out)
    if tp is bool:
        if not isinstance(v, bool):
            raise ValueError("expected true or false (without quotes)")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("expected an integer (without quotes)")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("expected a number (without quotes)")
        try:
            v = float(v)
        except OverflowError:  # an int past 1e308
            raise ValueError("expected a finite number") from None
        if not math.isfinite(v):
            raise ValueError("expected a finite number")
        return v
    if tp is str:
        if not isinstance(v, str):
            raise ValueError("expected a string (in quotes)")
        if "\0" in v:
            raise ValueError("contains a NUL byte")
        return v
    return v


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a mapping, strictly typed (:func:`check_value`); unknown keys,
    wrong types and values outside a ``Literal``'s choices are errors naming the key."""
    if not isinstance(data, dict):
        raise CnnlabError(f"{where}: expected a table of keys, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - names)
    if unknown:
        raise CnnlabError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    clean: dict[str, Any] = {}
    for k, v in data.items():
        full = hints[k]
        tp, optional = _base_type(full)
        if typing.get_origin(full) in (list, tuple):
            tp = full
        if v is None and optional:
            clean[k] = None
            continue
        try:
            v = check_value(tp, v)
        except ValueError as e:
            shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
            raise CnnlabError(f"{_key(k, where)} {shown} is not {_type_word(tp)} ({e})"
                              ) from None
        bounds = fields[k].metadata.get(RANGE)
        if bounds is not None and isinstance(v, int | float):
            check_range(k, v, bounds, where)
        choices = _choices(full)
        if choices and v not in choices:
            raise CnnlabError(f"{where}: key {k!r}: {v!r} is not one of "
                              f"{', '.join(map(str, choices))}")
        clean[k] = v
    return cls(**clean)


def from_args(cls: type[T], args: argparse.Namespace, base: T | None = None) -> T:
    """Overlay the flags the user actually gave onto ``base`` (or the defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    start = dataclasses.asdict(base) if base is not None else {}
    start.update(given)
    return from_dict(cls, start, where="flags")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)

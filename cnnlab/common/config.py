"""Typed dataclass configs <-> CLI flags, dicts and TOML, with unknown keys as errors.

Every configurable thing in cnnlab (training, experiments) is a dataclass. ``add_arguments``
generates ``--flag`` options from its fields (``keep_prob`` -> ``--keep-prob``), ``from_args``
builds the instance back, ``from_dict`` validates keys from a TOML/JSON file, and ``to_dict``
gives the resolved config that is saved next to every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from cnnlab.common.errors import CnnlabError

T = TypeVar("T")


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


def _none_or(conv):
    def parse(text: str):
        if text.lower() in ("none", "null", ""):
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
            conv = {int: int, float: float, str: str}.get(tp, str)
            kw["type"] = _none_or(conv) if optional else conv
            choices = _choices(hints[f.name])
            if choices:
                kw["choices"] = list(choices) + ([None] if optional else [])
            kw["metavar"] = tp.__name__.upper() if not choices else None
        # argparse %-formats help strings: a literal '%' (e.g. "99%") must be doubled
        text = f"{help_} (default: {default})".strip().replace("%", "%%")
        parser.add_argument(flag, help=text, **kw)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a mapping; unknown keys are an error that lists the known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CnnlabError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    clean: dict[str, Any] = {}
    for k, v in data.items():
        tp, optional = _base_type(hints[k])
        if v is None and optional:
            clean[k] = None
            continue
        try:
            if tp is bool and not isinstance(v, bool):
                v = _parse_bool(str(v))
            elif tp is float and isinstance(v, int | float) and not isinstance(v, bool):
                v = float(v)
            elif tp in (int, str) and not isinstance(v, tp):
                v = tp(v)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise CnnlabError(
                f"{where}: key {k!r}: cannot read {v!r} as {tp.__name__} ({e})"
            ) from None
        choices = _choices(hints[k])
        if choices and v not in choices:
            raise CnnlabError(f"{where}: key {k!r}: {v!r} is not one of {list(choices)}")
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

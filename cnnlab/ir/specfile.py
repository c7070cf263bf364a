"""Architectures as TOML or JSON files: the same IR as the spec string, key for key.

Either a spec string::

    name = "baseline"
    input = "1x28x28"
    spec = "conv5x5x32 relu maxpool2 conv5x5x64 relu maxpool2 fc1024 relu fc10"

or a list of layers (keys as in the spec language's ``(key=value)``; blocks nest)::

    input = [1, 28, 28]
    [[layers]]
    type = "conv"
    kernel = [5, 5]
    filters = 32
    padding = "same"
    [[layers]]
    type = "res"          # or "add" / "cat" with branches = [[...], [...]]
    gamma = 0.7071
    body = [{ type = "fc", out = 64 }, { type = "relu" }]

Unknown keys are errors that name the layer (``layers[3]``) and the known keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError, SpecError
from cnnlab.common.files import load_mapping
from cnnlab.ir import graph as ir
from cnnlab.ir.layers import MAX_DEPTH, MAX_LAYERS, MAX_SIZE, MAX_UNITS, check_number, make_op
from cnnlab.ir.spec import (
    BlockItem,
    LayerItem,
    check_size,
    emit,
    layer_count,
    parse_items,
)

TOP_KEYS = {"name", "input", "spec", "layers", "description"}


def _repeat(value: Any, here: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LAYERS:
        raise CnnlabError(f"{here}: repeat must be an integer between 1 and {MAX_LAYERS}, "
                          f"got {value!r}")
    return value


def _items(layers: Any, where: str, depth: int = 0) -> list[Any]:
    if depth > MAX_DEPTH:
        raise CnnlabError(f"{where}: blocks nested more than {MAX_DEPTH} deep")
    if not isinstance(layers, list):
        raise CnnlabError(f"{where}: expected a list of layer tables")
    items: list[Any] = []
    for i, raw in enumerate(layers):
        here = f"{where}[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise CnnlabError(f"{here}: each layer needs a 'type', e.g. {{type = \"conv\"}}")
        d = dict(raw)
        kind = d.pop("type").lower()
        repeat = _repeat(d.pop("repeat", 1), here)
        try:
            if kind in ("res", "add", "cat"):
                item: Any = _block(kind, d, here, depth)
            else:
                item = LayerItem(make_op(kind, d, kind), kind, 0)
        except SpecError as e:
            raise CnnlabError(f"{here}: {str(e).split(': ', 1)[-1]}") from None
        if len(items) + layer_count([item]) * repeat > MAX_LAYERS:
            raise CnnlabError(f"{here}: more than {MAX_LAYERS} layers; at most {MAX_LAYERS} "
                              "are supported (lower repeat)")
        items += [item] * repeat
    return items


def _block(kind: str, d: dict[str, Any], here: str, depth: int) -> BlockItem:
    if kind == "cat" and "gamma" in d:
        raise CnnlabError(f"{here}: gamma applies to res/add blocks, not cat")
    gamma = check_number(d.pop("gamma", 1.0), "gamma", kind)
    if kind == "res":
        branches = [_items(d.pop("body", []), f"{here}.body", depth + 1)]
    else:
        brs = d.pop("branches", None)
        if not isinstance(brs, list) or len(brs) < 2:
            raise CnnlabError(f"{here}: {kind} needs branches = [[...], [...]]")
        branches = [_items(b, f"{here}.branches[{j}]", depth + 1) for j, b in enumerate(brs)]
    if d:
        raise CnnlabError(f"{here}: unknown key(s) {', '.join(sorted(d))} for {kind}")
    return BlockItem(kind, gamma, branches, kind, 0)


def load(path: str | Path) -> tuple[ir.Graph, tuple[int, ...] | None, str]:
    """Read a TOML/JSON architecture: (graph, input shape or None, name)."""
    p = Path(path)
    data = load_mapping(p, "architecture file")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise CnnlabError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(TOP_KEYS))}")
    if ("spec" in data) == ("layers" in data):
        raise CnnlabError(f"{p}: give exactly one of 'spec' (a string) or [[layers]]")
    if "spec" in data and not isinstance(data["spec"], str):
        raise CnnlabError(f"{p}: spec must be a string, got {data['spec']!r}")
    g = ir.Graph(source=str(p))
    if "spec" in data:
        try:
            items = parse_items(str(data["spec"]))
        except SpecError as e:
            raise CnnlabError(f"{p}: {e}") from None
        g.source = str(data["spec"])
    else:
        items = _items(data["layers"], "layers")
        if not items:
            raise CnnlabError(f"{p}: [[layers]] is empty; give at least one layer")
        try:
            check_size(items)
        except SpecError as e:
            raise CnnlabError(f"{p}: {str(e).split(': ', 1)[-1]}") from None
    emit(g, items, "input")
    shape = data.get("input")
    if isinstance(shape, str):
        from cnnlab.ir.shapes import parse_shape

        try:
            shape = parse_shape(shape)
        except CnnlabError as e:
            raise CnnlabError(f"{p}: input: {str(e).split(': ', 1)[-1]}") from None
    elif shape is not None:
        if (not isinstance(shape, list) or not shape or len(shape) > 9 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
            raise CnnlabError(f"{p}: input must be a list of positive integers like "
                              f"[1, 28, 28] or a string like \"1x28x28\", got {shape!r}")
        shape = tuple(shape)
    if shape is not None and (shape[0] > MAX_UNITS or any(v > MAX_SIZE for v in shape[1:])):
        raise CnnlabError(f"{p}: input {'x'.join(map(str, shape))} is larger than cnnlab's "
                          f"limits ({MAX_UNITS} channels, {MAX_SIZE} per spatial axis)")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise CnnlabError(f"{p}: {key} must be a string, got {data[key]!r}")
    return g, shape, str(data.get("name", p.stem))

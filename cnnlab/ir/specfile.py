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
from cnnlab.ir.spec import BlockItem, LayerItem, emit, make_op, parse_items

TOP_KEYS = {"name", "input", "spec", "layers", "description"}


def _items(layers: Any, where: str) -> list[Any]:
    if not isinstance(layers, list):
        raise CnnlabError(f"{where}: expected a list of layer tables")
    items: list[Any] = []
    for i, raw in enumerate(layers):
        here = f"{where}[{i}]"
        if not isinstance(raw, dict) or "type" not in raw:
            raise CnnlabError(f"{here}: each layer needs a 'type', e.g. {{type = \"conv\"}}")
        d = dict(raw)
        kind = str(d.pop("type")).lower()
        repeat = int(d.pop("repeat", 1))
        if kind in ("res", "add", "cat"):
            if kind == "cat" and "gamma" in d:
                raise CnnlabError(f"{here}: gamma applies to res/add blocks, not cat")
            gamma = float(d.pop("gamma", 1.0))
            if kind == "res":
                branches = [_items(d.pop("body", []), f"{here}.body")]
            else:
                brs = d.pop("branches", None)
                if not isinstance(brs, list) or len(brs) < 2:
                    raise CnnlabError(f"{here}: {kind} needs branches = [[...], [...]]")
                branches = [_items(b, f"{here}.branches[{j}]") for j, b in enumerate(brs)]
            if d:
                raise CnnlabError(f"{here}: unknown key(s) {', '.join(sorted(d))} for {kind}")
            items += [BlockItem(kind, gamma, branches, kind, 0)] * repeat
            continue
        try:
            op = make_op(kind, d, kind)
        except SpecError as e:
            raise CnnlabError(f"{here}: {str(e).split(': ', 1)[-1]}") from None
        items += [LayerItem(op, kind, 0)] * repeat
    return items


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
    g = ir.Graph(source=str(p))
    if "spec" in data:
        try:
            items = parse_items(str(data["spec"]))
        except SpecError as e:
            raise CnnlabError(f"{p}: {e}") from None
        g.source = str(data["spec"])
    else:
        items = _items(data["layers"], "layers")
    emit(g, items, "input")
    shape = data.get("input")
    if isinstance(shape, str):
        from cnnlab.ir.shapes import parse_shape

        shape = parse_shape(shape)
    elif shape is not None:
        shape = tuple(int(v) for v in shape)
    return g, shape, str(data.get("name", p.stem))

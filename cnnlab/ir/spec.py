"""The spec language: a compact, sheet-like notation that parses into the IR.

Grammar (full reference with examples in docs/spec.md)::

    spec   := item (SEP item)*            SEP: whitespace, ',' or '->'
    item   := (layer | block) ['*' INT]   '*N' repeats the item N times
    layer  := WORD [ '(' key=value, ... ')' ]
    block  := ('res' | 'add' | 'cat') [ '(' key=value ... ')' ] '{' spec ('|' spec)* '}'

A WORD is a layer name glued to its numbers, joined by 'x':
``conv5x5x32`` (kernel 5x5, 32 filters), ``conv3x3x3x16`` (3D), ``conv5x32`` (kernel 5 on
every spatial axis), ``maxpool2``, ``avgpool3x3(stride=2)``, ``fc1024``, ``dropout0.5``,
``relu``, ``bn``, ``flatten``, ``softmax``, ``gap``. ``res{body}`` is ``x + body(x)``;
``res(gamma=0.7071){...}`` scales the sum by gamma (TTIC Problem 3);
``add{a | b}`` / ``cat{a | b}`` join any branches (an empty branch is the identity).

Layers are built by :func:`cnnlab.ir.layers.make_op` from a type name and keyword arguments,
which the TOML/JSON reader (:mod:`cnnlab.ir.specfile`) shares.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from cnnlab.common.errors import CnnlabWarning, SpecError
from cnnlab.ir import graph as ir
from cnnlab.ir.layers import (
    ALIASES,
    BLOCKS,
    KEY_ALIASES,
    MAX_DEPTH,
    MAX_LAYERS,
    MAX_SPEC_CHARS,
    check_number,
    make_op,
)

# ----------------------------------------------------------------------------- AST


@dataclass
class LayerItem:
    op: ir.Op
    token: str
    column: int


@dataclass
class BlockItem:
    kind: str  # res | add | cat
    gamma: float
    branches: list[list[Any]] = field(default_factory=list)
    token: str = ""
    column: int = 0


def layer_count(items: list[Any]) -> int:
    """Layers ``items`` expand to (a block counts its branches and its join node)."""
    total = 0
    for it in items:
        if isinstance(it, BlockItem):
            cached = getattr(it, "_layers", None)
            if cached is None:
                cached = 1 + sum(layer_count(br) for br in it.branches)
                object.__setattr__(it, "_layers", cached)
            total += cached
        else:
            total += 1
    return total


def check_size(items: list[Any], where: str = "") -> None:
    """Raise unless ``items`` expand to at most :data:`MAX_LAYERS` layers."""
    n = layer_count(items)
    if n > MAX_LAYERS:
        raise SpecError(f"{where}the network has {n} layers; at most {MAX_LAYERS} are "
                        "supported (lower a '*N' repeat count)")


class _Names:
    """Auto-names nodes as :meth:`Graph.add` does (conv1, conv2, ...) in constant time each."""

    def __init__(self, graph: ir.Graph):
        self.taken = {n.name for n in graph.nodes}
        self.count: dict[str, int] = {}
        for n in graph.nodes:
            b = ir.base_name(n.op)
            self.count[b] = self.count.get(b, 0) + 1

    def __call__(self, op: ir.Op) -> str:
        base = ir.base_name(op)
        idx = self.count.get(base, 0) + 1
        self.count[base] = idx
        name = f"{base}{idx}"
        while name in self.taken:
            idx += 1
            name = f"{base}{idx}"
        self.taken.add(name)
        return name


def emit(graph: ir.Graph, items: list[Any], start: str, names: _Names | None = None) -> str:
    """Append parsed items to ``graph`` after node ``start``; return the last node's name.

    Linear in the number of layers (names are counted, not searched for)."""
    names = names or _Names(graph)
    cur = start
    for it in items:
        if isinstance(it, LayerItem):
            cur = graph.add(it.op, cur, name=names(it.op),
                            origin=f"{it.token} (column {it.column})")
            continue
        ends = []
        branches = it.branches
        if it.kind == "res":
            branches = [[], *branches]
        for br in branches:
            ends.append(emit(graph, br, cur, names))
        origin = f"{it.token} (column {it.column})"
        join: ir.Op = ir.Concat() if it.kind == "cat" else ir.Add(gamma=it.gamma)
        cur = graph.add(join, tuple(ends), name=names(join), origin=origin)
    return cur


# ----------------------------------------------------------------------------- parser

_TOKEN = re.compile(r"\s*(->|[{}|,*]|[A-Za-z_][A-Za-z0-9_.]*(?:\([^()]*\))?|[0-9]+|\S)")
_WORD = re.compile(r"^([A-Za-z_]+?)((?:[0-9]+(?:\.[0-9]+)?)(?:x[0-9]+(?:\.[0-9]+)?)*)?$")


def _int(text: str, token: str, column: int) -> int:
    """An ASCII integer; one that is longer than any bound is an error here (``int()`` would
    refuse 4,300 digits with a ValueError)."""
    if len(text.lstrip("+-0")) > 18:
        raise SpecError(f"number {text[:20]}... is too large", column, token)
    return int(text)


def _value(text: str, token: str, column: int) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if re.fullmatch(r"[0-9]+(x[0-9]+)+", t):
        return [_int(v, token, column) for v in t.split("x")]
    if re.fullmatch(r"-?[0-9]+", t):
        return _int(t, token, column)
    try:
        return float(t)
    except ValueError:
        pass
    if re.fullmatch(r"1/sqrt\(?2\)?", low):
        return 2 ** -0.5
    return low


def parse_value(text: str) -> Any:
    """One option value as the spec language reads it: ``true``/``off``, ``32x64`` (a list),
    an int, a float, ``1/sqrt2``, else the lower-cased word."""
    return _value(text, text, 0)


def _kwargs(text: str, token: str, column: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise SpecError(f"expected key=value inside (...), got {part!r}", column, token)
        k, v = part.split("=", 1)
        out[k.strip().lower()] = _value(v, token, column)
    return out


def _layer(word: str, column: int) -> LayerItem:
    args: dict[str, Any] = {}
    name = word
    if "(" in word:
        name, rest = word.split("(", 1)
        args = _kwargs(rest.rstrip(")"), word, column)
    m = _WORD.match(name)
    if not m:
        raise SpecError("cannot read this layer; expected e.g. conv5x5x32, maxpool2, fc10",
                        column, word)
    kind, nums_text = m.group(1).lower(), m.group(2)
    if kind not in ALIASES:
        raise SpecError(f"unknown layer {kind!r}; known: {', '.join(sorted(ALIASES))}",
                        column, word)
    kind = ALIASES[kind]
    nums: list[Any] = []
    if nums_text:
        nums = [float(v) if "." in v else _int(v, word, column) for v in nums_text.split("x")]
    try:
        if nums:
            named = {"conv": ("kernel", "out"), "maxpool": ("kernel",),
                     "avgpool": ("kernel",), "fc": ("out",), "dropout": ("p", "keep"),
                     "scale": ("factor",)}.get(kind, ())
            twice = sorted(k for k in args if KEY_ALIASES.get(k, k) in named)
            if twice:
                raise SpecError(f"{', '.join(twice)} given both in the name and as a keyword; "
                                "give it once", column, word)
            if kind == "conv":
                if len(nums) < 2:
                    raise SpecError("conv needs a kernel and a filter count, e.g. conv5x5x32",
                                    column, word)
                if len(nums) == 2 and nums[0] == nums[1] and "filters" not in args:
                    k = nums[0]
                    warnings.warn(CnnlabWarning(
                        f"spec at column {column} ('{word}'): read as a kernel of {k} on every "
                        f"axis with {k} filters (conv{k}x{k}x{k} in 2D); for another filter "
                        f"count write conv{k}x{k}xN, e.g. conv{k}x{k}x32"), stacklevel=2)
                args.setdefault("kernel", nums[:-1])
                args.setdefault("filters", nums[-1])
            elif kind in ("maxpool", "avgpool"):
                args.setdefault("kernel", nums)
            elif kind == "fc" and len(nums) == 1:
                args.setdefault("out", nums[0])
            elif kind == "dropout" and len(nums) == 1:
                args.setdefault("p", nums[0])
            elif kind == "scale" and len(nums) == 1:
                args.setdefault("factor", nums[0])
            else:
                raise SpecError(f"{kind} takes no size here", column, word)
        op = make_op(kind, args, word)
    except SpecError as e:
        if e.column is None:
            raise SpecError(str(e).split(": ", 1)[1], column, word) from None
        raise
    return LayerItem(op, word, column)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or not m.group(1):
                break
            self.toks.append((m.group(1), m.start(1) + 1))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def seq(self, stop: tuple[str, ...]) -> list[Any]:
        items: list[Any] = []
        while (t := self.peek()) is not None and t[0] not in stop:
            tok, col = t
            if tok in (",", "->"):
                self.take()
                continue
            items.extend(self.item())
        return items

    def item(self) -> list[Any]:
        tok, col = self.take()
        base = tok.split("(", 1)[0].lower()
        nxt = self.peek()
        if base in BLOCKS and nxt is not None and nxt[0] == "{":
            args = _kwargs(tok.split("(", 1)[1].rstrip(")"), tok, col) if "(" in tok else {}
            bad = sorted(set(args) - {"gamma"})
            if bad:
                raise SpecError(f"{base} block takes only gamma, not {', '.join(bad)}", col, tok)
            if base == "cat" and "gamma" in args:
                raise SpecError("gamma applies to res/add blocks, not cat", col, tok)
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise SpecError(f"blocks nested more than {MAX_DEPTH} deep", col, tok)
            try:
                gamma = check_number(args.get("gamma", 1.0), "gamma", tok)
            except SpecError as e:
                raise SpecError(str(e).split(": ", 1)[1], col, tok) from None
            block = BlockItem(base, gamma, [], tok, col)
            while True:
                block.branches.append(self.seq(("|", "}")))
                t = self.peek()
                if t is None:
                    raise SpecError("block is not closed; add '}'", col, tok)
                self.take()
                if t[0] == "}":
                    break
            self.depth -= 1
            if base == "res" and len(block.branches) != 1:
                raise SpecError("res{...} has one body; use add{a | b} for several branches",
                                col, tok)
            if base != "res" and len(block.branches) < 2:
                raise SpecError(f"{base}{{...}} needs at least two branches separated by '|'",
                                col, tok)
            out: list[Any] = [block]
        elif tok in ("{", "}", "|", "*"):
            raise SpecError(f"unexpected '{tok}'", col, tok)
        elif re.fullmatch(r"[0-9]+", tok):
            raise SpecError("a number on its own; glue it to a layer, e.g. fc10", col, tok)
        elif not re.match(r"[A-Za-z_]", tok):
            raise SpecError(f"unexpected character {tok!r}", col, tok)
        else:
            out = [_layer(tok, col)]
        t = self.peek()
        if t is not None and t[0] == "*":
            self.take()
            n = self.peek()
            if n is None or not re.fullmatch("[0-9]+", n[0]) or int(n[0][:12]) < 1:
                raise SpecError("'*' must be followed by a repeat count >= 1", t[1], "*")
            self.take()
            count = int(n[0]) if len(n[0]) < 12 else MAX_LAYERS + 1
            if layer_count(out) * count > MAX_LAYERS:
                raise SpecError(f"'*{n[0]}' makes more than {MAX_LAYERS} layers; at most "
                                f"{MAX_LAYERS} are supported", n[1], n[0])
            out = out * count
        return out


def parse_items(text: str) -> list[Any]:
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError(f"spec is {len(text)} characters long; at most {MAX_SPEC_CHARS}")
    p = _Parser(text)
    items = p.seq(())
    if p.peek() is not None:
        tok, col = p.peek()
        raise SpecError(f"unexpected '{tok}'", col, tok)
    if not items:
        raise SpecError("empty spec; write layers such as 'conv5x5x32 relu maxpool2 fc10'")
    check_size(items)
    return items


def parse(text: str) -> ir.Graph:
    """Parse a spec string into a :class:`~cnnlab.ir.graph.Graph`."""
    g = ir.Graph(source=text)
    emit(g, parse_items(text), "input")
    return g

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

Layers are built by :func:`make_op` from a type name and keyword arguments, which the TOML/JSON
reader (:mod:`cnnlab.ir.specfile`) shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


def _axes(value: Any, key: str, where: str, token: str | None) -> ir.Axes:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise SpecError(f"{key} must be an integer or one per axis like 2x2, got {value!r}",
                    None, token) if where == "" else SpecError(
        f"{where}: {key} must be an integer or a list of integers, got {value!r}")


def _padding(value: Any, token: str | None) -> ir.Padding:
    if isinstance(value, str):
        if value in ("valid", "same", "full"):
            return value
        raise SpecError(f"padding must be valid, same, full or integers, got {value!r}", None,
                        token)
    if isinstance(value, int):
        return ((value, value),)
    if isinstance(value, list | tuple):
        out = []
        for v in value:
            if isinstance(v, int):
                out.append((v, v))
            elif isinstance(v, list | tuple) and len(v) == 2:
                out.append((int(v[0]), int(v[1])))
            else:
                raise SpecError(f"bad padding entry {v!r}; use an int or [low, high]", None,
                                token)
        return tuple(out)
    raise SpecError(f"bad padding {value!r}", None, token)


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

    def pos_int(key: str, v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(f"{key} must be a positive integer, got {v!r}", None, token)
        return v

    if kind == "conv":
        kernel = _axes(need("kernel"), "kernel", "", token)
        for v in kernel:
            pos_int("kernel", v)
        return ir.Conv(
            out_channels=pos_int("filters", need("out")),
            kernel=kernel,
            stride=_axes(args.get("stride", 1), "stride", "", token),
            padding=_padding(args.get("padding", "valid"), token),
            dilation=_axes(args.get("dilation", 1), "dilation", "", token),
            groups=pos_int("groups", args.get("groups", 1)),
            bias=bool(args.get("bias", True)),
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
        return ir.Linear(pos_int("units", need("out")), bias=bool(args.get("bias", True)))
    if kind == "bn":
        return ir.BatchNorm(eps=float(args.get("eps", 1e-5)),
                            momentum=float(args.get("momentum", 0.1)))
    if kind == "dropout":
        if "keep" in args:
            p = 1.0 - float(args["keep"])
        else:
            p = float(args.get("p", 0.5))
        if not 0.0 <= p < 1.0:
            raise SpecError(f"dropout probability must be in [0, 1), got {p}", None, token)
        return ir.Dropout(p)
    if kind == "scale":
        return ir.Scale(float(need("factor")))
    if kind == "flatten":
        return ir.Flatten()
    if kind == "softmax":
        return ir.Softmax()
    return ir.Act(kind)


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


def emit(graph: ir.Graph, items: list[Any], start: str) -> str:
    """Append parsed items to ``graph`` after node ``start``; return the last node's name."""
    cur = start
    for it in items:
        if isinstance(it, LayerItem):
            cur = graph.add(it.op, cur, origin=f"{it.token} (column {it.column})")
            continue
        ends = []
        branches = it.branches
        if it.kind == "res":
            branches = [[], *branches]
        for br in branches:
            ends.append(emit(graph, br, cur))
        origin = f"{it.token} (column {it.column})"
        if it.kind == "cat":
            cur = graph.add(ir.Concat(), tuple(ends), origin=origin)
        else:
            cur = graph.add(ir.Add(gamma=it.gamma), tuple(ends), origin=origin)
    return cur


# ----------------------------------------------------------------------------- parser

_TOKEN = re.compile(r"\s*(->|[{}|,*]|[A-Za-z_][A-Za-z0-9_.]*(?:\([^()]*\))?|\d+|\S)")
_WORD = re.compile(r"^([A-Za-z_]+?)((?:\d+(?:\.\d+)?)(?:x\d+(?:\.\d+)?)*)?$")


def _value(text: str, token: str, column: int) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if re.fullmatch(r"\d+(x\d+)+", t):
        return [int(v) for v in t.split("x")]
    if re.fullmatch(r"-?\d+", t):
        return int(t)
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
        nums = [float(v) if "." in v else int(v) for v in nums_text.split("x")]
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
            block = BlockItem(base, float(args.get("gamma", 1.0)), [], tok, col)
            while True:
                block.branches.append(self.seq(("|", "}")))
                t = self.peek()
                if t is None:
                    raise SpecError("block is not closed; add '}'", col, tok)
                self.take()
                if t[0] == "}":
                    break
            if base == "res" and len(block.branches) != 1:
                raise SpecError("res{...} has one body; use add{a | b} for several branches",
                                col, tok)
            if base != "res" and len(block.branches) < 2:
                raise SpecError(f"{base}{{...}} needs at least two branches separated by '|'",
                                col, tok)
            out: list[Any] = [block]
        elif tok in ("{", "}", "|", "*"):
            raise SpecError(f"unexpected '{tok}'", col, tok)
        elif re.fullmatch(r"\d+", tok):
            raise SpecError("a number on its own; glue it to a layer, e.g. fc10", col, tok)
        elif not re.match(r"[A-Za-z_]", tok):
            raise SpecError(f"unexpected character {tok!r}", col, tok)
        else:
            out = [_layer(tok, col)]
        t = self.peek()
        if t is not None and t[0] == "*":
            self.take()
            n = self.peek()
            if n is None or not n[0].isdigit() or int(n[0]) < 1:
                raise SpecError("'*' must be followed by a repeat count >= 1", t[1], "*")
            self.take()
            out = out * int(n[0])
        return out


def parse_items(text: str) -> list[Any]:
    p = _Parser(text)
    items = p.seq(())
    if p.peek() is not None:
        tok, col = p.peek()
        raise SpecError(f"unexpected '{tok}'", col, tok)
    if not items:
        raise SpecError("empty spec; write layers such as 'conv5x5x32 relu maxpool2 fc10'")
    return items


def parse(text: str) -> ir.Graph:
    """Parse a spec string into a :class:`~cnnlab.ir.graph.Graph`."""
    g = ir.Graph(source=text)
    emit(g, parse_items(text), "input")
    return g

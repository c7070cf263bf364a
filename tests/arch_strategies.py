"""Hypothesis strategies for random valid specs (shared by the analyzer's oracle tests).

1D/2D/3D convs with every padding mode, dilation and groups, pools, residual and concat
blocks, fc heads; :func:`specs` draws ``(spec_text, input_shape)``.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from cnnlab.common.errors import ShapeError
from cnnlab.ir.shapes import infer_shapes
from cnnlab.ir.spec import parse


def _axes(draw, dims: int, lo: int, hi: int) -> str:
    vals = [draw(st.integers(lo, hi)) for _ in range(dims)]
    return str(vals[0]) if len(set(vals)) == 1 and draw(st.booleans()) else "x".join(map(str, vals))


@st.composite
def _conv(draw, dims: int, ch: int, same: bool = False) -> tuple[str, int]:
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if ch % g == 0]))
    out = groups * draw(st.integers(1, 3))
    kernel = _axes(draw, dims, 1, 3)
    kw = [f"dilation={_axes(draw, dims, 1, 2)}"] if draw(st.booleans()) else []
    if groups > 1:
        kw.append(f"groups={groups}")
    if same:
        kw.append("padding=same")
    else:
        pad = draw(st.sampled_from(["valid", "same", "full", "int", "axes"]))
        kw.append({"int": f"padding={draw(st.integers(0, 2))}",
                   "axes": f"padding={_axes(draw, dims, 0, 2)}"}.get(pad, f"padding={pad}"))
        if draw(st.booleans()):
            kw.append(f"stride={_axes(draw, dims, 1, 2)}")
    return f"conv{kernel}x{out}({','.join(kw)})", out


@st.composite
def _pool(draw, dims: int, same: bool = False) -> str:
    op = draw(st.sampled_from(["maxpool", "avgpool"]))
    k = draw(st.integers(1, 3))
    if same:
        return f"{op}{k}(stride=1,padding=same)"
    kw = []
    if draw(st.booleans()):
        kw.append(f"stride={_axes(draw, dims, 1, 2)}")
    pad = draw(st.sampled_from(["", "same", "full", "int"]))
    if pad == "int":
        kw.append(f"padding={draw(st.integers(0, k - 1))}")
    elif pad:
        kw.append(f"padding={pad}")
    return f"{op}{k}" + (f"({','.join(kw)})" if kw else "")


@st.composite
def _branch(draw, dims: int, ch: int) -> tuple[str, int]:
    kind = draw(st.sampled_from(["identity", "conv", "conv2", "pool"]))
    if kind == "identity":
        return "", ch
    if kind == "pool":
        return draw(_pool(dims, same=True)), ch
    first, c = draw(_conv(dims, ch, same=True))
    if kind == "conv2":
        second, c = draw(_conv(dims, c, same=True))
        return f"{first} relu {second}", c
    return first, c


@st.composite
def _item(draw, dims: int, ch: int) -> tuple[str, int]:
    kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "bn", "dropout", "scale",
                                 "res", "cat", "add"]))
    if kind == "conv":
        return draw(_conv(dims, ch))
    if kind == "pool":
        return draw(_pool(dims)), ch
    if kind == "act":
        return draw(st.sampled_from(["relu", "tanh", "sigmoid", "gelu", "elu", "identity"])), ch
    if kind in ("bn", "dropout", "scale"):
        return {"bn": "bn", "dropout": "dropout0.25", "scale": "scale0.5"}[kind], ch
    if kind == "res":
        body, c = draw(_conv(dims, ch, same=True))
        body2 = ""
        if c == ch and draw(st.booleans()):
            body2 = " bn relu"
        elif c != ch:
            body2 = f" conv1x{ch}"
        gamma = "(gamma=0.5)" if draw(st.booleans()) else ""
        return f"res{gamma}{{{body}{body2}}}", ch
    branches = [draw(_branch(dims, ch)) for _ in range(draw(st.integers(2, 3)))]
    if kind == "add":
        # every branch must end with ch channels for the sum to exist
        fixed = [b if c == ch else f"{b} conv1x{ch}" for b, c in branches]
        return "add{" + " | ".join(fixed) + "}", ch
    return "cat{" + " | ".join(b for b, _ in branches) + "}", sum(c for _, c in branches)


HEADS = ["", "", "flatten fc5", "fc4 relu fc3", "gap fc3", "globalmaxpool", "flatten fc4 softmax"]
SIZES = {1: (6, 24), 2: (5, 12), 3: (3, 6)}


@st.composite
def specs(draw) -> tuple[str, tuple[int, ...]]:
    """A random valid spec and its input shape; items that would not fit are skipped."""
    dims = draw(st.sampled_from([1, 2, 2, 3]))
    shape = (draw(st.integers(1, 3)),
             *(draw(st.integers(*SIZES[dims])) for _ in range(dims)))
    items: list[str] = []
    ch = shape[0]
    for _ in range(draw(st.integers(1, 6 if dims < 3 else 3))):
        token, c = draw(_item(dims, ch))
        try:
            infer_shapes(parse(" ".join([*items, token])), shape)
        except ShapeError:
            continue
        items.append(token)
        ch = c
    items.append(draw(st.sampled_from(HEADS)))
    text = " ".join(t for t in items if t)
    assume(text)
    return text, shape

"""The one-line errors for a layer given an input it cannot take (a wrong ``--input``).

Torch's own messages name shapes the user never wrote: a Conv2d given ``--input 3x8`` reads
the batched ``(1, 3, 8)`` as an unbatched image and complains that ``[1, 1, 3, 8]`` has the
wrong channels. These name the layer, what it takes and what it got, and end in "check
--input". The importer asks them when it maps a leaf (:func:`cnnlab.ir.fximport_ops.
module_op`) and when an op fails on meta tensors; the run-capture asks them first when a run
fails, before any hint about code that reads tensor values.
"""

from __future__ import annotations

from torch import nn

from cnnlab.common.errors import CnnlabError

_HINT = "check --input (channels x height x width, or tokens:int64)"
_WANT = {1: ("channels", "length"), 2: ("channels", "height", "width"),
         3: ("channels", "depth", "height", "width")}
# modules whose input must have exactly n + 2 axes, batch first (BatchNorm1d takes 2 or 3)
_RANKED = (((nn.Conv1d, nn.ConvTranspose1d, nn.MaxPool1d, nn.AvgPool1d), 1),
           ((nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d), 2),
           ((nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.AvgPool3d, nn.BatchNorm3d), 3))
#: exact module type -> its number of spatial axes n (it takes n + 2 axes, batch first)
RANK = {cls: n for kinds, n in _RANKED for cls in kinds}


def _count(m: nn.Module, path: str, what: str, want: int, got: int) -> str:
    name = f"{type(m).__name__} {path}" if path else type(m).__name__
    return f"{name} expects {want} input {what} but gets {got}; {_HINT}"


def expect(m: nn.Module, what: str, want: int, got: int, path: str = "") -> None:
    """Raise the one-line error when ``m`` takes ``want`` input ``what`` and gets ``got``."""
    if want != got:
        raise CnnlabError(_count(m, path, what, want, got))


def rank_error(m: nn.Module, path: str, x: tuple[int, ...]) -> str | None:
    """The one-line error for a convolution, pooling or batch norm ``m`` called on a batched
    input of torch shape ``x`` with the wrong number of axes (a Conv2d given ``--input 3x8``),
    or None when the rank is right or ``m`` is none of those."""
    dims = None
    for kinds, n in _RANKED:
        if isinstance(m, kinds):
            dims = n
            break
    if dims is None or len(x) == dims + 2:
        return None
    got = "x".join(str(v) for v in x[1:]) or "a scalar"
    return (f"{type(m).__name__} {path} expects a {' x '.join(_WANT[dims])} input "
            f"({dims + 1} axes) but gets {got} ({len(x) - 1} axes); check --input")


def input_error(m: nn.Module, path: str, x: tuple[int, ...]) -> str | None:
    """The one-line error for a module called on a batched input of torch shape ``x`` that
    it cannot take: the wrong number of axes (:func:`rank_error`), or a channel or feature
    count its weights contradict; None if neither (what a failed run then says is its own)."""
    wrong = rank_error(m, path, x)
    if wrong or len(x) < 2:
        return wrong
    if isinstance(m, nn.modules.conv._ConvNd):
        want, what, got = m.in_channels, "channels", x[1]
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        want, what, got = m.num_features, "channels", x[1]
    elif isinstance(m, nn.GroupNorm):
        want, what, got = m.num_channels, "channels", x[1]
    elif isinstance(m, nn.Linear):
        want, what, got = m.in_features, "features (last axis)", x[-1]
    else:
        return None
    return None if want == got else _count(m, path, what, want, got)

"""The fast path of :class:`~cnnlab.training.batched_model.StackedNets`: grouped ops.

For a sequential net of 2-D convolutions, pools, element-wise activations, dropout, flatten
and fully connected layers, K models run without ``vmap`` in the layouts these ops want:

* images as ``(B, K*C, H, W)``: a convolution is one ``conv2d(..., groups=K)``, pools and
  activations act per channel, so nothing is copied between layers;
* vectors as ``(K, B, F)``: a fully connected layer is one ``baddbmm``.

``vmap`` computes the same (it also turns the convolution into a grouped one) but moves the
model axis back and forth around every layer; on a CPU those copies cost as much as the
convolutions. Anything else (branches, batch norm, 1-D/3-D convolutions) takes the ``vmap`` path.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Modules that act element-wise (or per channel) and hold no parameters.
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Tanh,
             nn.Sigmoid, nn.Softplus, nn.Identity, nn.Hardtanh, nn.Mish)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def plan(net: nn.Module) -> list[tuple[str, str, nn.Module]] | None:
    """``[(kind, qualified name, module)]`` in forward order, or None when not supported."""
    layers = getattr(net, "layers", None)
    if not isinstance(layers, nn.ModuleDict) or not getattr(net, "_sequential", False):
        return None
    out = []
    for name, m in layers.items():
        q = f"layers.{name}"
        if isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros":
            out.append(("conv", q, m))
        elif isinstance(m, POOLS):
            out.append(("pool", q, m))
        elif isinstance(m, POINTWISE):
            out.append(("pointwise", q, m))
        elif isinstance(m, nn.Dropout) or type(m).__name__ == "MaskDropout":
            out.append(("dropout", q, m))
        elif isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
            out.append(("flatten", q, m))
        elif isinstance(m, nn.Linear):
            out.append(("linear", q, m))
        elif isinstance(getattr(m, "linear", None), nn.Linear) and len(list(m.children())) == 1:
            out.append(("linear", f"{q}.linear", m.linear))  # FlattenLinear
        else:
            return None
    return out


def forward(steps: list[tuple[str, str, nn.Module]], params: dict[str, torch.Tensor], k: int,
            x: torch.Tensor, masks: dict[str, list[torch.Tensor]] | None,
            shared_x: bool) -> torch.Tensor:
    """K models on ``(K, B, ...)`` inputs (``(B, ...)`` with ``shared_x``) -> ``(K, B, out)``.

    ``masks``: layer -> K scaled dropout masks shaped like one model's input to that layer.
    """
    img = False  # True: x is (B, K*C, H, W); False: x is (K, B, ...)
    if shared_x:
        x = x.unsqueeze(0).expand(k, *x.shape)
    b = x.shape[1]
    for i, (kind, name, m) in enumerate(steps):
        if kind in ("conv", "pool") and not img:
            if kind == "conv" and shared_x and i == 0:
                w = params[f"{name}.weight"]
                bias = params.get(f"{name}.bias")
                x = F.conv2d(x[0], w.reshape(-1, *w.shape[2:]),
                             None if bias is None else bias.reshape(-1), m.stride, m.padding,
                             m.dilation)
                img = True
                continue
            x = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
            img = True
        if kind in ("flatten", "linear") and img:
            x = x.reshape(b, k, -1).transpose(0, 1)
            img = False
        if kind == "conv":
            w = params[f"{name}.weight"]
            bias = params.get(f"{name}.bias")
            x = F.conv2d(x, w.reshape(-1, *w.shape[2:]),
                         None if bias is None else bias.reshape(-1), m.stride, m.padding,
                         m.dilation, groups=k)
        elif kind in ("pool", "pointwise"):
            x = m(x)
        elif kind == "dropout":
            if masks is not None and name in masks:
                rows = masks[name]
                mask = torch.stack(rows, 1).reshape(x.shape) if img else torch.stack(rows)
                x = x * mask
        elif kind == "flatten":
            x = x.reshape(k, b, -1)
        else:
            if x.dim() > 3:
                x = x.reshape(k, b, -1)
            w = params[f"{name}.weight"]
            bias = params.get(f"{name}.bias")
            wt = w.transpose(1, 2)
            x = torch.bmm(x, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, wt)
    if img:
        x = x.reshape(b, k, -1).transpose(0, 1)
    return x.reshape(k, b, -1)

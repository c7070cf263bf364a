"""Multiplications counted on a live ``nn.Module`` with forward hooks.

An independent check of the analyzer: the analyzer derives MACs from the IR and shape
inference; this counts them from the tensors a real forward pass produces (output size times
the fan-in of each output), so a builder or shape-rule mistake shows up as a mismatch.
Only convolutions and linear layers are counted -- the multiplications of the sheets'
formulas (TTIC Problem 1, Problem 3a).
"""

from __future__ import annotations

import math

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def hook_macs(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Multiplications per conv/linear submodule (by module path) for one forward of ``x``
    (the whole batch)."""
    counts: dict[str, int] = {}
    handles = []

    def make(name: str, mod: nn.Module):
        def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if isinstance(m, _CONV):
                fan_in = (m.in_channels // m.groups) * math.prod(m.kernel_size)
            else:
                fan_in = m.in_features
            counts[name] = counts.get(name, 0) + out.numel() * fan_in

        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, _CONV + (nn.Linear,)):
            handles.append(mod.register_forward_hook(make(name, mod)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return counts

"""A torchvision-style detection model -> the network cnnlab analyzes (its dense part).

A detector's ``forward`` takes a list of images and returns boxes: after the network, it
decodes anchors, keeps the boxes above a score (``nonzero``) and runs NMS, which depend on
the data and cannot run on a shape-only input. What is analyzed instead is every layer with
parameters, on the image as the model's ``transform`` hands it to the backbone (normalised,
resized: give that size as the input):

  * one-stage (RetinaNet, FCOS, SSD, SSDlite): ``backbone`` (with its FPN or extra layers)
    and ``head`` on the feature maps, every output of the head kept;
  * two-stage (Faster/Mask/Keypoint R-CNN): ``backbone``, ``rpn.head`` on the feature maps,
    then the RoI heads for ONE region: the RoI pooling (``MultiScaleRoIAlign``) is shown as
    an adaptive average pool of the finest feature map to the pooler's output size (a region
    covering the whole image), followed by ``box_head``/``box_predictor`` and, when present,
    the mask and keypoint heads. Their MACs are per region: the model runs them for each of
    up to ``rpn.post_nms_top_n()`` proposals.

The model is recognised by its class hierarchy's names (torchvision is not imported).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ONE_STAGE = ("RetinaNet", "FCOS", "SSD")
TWO_STAGE = ("GeneralizedRCNN",)


def kind_of(module: nn.Module) -> str:
    """"one-stage", "two-stage" or "" (not a torchvision-style detector)."""
    names = {c.__name__ for c in type(module).__mro__}
    if not hasattr(module, "backbone") or not hasattr(module, "transform"):
        return ""
    if names & set(ONE_STAGE) and hasattr(module, "head"):
        return "one-stage"
    if names & set(TWO_STAGE) and hasattr(module, "rpn") and hasattr(module, "roi_heads"):
        return "two-stage"
    return ""


def _levels(features: Any) -> list[torch.Tensor]:
    return list(features.values()) if isinstance(features, dict) else [features]


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for v in value for t in _outputs(v)]
    return [value]


def _side(pooler: Any) -> Any:
    size = getattr(pooler, "output_size", 7)
    return tuple(size) if isinstance(size, list | tuple) else size


class OneStage(nn.Module):
    """backbone -> head: the classification and box-regression maps of every level."""

    def __init__(self, det: nn.Module):
        super().__init__()
        self.backbone = det.backbone
        self.head = det.head

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _outputs(self.head(_levels(self.backbone(x))))


class TwoStage(nn.Module):
    """backbone -> RPN head; the RoI heads for one region (see the module docstring)."""

    def __init__(self, det: nn.Module):
        super().__init__()
        self.backbone = det.backbone
        self.rpn = nn.Module()
        self.rpn.head = det.rpn.head
        self.roi_heads = det.roi_heads
        self.sides = {k: _side(getattr(det.roi_heads, f"{k}_roi_pool", None))
                      for k in ("box", "mask", "keypoint")
                      if getattr(det.roi_heads, f"{k}_head", None) is not None}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = _levels(self.backbone(x))
        out = _outputs(self.rpn.head(levels))
        heads = self.roi_heads
        for k, side in self.sides.items():
            region = F.adaptive_avg_pool2d(levels[0], side)  # RoIAlign of one region
            y = getattr(heads, f"{k}_head")(region)
            out += _outputs(getattr(heads, f"{k}_predictor")(y))
        return out


def dense(module: nn.Module) -> nn.Module | None:
    """The analyzable network of a torchvision-style detector; None for other modules."""
    kind = kind_of(module)
    if not kind:
        return None
    base = OneStage if kind == "one-stage" else TwoStage
    # a subclass named after the detector: the source and messages name it
    return type(type(module).__name__, (base,), {})(module).train(module.training)

"""Detectors shaped like torchvision's (cnnlab/ir/detection.py): their layers are analyzed,
not their data-dependent box post-processing; checked against numel, forward hooks and
FlopCounterMode on tiny hand-written one- and two-stage detectors (torchvision is not a
dependency: the classes are named as its are)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.ir.detection import dense, kind_of


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, 2, 1)
        self.c2 = nn.Conv2d(4, 4, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> OrderedDict:
        a = F.relu(self.c1(x))
        return OrderedDict([("0", a), ("1", F.relu(self.c2(a)))])


class Head(nn.Module):
    """RetinaNet-style: a shared conv per level, outputs reshaped and concatenated."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Conv2d(4, 6, 3, padding=1)
        self.box = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, feats: list) -> dict:
        def flat(t: torch.Tensor, k: int) -> torch.Tensor:
            n, _, h, w = t.shape
            return t.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)
        return {"cls_logits": torch.cat([flat(self.cls(f), 3) for f in feats], 1),
                "bbox_regression": torch.cat([flat(self.box(f), 4) for f in feats], 1)}


class RetinaNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.transform = nn.Identity()
        self.backbone, self.head = Backbone(), Head()

    def forward(self, images: list) -> list:
        out = self.head(list(self.backbone(torch.stack(images)).values()))
        keep = torch.nonzero(out["cls_logits"].sigmoid() > 0.5)  # data-dependent
        return [{"boxes": out["bbox_regression"][0, keep[:, 1]]}]


class GeneralizedRCNN(nn.Module):
    pass


class RPNHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.cls_logits = nn.Conv2d(4, 3, 1)

    def forward(self, feats: list) -> tuple:
        return [self.cls_logits(F.relu(self.conv(f))) for f in feats], []


class Pooler:
    output_size = (3, 3)


class RoIHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.box_roi_pool = Pooler()
        self.box_head = nn.Sequential(nn.Flatten(1), nn.Linear(36, 16), nn.ReLU())
        self.box_predictor = nn.Linear(16, 5)
        self.mask_head = None


class FasterRCNN(GeneralizedRCNN):
    def __init__(self):
        super().__init__()
        self.transform = nn.Identity()
        self.backbone = Backbone()
        self.rpn = nn.Module()
        self.rpn.head = RPNHead()
        self.roi_heads = RoIHeads()


def _numel(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_kinds_are_recognised_by_class_names() -> None:
    assert kind_of(RetinaNet()) == "one-stage"
    assert kind_of(FasterRCNN()) == "two-stage"
    assert kind_of(Backbone()) == "" and dense(Backbone()) is None


@pytest.mark.parametrize("factory", [RetinaNet, FasterRCNN])
def test_detector_layers_are_analyzed(factory) -> None:
    torch.manual_seed(0)
    det = factory().eval()
    a = cnnlab.analyze(det, input=(3, 16, 16))
    assert a.unsupported == [] and [r.name for r in a.layers if r.rf is None] == []
    assert a.total.params == _numel(det)
    assert a.unused == ()
    assert a.source == f"module {factory.__name__}"
    net = dense(det)
    counter = FlopCounterMode(display=False)
    seen: dict[str, tuple[int, ...]] = {}

    def keep(path: str, out: torch.Tensor) -> None:
        seen.setdefault(path, tuple(out.shape))

    hooks = [m.register_forward_hook(lambda _m, _i, o, p=p: keep(p, o))
             for p, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad(), counter:
        net(torch.rand(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert sum(r.macs for r in a.layers if r.kind in ("conv", "linear")) * 2 == \
        counter.get_total_flops()
    for path, shape in seen.items():  # a module run on two levels: its first call
        assert (1, *a.layer(path).output_shape) == shape, path


def test_one_region_for_the_roi_heads() -> None:
    a = cnnlab.analyze(FasterRCNN().eval(), input=(3, 16, 16))
    fc = a.layer("roi_heads.box_head.1")
    assert fc.output_shape == (16,) and fc.macs == 36 * 16

"""Full-size CNNs written by hand as their reference implementations build them (no
torchvision): ResNet-50, EfficientNet-B0 (TF-style "same" padding computed in forward,
stochastic depth), DenseNet-121, a ConvNeXt-like net (LayerNorm2d, layer scale, drop path)
and a small hybrid attention CNN. Used by tests/test_capture_zoo.py and
bench/bench_analyze.py. ``ZOO`` lists ``(name, factory)``.
"""

from __future__ import annotations

import math

import torch
from coverage_idioms import HybridAttention, StochasticDepth
from torch import nn
from torch.nn import functional as F


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = mid * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = []
            for i in range(blocks):
                stage.append(Bottleneck(cin, mid, stride if i == 0 else 1))
                cin = mid * 4
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Conv2dSame(nn.Conv2d):
    """timm's Conv2dSame: TF 'same' padding computed from the input size in forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph > 0 or pw > 0:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _cbs(cin: int, cout: int, k: int, s: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(Conv2dSame(cin, cout, k, s, groups=groups, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-3), nn.SiLU())


class MBConvB0(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, e: int, drop: float):
        super().__init__()
        mid = cin * e
        self.expand = _cbs(cin, mid, 1) if e != 1 else nn.Identity()
        self.dw = _cbs(mid, mid, k, s, groups=mid)
        sq = max(1, cin // 4)
        self.se1, self.se2 = nn.Conv2d(mid, sq, 1), nn.Conv2d(sq, mid, 1)
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False),
                                     nn.BatchNorm2d(cout, eps=1e-3))
        self.res = s == 1 and cin == cout
        self.drop = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.expand(x))
        s = F.adaptive_avg_pool2d(y, 1)
        y = y * torch.sigmoid(self.se2(F.silu(self.se1(s))))
        y = self.project(y)
        return x + self.drop(y) if self.res else y


class EfficientNetB0(nn.Module):
    CFG = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
           (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = _cbs(3, 32, 3, 2)
        blocks, cin, total = [], 32, sum(c[2] for c in self.CFG)
        for e, cout, n, s, k in self.CFG:
            for i in range(n):
                blocks.append(MBConvB0(cin, cout, k, s if i == 0 else 1, e,
                                       0.2 * len(blocks) / total))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _cbs(320, 1280, 1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.drop(x.mean((2, 3))))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int = 32):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(feats, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * 32) for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.values():
            feats.append(layer(feats))
        return torch.cat(feats, 1)


class DenseNet121(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        c = 64
        for i, n in enumerate((6, 12, 24, 16)):
            mods.append(DenseBlock(n, c))
            c += n * 32
            if i != 3:
                mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                         nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
                c //= 2
        mods.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, drop: float):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))
        self.drop = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.gamma * self.fc2(self.act(self.fc1(self.norm(y))))
        return x + self.drop(y.permute(0, 3, 1, 2))


class ConvNeXtTiny(nn.Module):
    """ConvNeXt with narrow stages (dims 24..192, depths 1, 1, 3, 1)."""

    def __init__(self, classes: int = 10, dims=(24, 48, 96, 192), depths=(1, 1, 3, 1)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        stages = []
        for i, (d, n) in enumerate(zip(dims, depths, strict=True)):
            down = [] if i == 0 else [LayerNorm2d(dims[i - 1], eps=1e-6),
                                      nn.Conv2d(dims[i - 1], d, 2, 2)]
            stages.append(nn.Sequential(*down, *(ConvNeXtBlock(d, 0.1) for _ in range(n))))
        self.stages = nn.Sequential(*stages)
        self.norm, self.head = nn.LayerNorm(dims[-1], eps=1e-6), nn.Linear(dims[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(self.norm(x.mean((-2, -1))))


ZOO = [
    ("resnet50", ResNet50),
    ("efficientnet-b0", EfficientNetB0),
    ("densenet121", DenseNet121),
    ("convnext", ConvNeXtTiny),
    ("hybrid-attention", HybridAttention),
]

"""Hand-written architectures of the families people bring (no torchvision): blocks of
MobileNetV2/V3, EfficientNet, DenseNet, ShuffleNet, ConvNeXt, U-Nets, ResNet-18, Inception,
torchaudio's M5, Kim's text CNN, 3-D nets, input normalisation, norms, activations, pads,
resampling, shared weights (the single-op probes live in tests/coverage_ops.py). ``NETS`` lists
``(name, factory, input_shape, dtype)``; every net is tiny so the oracles in
tests/test_coverage.py run in seconds.
"""

from __future__ import annotations

import torch
from coverage_ops import (
    Activations,
    AdaptiveNet,
    CeilPools,
    ChannelMLP,
    ChannelsFirstLayerNorm,
    GatedChunks,
    GroupNormNet,
    InstanceNormNet,
    LeNetFunctional,
    MishNet,
    Normalised,
    Pads,
    Resampling,
    Separable,
    SEViaLinear,
    SharedConv,
    TrainOnly,
    Transposed,
    Transposed3d,
)
from torch import nn
from torch.nn import functional as F


def bn_act(c: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c), act())


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6, residual when it fits."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid),
            nn.ReLU6(inplace=True), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), bn_act(8, nn.ReLU6))
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1), InvertedResidual(8, 12, 2),
                                    InvertedResidual(12, 12, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(12, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int, gate: type[nn.Module] = nn.Hardsigmoid,
                 act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act, self.fc2 = nn.Conv2d(c, r, 1), act(), nn.Conv2d(r, c, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class MobileNetV3Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(4, 16, 1, bias=False), nn.BatchNorm2d(16),
                                    nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 5, 1, 2, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.Hardswish())
        self.se = SqueezeExcite(16, 4)
        self.project = nn.Sequential(nn.Conv2d(16, 4, 1, bias=False), nn.BatchNorm2d(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(self.dw(self.expand(x))))


class MBConv(nn.Module):
    """EfficientNet: SiLU, squeeze-and-excitation by ``x * torch.sigmoid(s)``."""

    def __init__(self, c: int = 6, e: int = 3):
        super().__init__()
        h = c * e
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False),
                                nn.BatchNorm2d(h), nn.SiLU())
        self.se_reduce, self.se_expand = nn.Conv2d(h, 2, 1), nn.Conv2d(2, h, 1)
        self.act = nn.SiLU()
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.expand(x))
        s = y.mean((2, 3), keepdim=True)
        s = self.se_expand(self.act(self.se_reduce(s)))
        y = y * torch.sigmoid(s)
        return x + self.project(y)


class DenseBlock(nn.Module):
    def __init__(self, c: int = 4, growth: int = 3, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(c + i * growth), nn.ReLU(),
                          nn.Conv2d(c + i * growth, growth, 3, padding=1, bias=False))
            for i in range(layers))
        out = c + layers * growth
        self.transition = nn.Sequential(nn.BatchNorm2d(out), nn.ReLU(),
                                        nn.Conv2d(out, 4, 1), nn.AvgPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.transition(torch.cat(feats, 1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: chunk, a branch, cat, channel shuffle by view/transpose/view."""

    def __init__(self, c: int = 8):
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h),
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        out = torch.cat((a, self.branch(b)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.unit1, self.unit2 = ShuffleUnit(), ShuffleUnit()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(self.stem(x)))


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, channels-last LayerNorm + MLP (Linear over C), layer scale, residual."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), \
            nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        y = (self.gamma * y).permute(0, 3, 1, 2)
        return x + y


class ConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.block = ConvNeXtBlock()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(x)).mean([-2, -1]))


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """Down by max pool, up by ConvTranspose2d (or bilinear Upsample), F.pad to the skip's
    size read from ``x.size()``, cat."""

    def __init__(self, bilinear: bool = False):
        super().__init__()
        self.inc, self.down1 = double_conv(1, 4), double_conv(4, 8)
        self.down2 = double_conv(8, 8)
        if bilinear:
            self.up1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv1, self.conv2 = double_conv(16, 4), double_conv(8, 4)
        else:
            self.up1, self.up2 = nn.ConvTranspose2d(8, 8, 2, 2), nn.ConvTranspose2d(4, 4, 2, 2)
            self.conv1, self.conv2 = double_conv(16, 4), double_conv(8, 4)
        self.outc = nn.Conv2d(4, 2, 1)

    @staticmethod
    def join(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        dy, dx = x2.size()[2] - x1.size()[2], x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return torch.cat([x2, x1], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        y = self.conv1(self.join(self.up1(x3), x2))
        y = self.conv2(self.join(self.up2(y), x1))
        return self.outc(y)


class UNetInterp(nn.Module):
    """Decoder by ``F.interpolate(size=skip.shape[2:])`` (nearest), odd input size."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, 2, 1)
        self.dec = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.enc1(x)
        b = self.enc2(a)
        up = F.interpolate(b, size=a.shape[2:], mode="nearest")
        return self.dec(torch.cat([a, up], 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18, written out (the relu module is called many times)."""

    def __init__(self, width: int = 64, classes: int = 1000):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InceptionBranches(nn.Module):
    def __init__(self, c: int = 4):
        super().__init__()
        self.b1 = nn.Conv2d(c, 2, 1)
        self.b3 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.Conv2d(2, 2, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), nn.Conv2d(c, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


class M5(nn.Module):
    """torchaudio's M5 (1-D): pooling over ``x.shape[-1]``, permute, log_softmax over dim 2."""

    def __init__(self, n_in: int = 1, n_out: int = 5, stride: int = 4, ch: int = 8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv1d(n_in, ch, 80, stride), nn.BatchNorm1d(ch)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2, self.bn2 = nn.Conv1d(ch, ch, 3), nn.BatchNorm1d(ch)
        self.pool2 = nn.MaxPool1d(4)
        self.fc1 = nn.Linear(ch, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))
        x = F.avg_pool1d(x, x.shape[-1])
        x = x.permute(0, 2, 1)
        return F.log_softmax(self.fc1(x), dim=2)


class TextCNN(nn.Module):
    """Kim (2014): embedding, parallel Conv1d over time, max over ``c.size(2)``, cat, fc."""

    def __init__(self, vocab: int = 50, dim: int = 6, sizes: tuple[int, ...] = (2, 3, 4)):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.convs = nn.ModuleList(nn.Conv1d(dim, 3, k) for k in sizes)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * len(sizes), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).transpose(1, 2)
        pooled = []
        for conv in self.convs:
            c = F.relu(conv(x))
            pooled.append(F.max_pool1d(c, c.size(2)).squeeze(2))
        return self.fc(self.dropout(torch.cat(pooled, 1)))


class Conv3DNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
            nn.MaxPool3d((1, 2, 2), ceil_mode=True), nn.Conv3d(4, 4, (3, 3, 3), (2, 1, 1)),
            nn.ReLU(), nn.AdaptiveAvgPool3d(1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


NETS = [
    ("mobilenetv2", MobileNetV2, (3, 32, 32), "float32"),
    ("mobilenetv3-block", MobileNetV3Block, (4, 12, 12), "float32"),
    ("efficientnet-mbconv-se", MBConv, (6, 10, 10), "float32"),
    ("densenet-block", DenseBlock, (4, 12, 12), "float32"),
    ("shufflenet", ShuffleNet, (3, 16, 16), "float32"),
    ("convnext", ConvNeXt, (3, 32, 32), "float32"),
    ("unet-transposed", UNet, (1, 20, 22), "float32"),
    ("unet-bilinear", lambda: UNet(bilinear=True), (1, 18, 17), "float32"),
    ("unet-interpolate", UNetInterp, (1, 13, 11), "float32"),
    ("resnet18", lambda: ResNet18(width=4, classes=10), (3, 40, 40), "float32"),
    ("inception", InceptionBranches, (4, 11, 11), "float32"),
    ("m5-audio", M5, (1, 800), "float32"),
    ("text-cnn", TextCNN, (12,), "int64"),
    ("conv3d", Conv3DNet, (1, 6, 9, 9), "float32"),
    ("input-normalising", Normalised, (3, 8, 8), "float32"),
    ("groupnorm-prelu", GroupNormNet, (2, 9, 9), "float32"),
    ("instancenorm-mish", InstanceNormNet, (2, 10, 10), "float32"),
    ("mish-1d-ceil", MishNet, (2, 16), "float32"),
    ("ceil-mode-pools", CeilPools, (1, 12, 12), "float32"),
    ("adaptive-pools", AdaptiveNet, (1, 9, 9), "float32"),
    ("padding-layers", Pads, (1, 9, 10), "float32"),
    ("transposed-1d", Transposed, (2, 7), "float32"),
    ("transposed-3d", Transposed3d, (2, 6, 6, 7), "float32"),
    ("upsampling", Resampling, (1, 8, 8), "float32"),
    ("linear-nd", ChannelMLP, (3, 9), "float32"),
    ("chunk-split-stack", GatedChunks, (2, 7, 7), "float32"),
    ("shared-weights", SharedConv, (3, 12, 12), "float32"),
    ("activations", Activations, (1, 10, 10), "float32"),
    ("training-only-branch", TrainOnly, (1, 10, 10), "float32"),
    ("se-linear-expand", SEViaLinear, (2, 8, 8), "float32"),
    ("lenet-functional", LeNetFunctional, (1, 28, 28), "float32"),
    ("separable-dilated", Separable, (4, 11, 11), "float32"),
    ("layernorm-channels-first", ChannelsFirstLayerNorm, (2, 8, 8), "float32"),
]

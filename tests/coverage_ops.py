"""Hand-written probes of single operations and corner cases for the torch.fx importer:
input normalisation, norms (group, instance, channels-first layer norm), activations, ceil-mode
and adaptive pools, pads, transposed convs, resampling, channel MLPs, chunk/split/stack,
shared weights, training-only branches, a functional LeNet, separable dilated convs. Listed in
``coverage_nets.NETS`` with the architectures; each is tiny.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Normalised(nn.Module):
    """Input normalisation by buffers: ``(x - mean) / std`` with broadcasting constants."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv((x - self.mean) / self.std)


class GroupNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.PReLU(8),
                                  nn.Conv2d(8, 4, 3), nn.GroupNorm(1, 4, affine=False),
                                  nn.PReLU(), nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class InstanceNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.n1 = nn.Conv2d(2, 4, 3), nn.InstanceNorm2d(4, affine=True)
        self.c2 = nn.Conv2d(4, 4, 3)
        self.n2 = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.n2(self.c2(self.act(self.n1(self.c1(x))))))


class MishNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.Mish(), nn.Conv1d(4, 4, 3),
                                  nn.Mish(), nn.AvgPool1d(3, 2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CeilPools(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.p1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.p2 = nn.AvgPool2d(2, 2, 1, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p2(self.p1(self.conv(x)))


class AdaptiveNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.a1, self.a2 = nn.AdaptiveAvgPool2d((3, 5)), nn.AdaptiveMaxPool2d((2, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a2(self.a1(self.conv(x)))


class Pads(nn.Module):
    def __init__(self):
        super().__init__()
        self.p1, self.c1 = nn.ReflectionPad2d((1, 2, 0, 1)), nn.Conv2d(1, 2, 3)
        self.p2, self.c2 = nn.ReplicationPad2d(1), nn.Conv2d(2, 2, 3)
        self.p3, self.c3 = nn.ZeroPad2d((2, 0, 1, 1)), nn.Conv2d(2, 2, 3)
        self.p4 = nn.CircularPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(self.p1(x))
        x = self.c2(self.p2(x))
        x = self.c3(self.p3(x))
        x = F.pad(x, (1, 1, 2, 0), mode="reflect")
        x = F.pad(x, (0, 1), value=0.5)
        return self.p4(x)


class Transposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.t1 = nn.ConvTranspose1d(2, 4, 3, stride=2, padding=1, output_padding=1)
        self.t2 = nn.ConvTranspose1d(4, 4, 3, stride=3, dilation=2, groups=2)
        self.c = nn.Conv1d(4, 2, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.t2(self.t1(x)))


class Transposed3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.ConvTranspose3d(2, 4, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1),
                                    output_padding=(0, 1, 1), groups=2, bias=False)
        self.c = nn.Conv3d(4, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.t(x))


class Resampling(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3)
        self.u1 = nn.Upsample(scale_factor=3, mode="nearest")
        self.c2 = nn.Conv2d(2, 2, 3, stride=2)
        self.u2 = nn.Upsample(size=(9, 7), mode="bilinear")
        self.c3 = nn.Conv2d(2, 2, 2)
        self.u3 = nn.UpsamplingBilinear2d(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c2(self.u1(self.c1(x)))
        x = self.c3(self.u2(x))
        x = F.interpolate(self.u3(x), scale_factor=0.5, mode="nearest-exact")
        return x


class ChannelMLP(nn.Module):
    """Linear on N-D inputs: over the channels of a (N, C, L) map and over a (N, L, C) one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 2)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).transpose(1, 2)  # (N, L, C)
        y = self.fc2(self.act(self.fc1(y)))
        return y.transpose(-1, -2)


class GatedChunks(nn.Module):
    """GLU-style gates by chunk and split, and a stack of two branches."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 8, 3, padding=1)
        self.gate = nn.Sigmoid()
        self.conv2 = nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        y = a * self.gate(b)
        p, q = torch.split(y, [1, 3], dim=1)
        y = torch.cat([q, p], 1)
        s = torch.stack([y, y * 2.0], dim=1)  # (N, 2, 4, H, W)
        return self.conv2(s.sum(1))


class SharedConv(nn.Module):
    """One conv module applied twice (weights counted once) and a tied pair."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.tied_a, self.tied_b = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.tied_b.weight = self.tied_a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.relu(self.conv(x)))
        return self.tied_b(self.tied_a(x))


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        acts = [nn.ELU(), nn.LeakyReLU(0.2), nn.SELU(), nn.CELU(), nn.Softsign(), nn.Hardtanh(),
                nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(),
                nn.ReLU6(), nn.Mish(), nn.Softplus(), nn.LogSigmoid(), nn.Tanhshrink()]
        self.conv = nn.Conv2d(1, 2, 3)
        self.acts = nn.Sequential(*acts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.acts(self.conv(x))
        return F.hardswish(F.relu6(F.silu(F.mish(F.gelu(y)))))


class TrainOnly(nn.Module):
    """A branch taken only in training; the eval trace leaves it out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.aux = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.training:
            y = y + self.aux(y)
        return y


class SEViaLinear(nn.Module):
    """SE by global mean, Linear layers on the flattened vector, view back, expand_as."""

    def __init__(self, c: int = 6):
        super().__init__()
        self.conv = nn.Conv2d(2, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(c, 2), nn.Linear(2, c)
        self.relu, self.gate = nn.ReLU(), nn.Sigmoid()
        self.out = nn.Conv2d(c, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, c, _, _ = y.size()
        s = y.mean(dim=(2, 3))
        s = self.gate(self.fc2(self.relu(self.fc1(s)))).view(b, c, 1, 1)
        return self.out(y * s.expand_as(y))


class LeNetFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 5), nn.Conv2d(4, 6, 3)
        self.fc1, self.fc2 = nn.Linear(6 * 5 * 5, 10), nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), (2, 2))
        x = x.view(-1, self.num_flat(x))
        return F.softmax(self.fc2(F.relu(self.fc1(x))), dim=1)

    @staticmethod
    def num_flat(x: torch.Tensor) -> int:
        return x.size()[1] * x.size()[2] * x.size()[3]


class Separable(nn.Module):
    """Depthwise-separable convs with functional ReLU6/Hardswish, a dilated conv."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4)
        self.pw = nn.Conv2d(4, 6, 1)
        self.dw2 = nn.Conv2d(6, 6, 3, stride=2, groups=6, padding="valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(self.dw2(F.relu6(self.pw(self.dw(x)))))


class ChannelsFirstLayerNorm(nn.Module):
    """ConvNeXt's channels-first LayerNorm written out: mean/var over dim 1, affine params."""

    def __init__(self, c: int = 4, eps: float = 1e-6):
        super().__init__()
        self.conv = nn.Conv2d(2, c, 3)
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]

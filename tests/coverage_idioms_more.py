"""More idioms of :data:`coverage_idioms.IDIOMS`, from the model zoos (bench/bench_zoo.py):
timm's LambdaLayer with a relative-position table, EvoNorm-S0's group standard deviation and
RMS norm (AIMv2, newer ViTs). Each net is tiny; tests/test_coverage_idioms.py checks every
number of each by oracle.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LambdaRelPos(nn.Module):
    """timm's LambdaLayer with a relative-position table (lambda_resnet26rpt): a parameter
    indexed by a buffer of positions and expanded over the batch, then multiplied with the
    values: the same constant for every sample, though it spans the batch axis; a bias map
    added the same way."""

    def __init__(self, dim: int = 8, heads: int = 2, dim_qk: int = 4, feat: int = 4):
        super().__init__()
        self.heads, self.dim_qk, self.dim_v = heads, dim_qk, dim // heads
        self.qkv = nn.Conv2d(dim, heads * dim_qk + dim_qk + self.dim_v, 1, bias=False)
        self.pos_emb = nn.Parameter(torch.randn(2 * feat - 1, 2 * feat - 1, dim_qk))
        pos = torch.stack(torch.meshgrid(torch.arange(feat), torch.arange(feat),
                                         indexing="ij")).flatten(1)  # (2, M)
        self.register_buffer("rel", pos[:, None, :] - pos[:, :, None] + feat - 1)
        self.bias = nn.Parameter(torch.randn(1, dim, feat, feat))  # added expanded, too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = torch.split(self.qkv(x), [self.heads * self.dim_qk, self.dim_qk,
                                            self.dim_v], dim=1)
        q = q.reshape(b, self.heads, self.dim_qk, h * w).transpose(-1, -2)  # (B, n, M, K)
        v = v.reshape(b, self.dim_v, h * w).transpose(-1, -2)  # (B, M, V)
        k = F.softmax(k.reshape(b, self.dim_qk, h * w), dim=-1)  # (B, K, M)
        content = q @ (k @ v).unsqueeze(1)  # (B, n, M, V)
        pos = self.pos_emb[self.rel[0], self.rel[1]].expand(b, -1, -1, -1)  # (B, M, M, K)
        lam = (pos.transpose(-1, -2) @ v.unsqueeze(1)).unsqueeze(1)  # (B, 1, M, K, V)
        position = (q.unsqueeze(-2) @ lam).squeeze(-2)  # (B, n, M, V)
        out = (content + position).transpose(-1, -2).reshape(b, c, h, w)
        return out + self.bias.expand(b, -1, -1, -1)


class EvoNormS0(nn.Module):
    """timm's EvoNorm2dS0 (regnetz_b16_evos): ``x * sigmoid(v * x) / group_std(x)``, the
    group's standard deviation from ``Tensor.var`` over three axes, expanded back."""

    def __init__(self, channels: int = 8, groups: int = 2):
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.v = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.weight = nn.Parameter(torch.randn(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        b, c, h, w = x.shape
        g = x.reshape(b, self.groups, c // self.groups, h, w)
        std = g.var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(1e-5).sqrt()
        std = std.expand(g.shape).reshape(b, c, h, w)
        return x * (x * self.v).sigmoid() / std * self.weight


class RMSNormTokens(nn.Module):
    """RMS norm as AIMv2 and the newer ViTs use it: ``nn.RMSNorm`` on patch tokens, and
    ``F.rms_norm`` with a weight of its own on channels-last features."""

    def __init__(self, dim: int = 6):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 2, 2)
        self.norm = nn.RMSNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.gain = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        t = self.fc(self.norm(t))
        return F.rms_norm(t, (t.shape[-1],), self.gain, 1e-6)

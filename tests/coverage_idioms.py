"""Hand-written modules using the idioms real models bring (issue 21, section 2), one each:
functional batch norm with a module's own tensors (timm's BatchNormAct), ``F.linear``, weight
standardisation (``F.conv2d`` with a computed weight), functional layer/group norm, drop path
(a torchvision-style ``stochastic_depth``, identity in eval), average pooling that excludes
padding, ``matmul``/``@``/``bmm``/``einsum``, scaled dot-product and multi-head attention,
``F.normalize``, ``Tensor.norm``, ``addcmul`` (ResMLP's affine), a class token ``cat``,
indexing beyond one-axis slices, a Swin-V2-style relative-position MLP applied to a constant
buffer, TF-style "same" padding and a size check computed in ``forward``; from the model
zoos (bench/bench_zoo.py): a fixed blur filter in a buffer, a weight standardised with a
gain, group norm without bias, a learned relative-position ``attn_mask``, a conv applied to
a positional encoding made in ``forward``, windows and heads folded into the batch axis; and
from tests/coverage_idioms_more.py, a LambdaNet position table expanded over the batch,
EvoNorm's group standard deviation, RMS norm as a module and as a function.
``IDIOMS`` lists ``(name, factory, input_shape)``; each net is tiny.
"""

from __future__ import annotations

import math

import torch
from coverage_idioms_more import EvoNormS0, LambdaRelPos, RMSNormTokens
from torch import nn
from torch.nn import functional as F


def stochastic_depth(x: torch.Tensor, p: float, mode: str, training: bool = True
                     ) -> torch.Tensor:
    """torchvision.ops.stochastic_depth, written out (identity in eval)."""
    if not training or p == 0.0:
        return x
    shape = [x.shape[0]] + [1] * (x.dim() - 1) if mode == "row" else [1] * x.dim()
    noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * noise / (1 - p)


torch.fx.wrap("stochastic_depth")  # as torchvision does: fx sees one opaque call


class StochasticDepth(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(x, self.p, "row", self.training)


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d: F.batch_norm on the module's own tensors, then an activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum or 0.0, self.eps)
        return F.silu(x)


class StdConv2d(nn.Conv2d):
    """timm's StdConv2d: the weight standardised per filter in every forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class FunctionalNorms(nn.Module):
    """BatchNormAct, weight standardisation, F.layer_norm (LayerNorm2d) and F.group_norm."""

    def __init__(self):
        super().__init__()
        self.conv = StdConv2d(3, 8, 3, padding=1)
        self.bn = BatchNormAct2d(8)
        self.ln_w, self.ln_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.gn_w, self.gn_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.fc_w, self.fc_b = nn.Parameter(torch.randn(5, 8)), nn.Parameter(torch.zeros(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        x = F.layer_norm(x.permute(0, 2, 3, 1), (8,), self.ln_w, self.ln_b, 1e-6)
        x = F.group_norm(x.permute(0, 3, 1, 2), 2, self.gn_w, self.gn_b)
        return F.linear(x.mean((2, 3)), self.fc_w, self.fc_b)


class TFSamePad(nn.Module):
    """TF-style 'same' padding computed in forward (timm's tf_ EfficientNets) and a size
    check: both read ``x.shape``, which torch.fx cannot branch on."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 channels, got {x.shape[1]}")
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / 2) - 1) * 2 + 3 - ih, 0)
        pw = max((math.ceil(iw / 2) - 1) * 2 + 3 - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        x = self.pool(F.relu(self.conv(x)))
        return F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)


class DropPathBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.drop = StochasticDepth(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.conv(x))


class Products(nn.Module):
    """matmul, @, bmm and einsum on tokens of a conv map, and a weight applied by @."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.w = nn.Parameter(torch.randn(6, 4) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, N, 6)
        a = torch.matmul(t, t.transpose(-2, -1))  # (B, N, N)
        b = torch.bmm(a, t)  # (B, N, 6)
        c = torch.einsum("bnc,bmc->bnm", b, t)
        return (c @ t) @ self.w


class Attention(nn.Module):
    """A ViT-style attention block: q/k/v by one linear, softmax(q k^T) v by hand and by
    F.scaled_dot_product_attention, heads split and merged by reshape/permute."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        y1 = attn.softmax(dim=-1) @ v
        y2 = F.scaled_dot_product_attention(q, k, v)
        y = (y1 + y2).transpose(1, 2).reshape(b, n, c)
        return self.proj(y)


class HybridAttention(nn.Module):
    """A small hybrid CNN: conv stem, class token, attention and nn.MultiheadAttention over
    the flattened map, class-token head with F.normalize."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.GELU())
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos = nn.Parameter(torch.zeros(1, 17, 8))
        self.attn = Attention()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        t = t + self.attn(self.norm(t))
        y, _ = self.mha(t, t, t)
        t = t + y
        return self.head(F.normalize(t[:, 0], dim=-1))


class Affine(nn.Module):
    """ResMLP's affine: ``torch.addcmul(beta, alpha, x)``."""

    def __init__(self, c: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(c, 1, 1))
        self.beta = nn.Parameter(torch.zeros(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


class NormsAndIndexing(nn.Module):
    """addcmul, Tensor.norm as a gate, strided and multi-axis slices, an int index and None."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.affine = Affine(6)
        self.conv2 = nn.Conv2d(6, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine(self.conv(x))
        g = y.norm(dim=1, keepdim=True)
        y = y * torch.sigmoid(g)
        y = y[:, :, 1:-1:2, ::2]
        y = self.conv2(y)
        z = y[:, 0][:, None]
        return torch.cat([y, z], 1)


class RelPosMLP(nn.Module):
    """Swin-V2's continuous position bias: an MLP applied to a constant coordinate table
    (a buffer) inside forward, its output indexed by a buffer and added to the attention."""

    def __init__(self, n: int = 4, heads: int = 2, dim: int = 8):
        super().__init__()
        coords = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"))
        self.register_buffer("table", coords.flatten(1).T.float())
        self.register_buffer("index", torch.arange(n * n).repeat(n * n, 1) % (n * n))
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, heads))
        self.heads, self.dim = heads, dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.conv = nn.Conv2d(3, dim, 2, 2)
        self.unused = nn.Linear(3, 3)  # never called: listed as not used in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)
        b, n, c = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        bias = self.mlp(self.table)[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = q @ k.transpose(-2, -1) + 16 * torch.sigmoid(bias).unsqueeze(0)
        return (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


class FreshConstants(nn.Module):
    """Constants made from the input's shape (``new_zeros``, ``zeros_like``) and ``x.mT``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.new_zeros(1, 2, 1, 1) + torch.zeros_like(x)
        return self.conv(x) + z + x.mT.transpose(-2, -1)


class ScaledStdConv2d(nn.Conv2d):
    """NFNet's ScaledStdConv2d: the weight standardised per filter with a learned gain."""

    def __init__(self, cin: int, cout: int, k: int, **kw: object):
        super().__init__(cin, cout, k, **kw)
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))
        self.scale = self.weight[0].numel() ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         weight=(self.gain * self.scale).view(-1), training=True,
                         momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class FixedFilters(nn.Module):
    """timm's BlurPool2d (a binomial filter in a buffer applied by F.conv2d: no parameters),
    NFNet's gained weight standardisation and PoolFormer-V2's GroupNorm without bias."""

    def __init__(self):
        super().__init__()
        self.conv = ScaledStdConv2d(3, 4, 3, padding=1)
        f = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", ((f[:, None] * f[None, :]) / 16)[None, None].repeat(
            4, 1, 1, 1), persistent=False)
        self.gn_w = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.group_norm(F.relu(self.conv(x)), 1, self.gn_w, None)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=4)


class RelPosSDPA(nn.Module):
    """CoAtNet/MaxViT's relative-position bias given to F.scaled_dot_product_attention as
    ``attn_mask``: a learned table indexed by a buffer (a constant, learned values); BEiT's
    q/k/v bias ``cat(q_bias, k_bias, v_bias)`` with ``k_bias`` a zero buffer."""

    def __init__(self, n: int = 4, heads: int = 2, dim: int = 8):
        super().__init__()
        self.table = nn.Parameter(torch.randn(heads, 2 * n - 1) * 0.1)
        i = torch.arange(n * n)
        self.register_buffer("index", (i[:, None] % n - i[None, :] % n) + n - 1)
        self.conv = nn.Conv2d(3, dim, 2, 2)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)
        b, n, c = t.shape
        qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        q, k, v = F.linear(t, self.qkv.weight, qkv_bias).reshape(
            b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.table[:, self.index]  # (heads, n, n)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return y.transpose(1, 2).reshape(b, n, c)


class FourierPosition(nn.Module):
    """EdgeNeXt/XCiT's positional encoding: sin/cos of coordinates made in ``forward`` from
    the feature map's size, projected by a 1x1 conv (a module with parameters applied to a
    constant) and added; the channel check makes torch.fx refuse it (the run-capture)."""

    def __init__(self, dim: int = 6, hidden: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 3, padding=1)
        self.proj = nn.Conv2d(2 * hidden, dim, 1)
        self.hidden = hidden

    def pos(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        ys = torch.arange(h, dtype=torch.float32, device=device)[:, None].expand(h, w)
        xs = torch.arange(w, dtype=torch.float32, device=device)[None, :].expand(h, w)
        dim_t = 100.0 ** (torch.arange(self.hidden, device=device) / self.hidden)
        return torch.cat([(ys[None, :, :, None] / dim_t).sin(),
                          (xs[None, :, :, None] / dim_t).cos()], dim=3).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 channels, got {x.shape[1]}")
        y = self.conv(x)
        return y + self.proj(self.pos(y.shape[2], y.shape[3], y.device).to(y.dtype))


class WindowAttention(nn.Module):
    """Swin/MaxViT block attention: the map cut into 2x2 windows folded into the batch axis
    (``view``, ``permute``, ``reshape(-1, 4, C)``), a ViT q/k/v split of the folded tokens,
    softmax(q k^T) v, and the windows put back."""

    def __init__(self, dim: int = 8, heads: int = 2, ws: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 3, padding=1)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.heads, self.ws = heads, ws
        self.softmax = nn.Softmax(dim=-1)  # timm's Swin: a module on the folded windows
        self.out = nn.Conv2d(dim, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)
        b, h, w, c = y.shape
        ws = self.ws
        t = y.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(
            -1, ws * ws, c)
        bw, n, _ = t.shape
        q, k, v = self.qkv(t).reshape(bw, n, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        attn = self.softmax(q @ k.transpose(-2, -1) * 0.5)
        t = self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))
        y = t.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(
            b, h, w, c)
        return self.out(y.permute(0, 3, 1, 2))


class HeadsInBatch(nn.Module):
    """BoTNet's self-attention: q, k, v split from a 1x1 conv and reshaped to
    ``(B * heads, d, H*W)``; MaxViT's ``reshape(B, -1, 3, heads, d).transpose(1, 3)
    .unbind(2)`` (an unbind along an axis that is not the batch)."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.qkv = nn.Conv2d(3, 3 * dim, 1)
        self.heads, self.dim = heads, dim
        self.lin = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = torch.split(self.qkv(x), [self.dim] * 3, dim=1)
        d = self.dim // self.heads
        q = q.reshape(b * self.heads, d, -1).transpose(-1, -2)
        k = k.reshape(b * self.heads, d, -1)
        v = v.reshape(b * self.heads, d, -1).transpose(-1, -2)
        y = ((q @ k) * d ** -0.5).softmax(dim=-1) @ v  # (B * heads, HW, d)
        y = y.transpose(-1, -2).reshape(b, self.dim, h, w)
        t = y.flatten(2).transpose(1, 2)  # (B, HW, C)
        q2, k2, v2 = self.lin(t).reshape(b, -1, 3, self.heads, d).transpose(1, 3).unbind(2)
        return F.scaled_dot_product_attention(q2, k2, v2).transpose(1, 2).reshape(b, h, w, -1)


class RolledAfterGlobal(nn.Module):
    """A roll of a map whose every unit already sees the whole image (a global mean added,
    as after a window attention whose field is the union over the map): the roll keeps it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.conv2 = nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = y + y.mean((2, 3), keepdim=True)
        return self.conv2(torch.roll(y, shifts=(2, 1), dims=(2, 3)))


IDIOMS = [
    ("functional-norms", FunctionalNorms, (3, 6, 6)),
    ("tf-same-pad", TFSamePad, (3, 11, 13)),
    ("drop-path", DropPathBlock, (4, 6, 6)),
    ("products", Products, (2, 4, 4)),
    ("hybrid-attention", HybridAttention, (3, 8, 8)),
    ("norms-indexing", NormsAndIndexing, (2, 9, 9)),
    ("swinv2-relpos", RelPosMLP, (3, 8, 8)),
    ("fresh-constants", FreshConstants, (2, 6, 6)),
    ("fixed-filters", FixedFilters, (3, 8, 8)),
    ("relpos-sdpa", RelPosSDPA, (3, 8, 8)),
    ("fourier-position", FourierPosition, (3, 8, 8)),
    ("window-attention", WindowAttention, (3, 8, 8)),
    ("heads-in-batch", HeadsInBatch, (3, 4, 6)),
    ("roll-after-global", RolledAfterGlobal, (2, 9, 9)),
    ("lambda-relpos", LambdaRelPos, (8, 4, 4)),
    ("evonorm-group-std", EvoNormS0, (3, 6, 6)),
    ("rms-norm", RMSNormTokens, (3, 6, 6)),
]

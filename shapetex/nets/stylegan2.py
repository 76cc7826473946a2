"""StyleGAN2 building blocks (Karras et al., 2020): equalized layers, mapping network, modulated
convolution with demodulation, noise inputs, toRGB, and the residual discriminator with minibatch std.

Resampling is bilinear/average pooling rather than the original FIR filters: same structure, fewer
custom ops, and fast in channels_last and bf16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError

SQRT2 = math.sqrt(2.0)


class EqualLinear(nn.Module):
    """Linear layer with the equalized learning rate: weights stored N(0,1)/lr_mul, scaled at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, act: bool = False, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.act, self.stride = act, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.scale).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = F.conv2d(x, w, b, stride=self.stride, padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class MappingNetwork(nn.Module):
    """z ~ N(0, I) -> style w, through `layers` fully connected layers (lr multiplier 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:])])
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
        return self.net(z)


class ModulatedConv2d(nn.Module):
    """Weights scaled per sample by the style, then demodulated to unit output variance.

    Computed as (x * style) -> shared conv -> * demod, which is the same maths as per-sample weights
    but runs as one ordinary convolution over the batch (fast on CPU and GPU, any dtype).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.upsample = demodulate, upsample
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # B x in_ch
        weight = self.weight * self.scale
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = x * style.to(x.dtype)[:, :, None, None]
        x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (w * s)^2 for each sample and output channel
            dcoef = torch.rsqrt(torch.einsum("oikl,bi->bo", weight.square(), style.square()) + 1e-8)
            x = x * dcoef.to(x.dtype)[:, :, None, None]
        return x


class NoiseInjection(nn.Module):
    """Per-pixel Gaussian noise with a learned strength (starts at zero, as in StyleGAN2)."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.strength.to(x.dtype) * noise


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.noise(self.conv(x, w), noise)
        return F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation; outputs are summed over resolutions (skip architecture)."""

    def __init__(self, in_ch: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias.to(x.dtype)[None, :, None, None]
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one feature map: the std over a group of consecutive samples, averaged.

    Groups are consecutive samples, so a batch made of [fake; real] halves (each divisible by the
    group) never mixes the two inside a group.
    """
    b, c, h, w = x.shape
    g = math.gcd(group, b)
    y = x.float().reshape(b // g, g, c, h, w)
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # b//g
    y = y.repeat_interleave(g).reshape(b, 1, 1, 1).expand(b, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, act=True)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, act=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (x + skip) / SQRT2


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    return min(max(channel_base // res, 16), channel_max)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: fromRGB, residual blocks down to 4x4, minibatch std, fc -> logit."""

    def __init__(self, size: int, channel_base: int = 8192, channel_max: int = 256, mbstd_group: int = 4,
                 in_channels: int = 3):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ConfigError(f"discriminator size must be a power of two >= 8, got {size}")
        ch = lambda r: channels_at(r, channel_base, channel_max)
        self.from_rgb = EqualConv2d(in_channels, ch(size), 1, act=True)
        blocks, res = [], size
        while res > 4:
            blocks.append(DiscriminatorBlock(ch(res), ch(res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.mbstd_group = mbstd_group
        self.final_conv = EqualConv2d(ch(4) + 1, ch(4), 3, act=True)
        self.fc = EqualLinear(ch(4) * 16, ch(4), act=True)
        self.out = EqualLinear(ch(4), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(x))
        x = self.final_conv(minibatch_stddev(x, self.mbstd_group))
        return self.out(self.fc(x.flatten(1))).squeeze(1).float()

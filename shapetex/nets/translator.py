"""The streamlined translator's generator (arXiv 2411.10368): a plain convolutional encoder to a
bottleneck feature map, and a StyleGAN2 synthesis network that starts from that map instead of a
learned constant. z (through the mapping network) is the only source of variety besides noise inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .stylegan2 import SQRT2, EqualConv2d, EqualLinear, MappingNetwork, StyledConv, ToRGB, channels_at


def _log2_steps(size: int, bottleneck_res: int) -> int:
    if size < bottleneck_res or size % bottleneck_res or (size // bottleneck_res) & (size // bottleneck_res - 1):
        raise ConfigError(f"image size {size} must be the bottleneck resolution {bottleneck_res} times a power of 2")
    return int(math.log2(size // bottleneck_res))


class ScaledReLU(nn.Module):
    """ReLU times sqrt(2): keeps unit activation variance through He-scaled layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) * SQRT2


class Encoder(nn.Module):
    """conv 3x3 + ReLU, then per halving: conv 3x3 stride 2 + ReLU and conv 3x3 + ReLU; 1x1 to the
    bottleneck channels. Maps S x S to bottleneck_res x bottleneck_res x bottleneck_channels.

    Plain convolutions, but with the equalized learning rate of the rest of the StyleGAN2 networks:
    with Adam at StyleGAN2's learning rate, ordinary conv weights (~1/sqrt(fan_in)) would move several
    percent per step and the encoder would forget the input before the decoder learns to use it.
    """

    def __init__(self, size: int, bottleneck_res: int = 16, bottleneck_channels: int = 128,
                 channel_base: int = 4096, channel_max: int = 256, in_channels: int = 3):
        super().__init__()
        steps = _log2_steps(size, bottleneck_res)
        ch = lambda r: channels_at(r, channel_base, channel_max)
        layers: list[nn.Module] = [EqualConv2d(in_channels, ch(size), 3), ScaledReLU()]
        res = size
        for _ in range(steps):
            layers += [EqualConv2d(ch(res), ch(res // 2), 3, stride=2), ScaledReLU(),
                       EqualConv2d(ch(res // 2), ch(res // 2), 3), ScaledReLU()]
            res //= 2
        layers += [EqualConv2d(ch(res), bottleneck_channels, 1)]
        self.net = nn.Sequential(*layers)
        self.downsampling = 2**steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FourierFeatures(nn.Module):
    """Sinusoids over the image plane whose rotation and shift come from w (StyleGAN3's synthesis input).

    Inside a flat region the encoder's features are constant, and a stack of modulated 3x3 convolutions
    can only scale them: nothing there can draw a periodic texture whose angle depends on z. These give
    every decoder resolution the same continuous sinusoids, sampled on its grid (components above 0.45
    cycles per pixel are dropped there, so nothing aliases), rotated and shifted per sample by an affine
    map of w. Off (count 0) by default: the paper's decoder has no such input.
    """

    def __init__(self, count: int, w_dim: int, max_cycles: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        angle = torch.rand(count, generator=g) * 2 * math.pi
        radius = 1.0 + torch.rand(count, generator=g) * (max_cycles - 1.0)  # cycles per image side
        self.register_buffer("freqs", torch.stack([angle.cos(), angle.sin()], 1) * radius[:, None])
        self.register_buffer("phases", torch.rand(count, generator=g))
        self.transform = EqualLinear(w_dim, 4)  # (cos, sin) of the rotation, then (tx, ty) in image sides

    def forward(self, w: torch.Tensor, res: int) -> torch.Tensor:
        t = self.transform(w)
        rot = t[:, :2] / t[:, :2].norm(dim=1, keepdim=True).clamp_min(1e-8)
        c, s = rot[:, 0, None], rot[:, 1, None]
        f = self.freqs[None]  # 1 x F x 2, rotated per sample
        fx, fy = c * f[..., 0] - s * f[..., 1], s * f[..., 0] + c * f[..., 1]  # B x F
        coords = (torch.arange(res, device=w.device, dtype=w.dtype) + 0.5) / res - 0.5
        shift = (fx * t[:, 2, None] + fy * t[:, 3, None])[..., None, None]
        arg = fx[..., None, None] * coords[None, None, None, :] + fy[..., None, None] * coords[None, None, :, None]
        out = torch.sin(2 * math.pi * (arg + shift + self.phases[None, :, None, None]))
        keep = (self.freqs.norm(dim=1) <= 0.45 * res).to(out.dtype)
        return out * keep[None, :, None, None]


class FeatureDecoder(nn.Module):
    """StyleGAN2 synthesis from a feature map: at the bottleneck resolution a styled conv and toRGB, then
    per doubling an upsampling styled conv, a styled conv and a toRGB whose output is added to the
    upsampled running RGB image (skip architecture). With `fourier_features` > 0, each resolution's
    first styled conv also gets `FourierFeatures` (through a 1x1 conv) added to its input."""

    def __init__(self, size: int, bottleneck_res: int = 16, bottleneck_channels: int = 128, w_dim: int = 256,
                 channel_base: int = 4096, channel_max: int = 256, fourier_features: int = 0,
                 fourier_init: float = 0.0):
        super().__init__()
        steps = _log2_steps(size, bottleneck_res)
        ch = lambda r: channels_at(r, channel_base, channel_max)
        self.input_conv = StyledConv(bottleneck_channels, ch(bottleneck_res), w_dim)
        self.input_rgb = ToRGB(ch(bottleneck_res), w_dim)
        self.ups, self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        res = bottleneck_res
        for _ in range(steps):
            self.ups.append(StyledConv(ch(res), ch(res * 2), w_dim, upsample=True))
            self.convs.append(StyledConv(ch(res * 2), ch(res * 2), w_dim))
            self.rgbs.append(ToRGB(ch(res * 2), w_dim))
            res *= 2
        self.fourier = FourierFeatures(fourier_features, w_dim, 0.4 * size) if fourier_features else None
        if self.fourier is not None:
            self.fourier_in = nn.ModuleList([EqualConv2d(fourier_features, bottleneck_channels, 1, bias=False)] + [
                EqualConv2d(fourier_features, ch(bottleneck_res * 2 ** (i + 1)), 1, bias=False) for i in range(steps)])
            # learned strengths, zero at the start as StyleGAN2's noise inputs (the decoder then starts as
            # the paper's), except the output resolution's at `fourier_init`: D sees one image at a time,
            # so it cannot ask for z-dependent stripes directly, but it has no reason to remove them either
            self.fourier_strength = nn.Parameter(torch.zeros(steps + 1))
            with torch.no_grad():
                self.fourier_strength[-1] = fourier_init

    def _with_fourier(self, x: torch.Tensor, w: torch.Tensor, i: int) -> torch.Tensor:
        if self.fourier is None:
            return x
        return x + self.fourier_strength[i].to(x.dtype) * self.fourier_in[i](self.fourier(w, x.shape[-1]).to(x.dtype))

    @property
    def num_ws(self) -> int:
        """Style inputs, as StyleGAN2 counts them: two at the bottleneck, two per doubling (each toRGB shares
        the w of the next layer)."""
        return 2 + 2 * len(self.ups)

    def forward(self, features: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """w: B x w_dim (one style for every layer) or B x num_ws x w_dim (per layer, for style mixing)."""
        # one w: every layer gets the very tensor (not views of an expanded one), as before style mixing
        layer_w = (lambda i: w) if w.dim() == 2 else (lambda i: w[:, i])
        x = self.input_conv(self._with_fourier(features, layer_w(0), 0), layer_w(0))
        rgb = self.input_rgb(x, layer_w(1), None)
        for i, (up, conv, to_rgb) in enumerate(zip(self.ups, self.convs, self.rgbs)):
            x = conv(self._with_fourier(up(x, layer_w(1 + 2 * i)), layer_w(1 + 2 * i), i + 1), layer_w(2 + 2 * i))
            rgb = to_rgb(x, layer_w(3 + 2 * i), rgb)
        return rgb


class TranslatorGenerator(nn.Module):
    """G(x, z) = decoder(encoder(x), mapping(z))."""

    def __init__(self, size: int, bottleneck_res: int = 16, bottleneck_channels: int = 128, z_dim: int = 128,
                 w_dim: int = 256, mapping_layers: int = 4, channel_base: int = 4096, channel_max: int = 256,
                 fourier_features: int = 0, fourier_init: float = 0.0):
        super().__init__()
        self.size, self.z_dim = size, z_dim
        self.encoder = Encoder(size, bottleneck_res, bottleneck_channels, channel_base, channel_max)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.decoder = FeatureDecoder(size, bottleneck_res, bottleneck_channels, w_dim, channel_base, channel_max,
                                      fourier_features, fourier_init)

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the encoder's total downsampling)."""
        return self.encoder.downsampling

    def forward(self, x: torch.Tensor, z: torch.Tensor, mix_z: torch.Tensor | None = None,
                mix_from: int | None = None) -> torch.Tensor:
        """With `mix_z`, layers from `mix_from` on take mapping(mix_z)'s style (StyleGAN2's style mixing)."""
        w = self.mapping(z)
        if mix_z is not None and mix_from is not None and mix_from < self.decoder.num_ws:
            ws = w[:, None].repeat(1, self.decoder.num_ws, 1)
            ws[:, mix_from:] = self.mapping(mix_z)[:, None]
            w = ws
        return self.decoder(self.encoder(x), w)

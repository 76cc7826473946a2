"""PatchGAN discriminators (Isola et al., 2017): a fully convolutional net whose every output logit judges
one patch of the input.

`layers` stride-2 4x4 convolutions (C64-C128-C256-..., channels capped at 8x base; no norm on the first),
one stride-1 4x4 convolution, and a stride-1 4x4 convolution to one logit per position. Receptive fields:
layers=1 -> 16, 2 -> 34, 3 -> 70 (the paper's default), 4 -> 142, 5 -> 286 (the paper's ImageGAN-sized
variant). layers=0 is the 1x1 PixelGAN (1x1 convolutions only).

`in_channels` is whatever the discriminator sees: 6 for pix2pix's conditional D (input and output
concatenated), 3 for an unconditional one (CycleGAN).
"""

from __future__ import annotations

from torch import nn

from ..config import ConfigError
from .layers import norm_layer


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 6, layers: int = 3, base_channels: int = 64, norm: str = "batch",
                 max_mult: int = 8):
        super().__init__()
        if layers < 0:
            raise ConfigError(f"PatchGAN layers must be >= 0, got {layers}")
        self.layers = layers
        bias = norm != "batch"
        mods: list[nn.Module] = []
        if layers == 0:  # PixelGAN: every logit sees one pixel
            c = base_channels
            mods += [nn.Conv2d(in_channels, c, 1), nn.LeakyReLU(0.2, True),
                     nn.Conv2d(c, 2 * c, 1, bias=bias), norm_layer(norm, 2 * c), nn.LeakyReLU(0.2, True),
                     nn.Conv2d(2 * c, 1, 1)]
        else:
            prev = in_channels
            for i in range(layers + 1):  # `layers` stride-2 convolutions, then one stride-1
                c = base_channels * min(2**i, max_mult)
                stride = 2 if i < layers else 1
                mods += [nn.Conv2d(prev, c, 4, stride, 1, bias=bias or i == 0)]
                if i > 0:
                    mods.append(norm_layer(norm, c))
                mods.append(nn.LeakyReLU(0.2, True))
                prev = c
            mods.append(nn.Conv2d(prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)

    def conv_specs(self) -> list[tuple[int, int]]:
        """(kernel, stride) of every convolution, input side first."""
        return [(m.kernel_size[0], m.stride[0]) for m in self.net if isinstance(m, nn.Conv2d)]

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.conv_specs())


def receptive_field(specs: list[tuple[int, int]]) -> int:
    """Side of the input region one output position depends on, for a stack of (kernel, stride) convolutions:
    walking back from the output, r <- (r - 1) * stride + kernel."""
    r = 1
    for k, s in reversed(specs):
        r = (r - 1) * s + k
    return r

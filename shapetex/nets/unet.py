"""The pix2pix generator: a U-Net (Isola et al., 2017, appendix 6.1.1), layer for layer the `UnetGenerator`
of pytorch-CycleGAN-and-pix2pix (unet_128 is depth 7, unet_256 depth 8), so its weights load unchanged
(`shapetex.reference_weights` maps the names) and give the same outputs.

Encoder level i: LeakyReLU(0.2) (not on the image), a stride-2 4x4 convolution, and norm (not on the first
level, nor on the innermost one, whose map is 1x1 when depth = log2(size)). Its output, before the next
level's LeakyReLU, is the skip feature. Decoder layer j (j = 0 at the bottleneck): ReLU, a stride-2 4x4
transposed convolution and norm, on ReLU(bottleneck) for j = 0 and on ReLU([skip, previous output]) after;
the last layer maps [skip, output] to 3 channels with a biased transposed convolution and tanh. The
reference gets the same by in-place activations: its skip tensor is LeakyReLU'd in place before being
concatenated and its parent's ReLU runs on the concatenation, and ReLU(LeakyReLU(x)) = ReLU(x).

Convolutions carry no bias before batch norm (the last one always has one). Dropout 0.5 follows the norm of
decoder layers 1 .. depth-5 (the reference's blocks at 8 x base width between the innermost and the
4 x base block: unet_256 has 3, unet_128 2; none at depth 5 or less); `dropout_layers` sets another count
from layer 1 on. Dropout is the only noise source; it can stay on at test time (`test_dropout`), as the paper
does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .layers import norm_layer


def depth_for_size(size: int) -> int:
    """Down-sampling steps that take a size x size image to a 1x1 bottleneck (8 at 256, as in the paper)."""
    depth = int(round(math.log2(size)))
    if 2**depth != size:
        raise ConfigError(f"the U-Net wants a power-of-two size, got {size}")
    return depth


def level_channels(depth: int, base: int, max_mult: int = 8) -> list[int]:
    """Encoder channels per level: 64-128-256-512-512-... for base 64."""
    return [base * min(2**i, max_mult) for i in range(depth)]


def reference_dropout_layers(depth: int) -> int:
    """How many decoder layers the reference drops out: its (num_downs - 5) blocks at 8 x base width."""
    return max(depth - 5, 0)


class UNetGenerator(nn.Module):
    def __init__(self, depth: int, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 norm: str = "batch", dropout: float = 0.5, dropout_layers: int | None = None,
                 test_dropout: bool = True):
        super().__init__()
        if depth < 2:
            raise ConfigError(f"U-Net depth must be at least 2, got {depth}")
        self.depth = depth
        self.dropout = dropout
        self.test_dropout = test_dropout
        bias = norm != "batch"  # a following batch norm makes a conv bias redundant (the reference drops it)
        chans = level_channels(depth, base_channels)
        self.encoder = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(chans):
            use_norm = 0 < i < depth - 1
            self.encoder.append(nn.Sequential(nn.Conv2d(prev, c, 4, 2, 1, bias=bias),
                                              norm_layer(norm, c) if use_norm else nn.Identity()))
            prev = c
        # Decoder layer j outputs at the resolution of encoder level depth-2-j; every layer but the first sees
        # that level's skip before its input.
        self.decoder = nn.ModuleList()
        for j in range(depth - 1):
            level = depth - 2 - j
            c_in = chans[-1] if j == 0 else 2 * chans[level + 1]
            self.decoder.append(nn.Sequential(nn.ConvTranspose2d(c_in, chans[level], 4, 2, 1, bias=bias),
                                              norm_layer(norm, chans[level])))
        self.final = nn.ConvTranspose2d(2 * chans[0], out_channels, 4, 2, 1)
        n_drop = reference_dropout_layers(depth) if dropout_layers is None else dropout_layers
        self.dropout_at = set(range(1, min(n_drop, depth - 2) + 1))

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features before their activation, outermost first; the last one is the bottleneck."""
        feats = []
        for i, layer in enumerate(self.encoder):
            x = layer(x if i == 0 else F.leaky_relu(x, 0.2))
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        drop = self.training or self.test_dropout
        for j, layer in enumerate(self.decoder):
            if j > 0:
                h = torch.cat([feats[self.depth - 1 - j], h], dim=1)  # [skip, below]: the reference's order
            h = layer(F.relu(h))
            if j in self.dropout_at and self.dropout > 0:
                h = F.dropout(h, self.dropout, training=drop)
        return torch.tanh(self.final(F.relu(torch.cat([feats[0], h], dim=1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

"""The pix2pix generator: a U-Net (Isola et al., 2017, appendix 6.1.1).

Encoder: `depth` stride-2 4x4 convolutions (Conv-Norm-LeakyReLU(0.2); no norm on the first layer and none
on the innermost one, whose map is 1x1 when depth = log2(size)). Decoder: stride-2 4x4 transposed
convolutions (ConvT-Norm-[Dropout]-ReLU); decoder layer i takes the previous decoder output concatenated
with the encoder feature at the same resolution (the skip connections). The last layer maps to 3 channels
and a tanh. Dropout (0.5 on the first three decoder layers, as in the paper) is the only noise source;
it can stay on at test time (`test_dropout`), as the paper does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be batch, instance or none, got {kind!r}")


def depth_for_size(size: int) -> int:
    """Down-sampling steps that take a size x size image to a 1x1 bottleneck (8 at 256, as in the paper)."""
    depth = int(round(math.log2(size)))
    if 2**depth != size:
        raise ValueError(f"the U-Net wants a power-of-two size, got {size}")
    return depth


def level_channels(depth: int, base: int, max_mult: int = 8) -> list[int]:
    """Encoder channels per level: 64-128-256-512-512-... for base 64."""
    return [base * min(2**i, max_mult) for i in range(depth)]


class UNetGenerator(nn.Module):
    def __init__(self, depth: int, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 norm: str = "batch", dropout: float = 0.5, dropout_layers: int = 3, test_dropout: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"U-Net depth must be at least 2, got {depth}")
        self.depth = depth
        self.dropout = dropout
        self.test_dropout = test_dropout
        bias = norm != "batch"  # a following batch norm makes a conv bias redundant
        chans = level_channels(depth, base_channels)
        self.encoder = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(chans):
            use_norm = 0 < i < depth - 1
            self.encoder.append(nn.Sequential(
                nn.Conv2d(prev, c, 4, 2, 1, bias=bias or not use_norm),
                norm_layer(norm, c) if use_norm else nn.Identity(),
                nn.LeakyReLU(0.2, inplace=True)))
            prev = c
        # Decoder layer j (j = 0 at the bottleneck) outputs at the resolution of encoder level depth-2-j;
        # every layer but the first sees its input concatenated with that level's skip.
        self.decoder = nn.ModuleList()
        self.dropout_at = set(range(min(dropout_layers, depth - 1)))
        for j in range(depth - 1):
            level = depth - 2 - j
            c_in = chans[-1] if j == 0 else 2 * chans[level + 1]
            self.decoder.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, chans[level], 4, 2, 1, bias=bias),
                norm_layer(norm, chans[level])))
        self.final = nn.ConvTranspose2d(2 * chans[0], out_channels, 4, 2, 1)

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, outermost first; the last one is the bottleneck."""
        feats = []
        for layer in self.encoder:
            x = layer(x)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        drop = self.training or self.test_dropout
        for j, layer in enumerate(self.decoder):
            if j > 0:
                h = torch.cat([h, feats[self.depth - 1 - j]], dim=1)
            h = layer(h)
            if j in self.dropout_at and self.dropout > 0:
                h = F.dropout(h, self.dropout, training=drop)
            h = F.relu(h)
        return torch.tanh(self.final(torch.cat([h, feats[0]], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

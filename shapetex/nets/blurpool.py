"""Antialiased down- and up-sampling (Zhang, "Making convolutional networks shift-invariant again", ICML 2019),
as CUT's reference generator uses them: a fixed binomial blur applied per channel, with a stride.

- BlurDownsample: reflect-pad 1, blur with the 3x3 filter [1, 2, 1] x [1, 2, 1] / 16, stride 2 (H -> H / 2).
- BlurUpsample: replicate-pad 1, transposed blur with [1, 3, 3, 1] x [1, 3, 3, 1] / 64 x 4, stride 2, cropped
  to 2H x 2W (a constant image stays constant).
The filters are fixed (non-persistent buffers: not in checkpoints, nothing to train).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def binomial_filter(size: int) -> torch.Tensor:
    """The size x size outer product of the binomial row of that length, normalised to sum 1."""
    rows = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}
    a = torch.tensor(rows[size])
    f = a[:, None] * a[None, :]
    return f / f.sum()


class BlurDownsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt.to(x.dtype), stride=2, padding=2,
                               groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]

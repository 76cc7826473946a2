"""Weight initialisation shared by the networks of every method."""

from __future__ import annotations

from torch import nn


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """pytorch-CycleGAN-and-pix2pix's 'normal' init: conv and linear weights N(0, std), their biases 0; batch
    norm weights N(1, std), biases 0 (instance norm here has no parameters)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)

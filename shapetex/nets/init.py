"""Weight initialisation shared by the networks of every method."""

from __future__ import annotations

from torch import nn

from ..config import ConfigError

INIT_KINDS = ("normal", "xavier")


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """pytorch-CycleGAN-and-pix2pix's 'normal' init: conv and linear weights N(0, std), their biases 0; batch
    norm weights N(1, std), biases 0 (instance norm here has no parameters)."""
    init_weights(module, "normal", std)


def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> None:
    """The references' `--init_type normal | xavier` with `--init_gain gain`: conv and linear weights N(0, gain)
    or Xavier-normal scaled by gain (CUT's default), biases 0; batch norm weights N(1, gain), biases 0."""
    if kind not in INIT_KINDS:
        raise ConfigError(f"init must be one of {', '.join(INIT_KINDS)}, got {kind!r}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            else:
                nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

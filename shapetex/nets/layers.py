"""Small pieces several networks and methods share: the norm layer by name, parameter counts, padding an
input to a network's size multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """batch: BatchNorm2d; instance: InstanceNorm2d without affine parameters or running statistics (as in
    pytorch-CycleGAN-and-pix2pix); none: Identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"norm must be batch, instance or none, got {kind!r}")


def count_parameters(*modules: nn.Module) -> int:
    """Parameters of all the modules together, each tensor counted once even if several modules hold it."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)

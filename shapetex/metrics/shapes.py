"""Scores for the built-in data that need no pretrained network.

- silhouette score: IoU between the foreground masks of input and output (does the output keep the
  input's shape and place?). The background colour is fixed in the built-in data, so a pixel belongs
  to the foreground when it is far from that colour.
- texture score (the stripes task): local contrast inside the output's own foreground, relative to real
  striped images (does the object carry the texture-set's stripes?). Plain fills score ~0, real stripes ~1.
Images are float tensors N x 3 x H x W in [-1, 1].
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..data.builtin import BACKGROUND, builtin_images
from ..data.images import uint8_to_float

_BG = uint8_to_float(torch.tensor(BACKGROUND, dtype=torch.uint8))
FOREGROUND_THRESHOLD = 0.3  # max channel distance from the background colour, in [-1, 1] units


def _window(size: int) -> int:
    return max(3, (size // 16) | 1)


def foreground_mask(images: torch.Tensor) -> torch.Tensor:
    """N x H x W bool: pixels that are not background, with a 3x3 majority vote against speckle."""
    dist = (images.float() - _BG.to(images.device)[None, :, None, None]).abs().amax(dim=1, keepdim=True)
    raw = (dist > FOREGROUND_THRESHOLD).float()
    return (F.avg_pool2d(raw, 3, stride=1, padding=1, count_include_pad=False) > 0.5).squeeze(1)


def silhouette_iou(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of the foreground masks of input and output (1 for an empty pair)."""
    a, b = foreground_mask(inputs), foreground_mask(outputs)
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def silhouette_score(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    return float(silhouette_iou(inputs, outputs).mean())


def luminance(images: torch.Tensor) -> torch.Tensor:
    """N x H x W float luminance (ITU-R BT.601 weights)."""
    return (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).float()


def eroded_foreground(images: torch.Tensor) -> torch.Tensor:
    """N x H x W bool: the foreground eroded so the silhouette's own edge does not count as texture."""
    k = _window(images.shape[-1])
    fg = foreground_mask(images).float().unsqueeze(1)
    return (-F.max_pool2d(-fg, k + 2, stride=1, padding=(k + 2) // 2)).squeeze(1) > 0.5


def _local_contrast(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(local std of luminance, eroded foreground mask), both N x H x W."""
    k = _window(images.shape[-1])
    lum = luminance(images).unsqueeze(1)
    mean = F.avg_pool2d(lum, k, stride=1, padding=k // 2, count_include_pad=False)
    sq = F.avg_pool2d(lum * lum, k, stride=1, padding=k // 2, count_include_pad=False)
    std = (sq - mean * mean).clamp_min(0).sqrt().squeeze(1)
    return std, eroded_foreground(images)


def raw_texture(images: torch.Tensor) -> torch.Tensor:
    """Per-image mean local contrast over the eroded foreground (0 where there is no foreground)."""
    std, mask = _local_contrast(images)
    area = mask.flatten(1).sum(1)
    total = (std * mask).flatten(1).sum(1)
    return torch.where(area > 0, total / area.clamp_min(1), torch.zeros_like(total))


@lru_cache(maxsize=8)
def _reference_texture(size: int) -> float:
    real = uint8_to_float(builtin_images("texture-holdout", 64, size, seed=12345, task="stripes"))
    return float(raw_texture(real).mean())


def texture_score(images: torch.Tensor) -> float:
    """Mean local contrast inside the foreground, divided by that of real striped images at this size."""
    return float(raw_texture(images).mean()) / _reference_texture(images.shape[-1])


def shape_scores(inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    return {"silhouette": silhouette_score(inputs, outputs), "texture": texture_score(outputs)}

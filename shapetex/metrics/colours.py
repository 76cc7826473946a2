"""Scores for the built-in colours task: which family an output's fill comes from, and what z changes in it.

Each output's fill is the mean colour over its eroded foreground (the silhouette less its anti-aliased edge).
Its hue tells the family: the shape set fills from warm hues, the texture set from cool ones
(`shapetex.data.builtin`). Only the texture set has the cool family, so a translator that takes the texture
set's feature draws cool fills, and one that draws them for different z in different hues uses z as the
paper's translator does. Images are float tensors in [-1, 1].
"""

from __future__ import annotations

import torch

from ..data.builtin import SHAPE_HUES, TEXTURE_HUES
from .image_scores import pixel_diversity
from .shapes import eroded_foreground

MIN_SATURATION = 0.25  # below it a fill is grey, of no family


def fill_colours(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x 3 mean RGB in [0, 1] over the eroded foreground, N bool: the image has such a foreground)."""
    mask = eroded_foreground(images).unsqueeze(1).float()
    area = mask.sum((1, 2, 3))
    rgb = ((images.float() + 1) / 2 * mask).sum((2, 3)) / area.clamp_min(1)[:, None]
    return rgb.clamp(0, 1), area > 0


def rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N x 3 RGB in [0, 1] -> (hue in degrees [0, 360), saturation, value), each N."""
    value, top = rgb.max(1)
    low = rgb.min(1).values
    chroma = value - low
    r, g, b = rgb.unbind(1)
    safe = chroma.clamp_min(1e-12)
    hue = torch.stack([((g - b) / safe) % 6, (b - r) / safe + 2, (r - g) / safe + 4], 1).gather(1, top[:, None])[:, 0]
    hue = torch.where(chroma > 0, hue * 60, torch.zeros_like(hue)) % 360
    return hue, torch.where(value > 0, chroma / value.clamp_min(1e-12), torch.zeros_like(value)), value


def hue_distance(hue: torch.Tensor, family: tuple[float, float]) -> torch.Tensor:
    """Degrees around the colour circle from each hue to the nearest hue of a family's range (0 inside it)."""
    lo, hi = family
    inside = (hue - lo) % 360 <= (hi - lo)
    to_edge = torch.minimum(torch.minimum((hue - lo) % 360, (lo - hue) % 360),
                            torch.minimum((hue - hi) % 360, (hi - hue) % 360))
    return torch.where(inside, torch.zeros_like(hue), to_edge)


def fill_family(images: torch.Tensor) -> list[str]:
    """Per image: 'texture' (a cool fill), 'shape' (a warm fill), or 'none' (no foreground, or grey)."""
    rgb, has_fill = fill_colours(images)
    hue, sat, _ = rgb_to_hsv(rgb)
    nearer_texture = hue_distance(hue, TEXTURE_HUES) < hue_distance(hue, SHAPE_HUES)
    coloured = has_fill & (sat >= MIN_SATURATION)
    return ["none" if not c else "texture" if t else "shape" for c, t in zip(coloured.tolist(),
                                                                             nearer_texture.tolist())]


def texture_taken(images: torch.Tensor) -> float:
    """The share of images whose fill comes from the texture set's family of hues."""
    families = fill_family(images)
    return sum(f == "texture" for f in families) / max(1, len(families))


def circular_sd_deg(hues: torch.Tensor) -> torch.Tensor:
    """N x K hues in degrees -> per row, the circular standard deviation in degrees (0 for equal hues)."""
    a = torch.deg2rad(hues.double())
    r = torch.sqrt(torch.cos(a).mean(1) ** 2 + torch.sin(a).mean(1) ** 2).clamp(1e-6, 1.0)
    return torch.rad2deg(torch.sqrt(-2 * torch.log(r))).float()


def colour_z_spread(outputs: torch.Tensor) -> dict[str, float]:
    """outputs: N x K x 3 x H x W (K outputs per input). Means over the N inputs of the hue spread over the K
    outputs (circular sd, degrees; over outputs with a coloured fill only) and the pixel diversity."""
    n, k = outputs.shape[:2]
    rgb, has_fill = fill_colours(outputs.reshape(n * k, *outputs.shape[2:]))
    hue, sat, _ = rgb_to_hsv(rgb)
    coloured = (has_fill & (sat >= MIN_SATURATION)).reshape(n, k)
    hue = hue.reshape(n, k)
    spreads = [float(circular_sd_deg(hue[i][coloured[i]][None])[0]) if coloured[i].sum() >= 2 else 0.0
               for i in range(n)]
    return {"hue_spread": sum(spreads) / n, "pixel_diversity": float(pixel_diversity(outputs).mean())}

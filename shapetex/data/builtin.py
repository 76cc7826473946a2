"""The built-in procedural data: plain-coloured shapes (the shape set) and striped shapes (the texture set).

Like horses and zebras: one family of silhouettes, two fillings, on the same grass-green background. The
background colour is fixed so the silhouette of any image (real or generated) can be read without a
pretrained network (see `shapetex.metrics.shapes`). Every image is a pure function of (seed, index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BACKGROUND = (96, 148, 84)  # grass green
STRIPE_DARK = (24, 24, 24)
STRIPE_LIGHT = (236, 236, 236)
# Plain fills: saturated, far from the background green and from the stripe grey levels.
PALETTE = np.array(
    [(150, 82, 40), (196, 120, 60), (120, 60, 30), (200, 50, 50), (60, 80, 190), (210, 170, 60), (150, 60, 150)],
    dtype=np.float32,
)
KINDS = ("ellipse", "rectangle", "triangle")
SUPERSAMPLE = 2  # render at 2x and average: smooth edges without blurring the stripes away


@dataclass
class ShapeParams:
    kind: str
    cx: float  # centre, fraction of the side
    cy: float
    radius: float  # fraction of the side
    aspect: float
    angle: float  # radians
    colour: tuple[float, float, float]
    stripe_angle: float
    stripe_period: float  # fraction of the side


def sample_params(rng: np.random.Generator) -> ShapeParams:
    return ShapeParams(
        kind=KINDS[rng.integers(len(KINDS))],
        cx=float(rng.uniform(0.32, 0.68)),
        cy=float(rng.uniform(0.32, 0.68)),
        radius=float(rng.uniform(0.2, 0.3)),
        aspect=float(rng.uniform(0.6, 1.0)),
        angle=float(rng.uniform(0, np.pi)),
        colour=tuple(PALETTE[rng.integers(len(PALETTE))] + rng.uniform(-15, 15, 3)),
        stripe_angle=float(rng.uniform(0, np.pi)),
        stripe_period=float(rng.uniform(0.1, 0.14)),
    )


def shape_mask(p: ShapeParams, size: int) -> np.ndarray:
    """Soft coverage in [0, 1] of the silhouette, size x size (anti-aliased by supersampling)."""
    n = size * SUPERSAMPLE
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    y, x = np.meshgrid(t, t, indexing="ij")
    dx, dy = x - p.cx, y - p.cy
    c, s = np.cos(p.angle), np.sin(p.angle)
    u, v = (c * dx + s * dy) / p.radius, (-s * dx + c * dy) / (p.radius * p.aspect)
    if p.kind == "ellipse":
        inside = u * u + v * v <= 1.0
    elif p.kind == "rectangle":
        inside = (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    else:  # triangle pointing along u
        inside = (u >= -0.6) & (np.abs(v) <= (1.0 - u) * 0.75)
    return inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def render(p: ShapeParams, size: int, fill: str) -> np.ndarray:
    """One HxWx3 uint8 image: the silhouette filled 'plain' (shape set) or with 'stripes' (texture set)."""
    cover = shape_mask(p, size)[..., None]
    if fill == "plain":
        fg = np.broadcast_to(np.asarray(p.colour, dtype=np.float32), (size, size, 3))
    elif fill == "stripes":
        n = size * SUPERSAMPLE
        t = (np.arange(n, dtype=np.float32) + 0.5) / n
        y, x = np.meshgrid(t, t, indexing="ij")
        phase = (np.cos(p.stripe_angle) * x + np.sin(p.stripe_angle) * y) / p.stripe_period
        light = ((phase % 1.0) < 0.5).astype(np.float32)
        light = light.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
        fg = light * np.asarray(STRIPE_LIGHT, np.float32) + (1 - light) * np.asarray(STRIPE_DARK, np.float32)
    else:
        raise ValueError(f"unknown fill {fill!r}")
    img = cover * fg + (1 - cover) * np.asarray(BACKGROUND, dtype=np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# Seeds offsets keep the sets independent: the shape and texture sets are unpaired draws.
_SET_OFFSETS = {"shape": 0, "texture": 1_000_003, "shape-holdout": 2_000_029, "texture-holdout": 3_000_017}


def builtin_params(which: str, count: int, seed: int = 0) -> list[ShapeParams]:
    base = seed * 7_919 + _SET_OFFSETS[which]
    return [sample_params(np.random.default_rng(base + i)) for i in range(count)]


def builtin_images(which: str, count: int, size: int, seed: int = 0) -> torch.Tensor:
    """N x 3 x size x size uint8: 'shape', 'texture', 'shape-holdout' or 'texture-holdout'."""
    fill = "stripes" if which.startswith("texture") else "plain"
    imgs = [render(p, size, fill) for p in builtin_params(which, count, seed)]
    return torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy())


def striped_version(which: str, count: int, size: int, seed: int = 0) -> torch.Tensor:
    """The correct translation of a shape set: the same silhouettes, filled with stripes."""
    imgs = [render(p, size, "stripes") for p in builtin_params(which, count, seed)]
    return torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy())

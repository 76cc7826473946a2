"""The built-in procedural data: one family of silhouettes, filled two ways (the shape set and the texture set).

Like horses and zebras: the silhouettes are common to both sets (the feature the translator must keep); the
fill is what only the texture set has (the feature it must take). Two tasks:

- `colours` (the default): shape-set silhouettes are filled with warm colours (red to gold), texture-set ones
  with cool colours (cyan to magenta), the hue drawn per image independently of the silhouette, so z has
  something to choose. A StyleGAN2 decoder draws a flat fill at any size, so this task tests the paper's
  mechanism rather than the decoder's drawing limits (in the paper's Fig. 10 the outputs of one input differ
  mainly in colour).
- `stripes`: texture-set silhouettes are filled with black and white stripes of random angle and a period of
  3.2-4.5 px at 32 px: finer than the decoder's 16x16 layers can represent, so only its last layers can draw
  them (docs/quickstart_tuning.md measures how that fails). Kept as the harder variant.

The background colour is fixed so the silhouette of any image (real or generated) can be read without a
pretrained network (see `shapetex.metrics.shapes`). Every image is a pure function of (task, seed, index).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch

from ..config import BUILTIN_TASKS as TASKS
from ..config import ConfigError

BACKGROUND = (96, 148, 84)  # grass green
STRIPE_DARK = (24, 24, 24)
STRIPE_LIGHT = (236, 236, 236)
# The stripes task's plain fills: saturated, far from the background green and from the stripe grey levels.
PALETTE = np.array(
    [(150, 82, 40), (196, 120, 60), (120, 60, 30), (200, 50, 50), (60, 80, 190), (210, 170, 60), (150, 60, 150)],
    dtype=np.float32,
)
# The colours task's two families of hues (degrees), disjoint and both far from the background's (~108).
SHAPE_HUES = (0.0, 45.0)  # red, orange, gold
TEXTURE_HUES = (180.0, 320.0)  # cyan, blue, violet, magenta
SATURATION = (0.6, 0.9)
VALUE = (0.65, 0.95)
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
    colour: tuple[float, float, float]  # the stripes task's plain fill
    stripe_angle: float
    stripe_period: float  # fraction of the side
    shape_hue: float  # degrees: the colours task's shape-set fill
    texture_hue: float  # degrees: the colours task's texture-set fill
    saturation: float
    value: float


def sample_params(rng: np.random.Generator) -> ShapeParams:
    # draws in a fixed order: the first nine are the stripes task's, unchanged since it was the only task
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
        shape_hue=float(rng.uniform(*SHAPE_HUES)),
        texture_hue=float(rng.uniform(*TEXTURE_HUES)),
        saturation=float(rng.uniform(*SATURATION)),
        value=float(rng.uniform(*VALUE)),
    )


def hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """RGB in [0, 255] (float32) of a hue in degrees and a saturation and value in [0, 1]."""
    return np.asarray(colorsys.hsv_to_rgb((hue % 360) / 360, saturation, value), np.float32) * 255


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


def _stripes(p: ShapeParams, size: int) -> np.ndarray:
    n = size * SUPERSAMPLE
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    y, x = np.meshgrid(t, t, indexing="ij")
    phase = (np.cos(p.stripe_angle) * x + np.sin(p.stripe_angle) * y) / p.stripe_period
    light = ((phase % 1.0) < 0.5).astype(np.float32)
    light = light.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
    return light * np.asarray(STRIPE_LIGHT, np.float32) + (1 - light) * np.asarray(STRIPE_DARK, np.float32)


def render(p: ShapeParams, size: int, fill: str) -> np.ndarray:
    """One HxWx3 uint8 image, the silhouette filled with `fill`: 'plain' / 'stripes' (the stripes task's shape
    and texture sets) or 'warm' / 'cool' (the colours task's)."""
    cover = shape_mask(p, size)[..., None]
    if fill == "plain":
        fg = np.asarray(p.colour, dtype=np.float32)
    elif fill == "stripes":
        fg = _stripes(p, size)
    elif fill in ("warm", "cool"):
        fg = hsv_colour(p.shape_hue if fill == "warm" else p.texture_hue, p.saturation, p.value)
    else:
        raise ValueError(f"unknown fill {fill!r}")
    img = cover * fg + (1 - cover) * np.asarray(BACKGROUND, dtype=np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# Seeds offsets keep the sets independent: the shape and texture sets are unpaired draws.
_SET_OFFSETS = {"shape": 0, "texture": 1_000_003, "shape-holdout": 2_000_029, "texture-holdout": 3_000_017}
_FILLS = {"colours": ("warm", "cool"), "stripes": ("plain", "stripes")}  # (shape set, texture set)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError(f"unknown built-in task {task!r}: one of {', '.join(TASKS)}")
    return task


def builtin_params(which: str, count: int, seed: int = 0) -> list[ShapeParams]:
    base = seed * 7_919 + _SET_OFFSETS[which]
    return [sample_params(np.random.default_rng(base + i)) for i in range(count)]


def _render_all(params: list[ShapeParams], size: int, fill: str) -> torch.Tensor:
    imgs = [render(p, size, fill) for p in params]
    return torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy())


def builtin_images(which: str, count: int, size: int, seed: int = 0, task: str = "colours") -> torch.Tensor:
    """N x 3 x size x size uint8: 'shape', 'texture', 'shape-holdout' or 'texture-holdout' of `task`."""
    shape_fill, texture_fill = _FILLS[check_task(task)]
    return _render_all(builtin_params(which, count, seed), size, texture_fill if which.startswith("texture")
                       else shape_fill)


def translated_version(which: str, count: int, size: int, seed: int = 0, task: str = "colours") -> torch.Tensor:
    """A correct translation of a shape set: the same silhouettes, filled as the texture set fills them."""
    return _render_all(builtin_params(which, count, seed), size, _FILLS[check_task(task)][1])

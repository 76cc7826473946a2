"""Tiled translation: run a fully convolutional translator on overlapping tiles and blend them.

For images larger than memory allows at once. Tiles start at multiples of the network's input multiple
(a convolutional network with total stride m is shift-equivariant only for shifts by multiples of m),
so inside a tile, away from its borders, the result is what the whole image would have given. Near a
tile border the network sees padding instead of the neighbouring pixels; there the blend weight is
(almost) zero for `margin` pixels, then ramps up (linearly or along a raised cosine) over the rest of
the overlap. Across an overlap the two ramps sum to one, and the accumulated weights are divided out
everywhere, so any overlap of three or more tiles is a proper weighted average too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .config import ConfigError
from .nets.layers import pad_to_multiple

RAMPS = ("linear", "cosine")
_EPS = 1e-4  # weight of a tile's pixels inside its margin: only used where no other tile covers them


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length): stride `tile - overlap` rounded down to
    a multiple of `align`, the last tile flush with the end. `length` and `tile` must be multiples of align."""
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def ramp_profile(distance: torch.Tensor, overlap: int, margin: int, ramp: str) -> torch.Tensor:
    """Weight of a pixel `distance` pixels inside a tile edge that faces a neighbouring tile."""
    if ramp not in RAMPS:
        raise ValueError(f"ramp must be one of {RAMPS}, got {ramp!r}")
    length = max(overlap - 2 * margin, 1)
    t = ((distance - margin + 0.5) / length).clamp(0, 1)
    w = t if ramp == "linear" else 0.5 - 0.5 * torch.cos(math.pi * t)
    return torch.where(distance < margin, torch.zeros_like(w), w).clamp_min(_EPS)


def tile_weights(size: int, start: int, total: int, overlap: int, margin: int, ramp: str) -> torch.Tensor:
    """1-D blend weights of one tile along one axis: ramps only on the sides that have a neighbour."""
    d = torch.arange(size, dtype=torch.float64)
    w = torch.ones(size, dtype=torch.float64)
    if start > 0:
        w = torch.minimum(w, ramp_profile(d, overlap, margin, ramp))
    if start + size < total:
        w = torch.minimum(w, ramp_profile(size - 1 - d, overlap, margin, ramp))
    return w


def tiled_apply(x: torch.Tensor, fn: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor], tile: int,
                overlap: int = 64, align: int = 1, margin: int | None = None, ramp: str = "cosine") -> torch.Tensor:
    """Apply `fn(tile_x, (top, left)) -> tile_out` (same height and width as tile_x) on overlapping tiles of
    x (N x C x H x W) and blend; returns N x C' x H x W on x's device.

    x is reflect-padded to a multiple of `align` first and the result cropped back. `tile` is rounded down
    to a multiple of `align`; `margin` (default overlap // 4) pixels at a tile border shared with another
    tile get no weight. The output is accumulated on x's device, so x may live on the CPU while `fn` runs
    on a GPU.
    """
    if tile < align:
        raise ConfigError(f"tile size {tile} is smaller than the network's input multiple {align}")
    tile = tile // align * align
    if not 0 <= overlap < tile:
        raise ConfigError(f"overlap must be in [0, tile size {tile}), got {overlap}")
    margin = overlap // 4 if margin is None else margin
    if 2 * margin >= max(overlap, 1) and overlap > 0:
        raise ValueError(f"margin {margin} leaves no ramp in an overlap of {overlap}")
    xp, (h, w) = pad_to_multiple(x, align)
    H, W = xp.shape[-2:]
    th, tw = min(tile, H), min(tile, W)
    ys, xs = tile_starts(H, th, overlap, align), tile_starts(W, tw, overlap, align)
    out = weight_sum = None
    for y0 in ys:
        wy = tile_weights(th, y0, H, overlap, margin, ramp)
        for x0 in xs:
            wx = tile_weights(tw, x0, W, overlap, margin, ramp)
            piece = fn(xp[..., y0:y0 + th, x0:x0 + tw], (y0, x0))
            if piece.shape[-2:] != (th, tw):
                raise ValueError(f"tile function returned {tuple(piece.shape[-2:])} for a {th}x{tw} tile")
            piece = piece.to(x.device)
            if out is None:
                out = torch.zeros(*piece.shape[:-2], H, W, dtype=torch.float32, device=x.device)
                weight_sum = torch.zeros(H, W, dtype=torch.float32, device=x.device)
            wt = (wy[:, None] * wx[None, :]).to(out.device, torch.float32)
            out[..., y0:y0 + th, x0:x0 + tw] += piece.float() * wt
            weight_sum[y0:y0 + th, x0:x0 + tw] += wt
    return (out / weight_sum)[..., :h, :w]

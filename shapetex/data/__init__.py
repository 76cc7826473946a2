"""Data: image folders and the built-in procedural set, turned into step-indexed batch sources."""

from __future__ import annotations

import torch

from ..config import DataConfig
from .builtin import builtin_images
from .domains import build_domain_labels, build_domains
from .folders import folder_split, holdout_folders
from .images import DataError, set_max_pixels
from .paired import build_paired
from .preprocess import builtin_side, data_geometry
from .sets import ImageSet, TensorImageSet, subset
from .stream import UnpairedSource

__all__ = ["DataError", "ImageSet", "build_data", "unpaired_sets", "SOURCE_BUILDERS"]


def unpaired_sets(cfg: DataConfig, seed: int) -> tuple[ImageSet, ImageSet, dict[str, torch.Tensor]]:
    """(shape set, texture set, held-out {'shape', 'texture'} uint8 batches) from built-in data or folders.
    The sets are stored as `data_geometry(cfg)` says; held-out batches are at the crop shape."""
    if cfg.source == "builtin":
        side = builtin_side(cfg)
        shape = TensorImageSet(builtin_images("shape", cfg.builtin_count, side, seed), "builtin shapes")
        texture = TensorImageSet(builtin_images("texture", cfg.builtin_count, side, seed), "builtin textures")
        n = max(cfg.holdout, 16)
        holdout = {"shape": builtin_images("shape-holdout", n, cfg.size, seed),
                   "texture": builtin_images("texture-holdout", n, cfg.size, seed)}
    elif cfg.source == "folders":
        if not cfg.shape or not cfg.texture:
            raise DataError("folder data needs both a shape folder (--shape) and a texture folder (--texture)")
        held_folders = holdout_folders(cfg, 2, "shape and texture")
        sets = [folder_split(folder, data_geometry(cfg), cfg.holdout, cfg.preload_limit_mb, cfg.max_images,
                             f"{role}:{folder}", cfg.cache_mb, cfg.cache_dir, held)
                for role, folder, held in (("shape", cfg.shape, held_folders[0]),
                                           ("texture", cfg.texture, held_folders[1]))]
        (shape, shape_held), (texture, texture_held) = sets
        holdout = {"shape": shape_held, "texture": texture_held}
    else:
        raise DataError(f"data source {cfg.source!r} gives no shape/texture sets")
    if cfg.texture_from_shape:  # the discriminator's real images are the shape set itself
        texture, holdout["texture"] = shape, holdout["shape"]
    return subset(shape, cfg.max_images), subset(texture, cfg.max_images), holdout


def _unpaired(cfg: DataConfig, global_batch: int, seed: int, rank: int, world: int):
    shape, texture, holdout = unpaired_sets(cfg, seed)
    return UnpairedSource(shape, texture, global_batch, seed, rank, world, data_geometry(cfg)), holdout


# What kind of batches a method wants -> how to build (a step-indexed batch source, a fixed held-out
# batch for sample grids and monitors). Methods name one of these keys as their `data_kind`.
SOURCE_BUILDERS = {"unpaired": _unpaired, "paired": build_paired, "domains": build_domains,
                   "domain_labels": build_domain_labels}


def build_data(cfg: DataConfig, kind: str, global_batch: int, seed: int, rank: int = 0, world: int = 1,
               holdout_count: int = 8):
    """(batch source, held-out {name: uint8 batch})."""
    if kind not in SOURCE_BUILDERS:
        raise ValueError(f"no data source of kind {kind!r}; known: {sorted(SOURCE_BUILDERS)}")
    set_max_pixels(cfg.max_pixels)
    source, holdout = SOURCE_BUILDERS[kind](cfg, global_batch, seed, rank, world)
    return source, {k: v[:holdout_count] for k, v in holdout.items()}

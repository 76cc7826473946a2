"""The shape and texture sets of the adversarial translator and its relatives: built-in procedural images or two
folders (--shape, --texture), and their unpaired batches (`UnpairedSource`). Domain data (`domains.py`) reads
the same two sets as domains A and B when it is given no domain folders."""

from __future__ import annotations

import torch

from ..config import DataConfig
from .builtin import builtin_images
from .folders import folder_split, holdout_folders
from .images import DataError
from .preprocess import builtin_side, data_geometry
from .sets import ImageSet, TensorImageSet, subset
from .stream import UnpairedSource


def unpaired_sets(cfg: DataConfig, seed: int) -> tuple[ImageSet, ImageSet, dict[str, torch.Tensor]]:
    """(shape set, texture set, held-out {'shape', 'texture'} uint8 batches) from built-in data or folders.
    The sets are stored as `data_geometry(cfg)` says; held-out batches are at the crop shape."""
    if cfg.source == "builtin":
        side = builtin_side(cfg)
        task, n = cfg.builtin_task, max(cfg.holdout, 16)
        shape = TensorImageSet(builtin_images("shape", cfg.builtin_count, side, seed, task), f"builtin {task} shapes")
        texture = TensorImageSet(builtin_images("texture", cfg.builtin_count, side, seed, task),
                                 f"builtin {task} textures")
        holdout = {"shape": builtin_images("shape-holdout", n, cfg.size, seed, task),
                   "texture": builtin_images("texture-holdout", n, cfg.size, seed, task)}
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


def build_unpaired(cfg: DataConfig, global_batch: int, seed: int, rank: int, world: int):
    shape, texture, holdout = unpaired_sets(cfg, seed)
    return UnpairedSource(shape, texture, global_batch, seed, rank, world, data_geometry(cfg)), holdout

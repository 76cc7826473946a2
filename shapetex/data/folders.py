"""Finding a set's images: a folder searched recursively, or WebDataset .tar shards, decoded into memory when
they fit and per batch otherwise. Depends on sets.py (the set types) and shards.py (the .tar reader)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import DataConfig
from .cache import DecodedCache
from .images import DataError, list_images
from .preprocess import Geometry, as_geometry
from .sets import FileImageSet, ImageSet, held_batch, preload_if_fits, split_holdout, subset
from .shards import is_shard_spec, shard_image_set

HELD_FOLDER_IMAGES = 64  # images of a held-out folder decoded for sample grids and monitors (evaluate reads all)


def lazy_image_set(folder: str | Path, geometry: int | Geometry, max_images: int = 0, name: str | None = None,
                   cache: DecodedCache | None = None) -> FileImageSet:
    """A folder of images (searched recursively) or of WebDataset .tar shards (a folder holding .tar files,
    one .tar, or a brace pattern such as data-{000000..000099}.tar), indexed but not decoded yet."""
    geometry = as_geometry(geometry)
    if is_shard_spec(folder):
        lazy = shard_image_set(folder, geometry, name or str(folder), cache)
        return lazy.take(0, max_images) if max_images else lazy
    files = list_images(folder)
    return FileImageSet(files[:max_images] if max_images else files, geometry, name or str(folder), cache)


def _cache(cache_mb: float, cache_dir: str | Path | None) -> DecodedCache | None:
    return DecodedCache(cache_mb, cache_dir) if cache_mb or cache_dir else None


def folder_image_set(folder: str | Path, size: int | Geometry, preload_limit_mb: int = 2048, max_images: int = 0,
                     name: str | None = None, cache_mb: float = 0, cache_dir: str | Path | None = None) -> ImageSet:
    """A folder's images stored as `size` says (an int: resized and centre-cropped to it): decoded into memory
    when they fit `preload_limit_mb`, else decoded per batch through a cache of `cache_mb` (and `cache_dir` on
    disk)."""
    lazy = lazy_image_set(folder, size, max_images, name, _cache(cache_mb, cache_dir))
    return preload_if_fits(lazy, preload_limit_mb)


def folder_split(folder: str | Path, geometry: Geometry, holdout: int, preload_limit_mb: int = 2048,
                 max_images: int = 0, name: str | None = None, cache_mb: float = 0,
                 cache_dir: str | Path | None = None, held_folder: str | Path | None = None
                 ) -> tuple[ImageSet, torch.Tensor]:
    """(training set, held-out uint8 batch at the crop shape). The held-out images are the last `holdout` files,
    or the first HELD_FOLDER_IMAGES of `held_folder` when one is given (--dataroot's testA/testB); they are split
    off before anything is decoded, so they are decoded as held-out images (no jitter), never as training ones.
    `max_images` cuts the training part."""
    cache = _cache(cache_mb, cache_dir)
    lazy = lazy_image_set(folder, geometry, 0, name, cache)
    if held_folder is not None:
        held_set = lazy_image_set(held_folder, geometry, HELD_FOLDER_IMAGES, f"{held_folder} (held out)", cache)
        train, held = lazy, held_batch(held_set, 0, len(held_set))
    else:
        train, held = split_holdout(lazy, holdout)
    return preload_if_fits(subset(train, max_images), preload_limit_mb), held


def holdout_folders(cfg: DataConfig, count: int, what: str) -> list[str | None]:
    """data.holdout_folders, one per training folder, or None for each when there are none."""
    if not cfg.holdout_folders:
        return [None] * count
    if len(cfg.holdout_folders) != count:
        raise DataError(f"data.holdout_folders has {len(cfg.holdout_folders)} folders for {count} training "
                        f"folders ({what}): give one held-out folder per training folder")
    return list(cfg.holdout_folders)

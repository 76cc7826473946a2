"""Finding a set's images: a folder searched recursively, or WebDataset .tar shards, decoded into memory when
they fit and per batch otherwise. Depends on sets.py (the set types) and shards.py (the .tar reader)."""

from __future__ import annotations

import logging
from pathlib import Path

from .cache import DecodedCache
from .images import list_images
from .sets import FileImageSet, ImageSet, decode_all
from .shards import is_shard_spec, shard_image_set

log = logging.getLogger(__name__)


def folder_image_set(folder: str | Path, size: int, preload_limit_mb: int = 2048, max_images: int = 0,
                     name: str | None = None, cache_mb: float = 0, cache_dir: str | Path | None = None) -> ImageSet:
    """A folder of images (searched recursively) or of WebDataset .tar shards (a folder holding .tar files,
    one .tar, or a brace pattern such as data-{000000..000099}.tar): decoded into memory when it fits
    `preload_limit_mb`, else decoded per batch through a cache of `cache_mb` (and `cache_dir` on disk)."""
    cache = DecodedCache(cache_mb, cache_dir) if cache_mb or cache_dir else None
    if is_shard_spec(folder):
        lazy = shard_image_set(folder, size, name or str(folder), cache)
        if max_images:
            lazy = lazy.take(0, max_images)
        if len(lazy) * 3 * size * size / 2**20 <= preload_limit_mb:
            return lazy.preload()
        return lazy
    files = list_images(folder)
    if max_images:
        files = files[:max_images]
    name = name or str(folder)
    need_mb = len(files) * 3 * size * size / 2**20
    if need_mb <= preload_limit_mb:
        return decode_all(files, size, name)
    log.info("%s: %d images (%.0f MB decoded) exceed preload_limit_mb; decoding per batch", name, len(files), need_mb)
    return FileImageSet(files, size, name, cache)

"""Data: image folders and the built-in procedural set, turned into step-indexed batch sources."""

from __future__ import annotations

from ..config import DataConfig
from .domains import build_domain_labels, build_domains
from .images import DataError, set_max_pixels
from .paired import build_paired
from .sets import ImageSet
from .unpaired import build_unpaired, unpaired_sets

__all__ = ["DataError", "ImageSet", "build_data", "unpaired_sets", "SOURCE_BUILDERS"]


# What kind of batches a method wants -> how to build (a step-indexed batch source, a fixed held-out
# batch for sample grids and monitors). Methods name one of these keys as their `data_kind`.
SOURCE_BUILDERS = {"unpaired": build_unpaired, "paired": build_paired, "domains": build_domains,
                   "domain_labels": build_domain_labels}


def build_data(cfg: DataConfig, kind: str, global_batch: int, seed: int, rank: int = 0, world: int = 1,
               holdout_count: int = 8):
    """(batch source, held-out {name: uint8 batch})."""
    if kind not in SOURCE_BUILDERS:
        raise ValueError(f"no data source of kind {kind!r}; known: {sorted(SOURCE_BUILDERS)}")
    set_max_pixels(cfg.max_pixels)
    source, holdout = SOURCE_BUILDERS[kind](cfg, global_batch, seed, rank, world)
    return source, {k: v[:holdout_count] for k, v in holdout.items()}

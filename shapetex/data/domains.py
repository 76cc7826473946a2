"""Domains: one image folder per domain, for cycle-consistent methods (CycleGAN, AsymmetricGAN, StarGAN-like).

Two batch layouts, both pure functions of the step (exact resume, DDP sharding):

- two-domain ("domains" with two folders): {"A": uint8, "B": uint8}, unpaired; each folder has its own
  seeded IndexStream, as in `UnpairedSource`.
- multi-domain ("domain_labels", or "domains" with three or more folders):
  {"image": uint8 N x 3 x S x S, "domain": int64 N, "target": int64 N}. Each position's domain is drawn
  uniformly (so small domains are not drowned by large ones), the image is then taken from that domain's
  own independently seeded IndexStream, and the target is a uniformly drawn *other* domain. Within an
  epoch of a domain's stream images come without repetition, but not every image of an epoch is used.

Held-out images: DataConfig.holdout_folders (one per domain: --dataroot's testA/testB), else
DataConfig.holdout (the last N of every folder) are kept out of training; with neither, the first few
training images of each domain stand in for sample grids. Images are stored and randomly cropped as
`data_geometry` says (preprocess.py), each domain's crops drawn from its own stream. Keys: "A"/"B" in
two-domain mode, the domain index as a string ("0", "1", ...) in multi-domain mode.
"""

from __future__ import annotations

import torch

from ..config import DataConfig
from .folders import folder_split, holdout_folders
from .images import DataError
from .preprocess import Geometry, RandomCrops, data_geometry
from .sets import ImageSet
from .stream import IndexStream
from .unpaired import unpaired_sets

DOMAIN_SEED_STRIDE = 7_919  # domain d's stream uses seed + 1 + d * stride; the labels use seed itself


def domain_sets(cfg: DataConfig, seed: int = 0) -> tuple[list[ImageSet], list[torch.Tensor]]:
    """(training set per domain, held-out uint8 batch per domain) from DataConfig.domains; with the
    built-in data or shape/texture folders instead, the shape and texture sets are domains A and B."""
    if cfg.source in ("builtin", "folders"):
        shape, texture, holdout = unpaired_sets(cfg, seed)
        return [shape, texture], [holdout["shape"], holdout["texture"]]
    if cfg.source != "domains":
        raise DataError(f"data source {cfg.source!r} gives no domains; use --domains or --dataroot")
    if len(cfg.domains) < 2:
        raise DataError(f"domain data needs at least two folders (--domains DIR_A DIR_B ... or --dataroot), "
                        f"got {len(cfg.domains)}")
    sets, held = [], []
    held_folders = holdout_folders(cfg, len(cfg.domains), "one per domain")
    for i, (folder, held_folder) in enumerate(zip(cfg.domains, held_folders, strict=True)):
        images, h = folder_split(folder, data_geometry(cfg), cfg.holdout, cfg.preload_limit_mb, cfg.max_images,
                                 f"domain {i}:{folder}", cfg.cache_mb, cfg.cache_dir, held_folder)
        sets.append(images)
        held.append(h)
    return sets, held


class TwoDomainSource:
    """Unpaired batches from two domains: {"A": ..., "B": ...}."""

    kind = "domains"

    def __init__(self, a: ImageSet, b: ImageSet, global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 geometry: Geometry | None = None):
        self.a, self.b, self.geometry = a, b, geometry
        self.a_idx = IndexStream(len(a), global_batch, seed + 1, rank, world)
        self.b_idx = IndexStream(len(b), global_batch, seed + 1 + DOMAIN_SEED_STRIDE, rank, world)
        self.a_crops = RandomCrops(geometry, seed, 0, global_batch, rank, world)
        self.b_crops = RandomCrops(geometry, seed, 1, global_batch, rank, world)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return {"A": self.a_crops(self.a.get(self.a_idx.indices(step)), step),
                "B": self.b_crops(self.b.get(self.b_idx.indices(step)), step)}

    def report(self) -> str:
        how = f" ({self.geometry.describe()})" if self.geometry is not None else ""
        return f"A: {self.a.report()}; B: {self.b.report()}{how}"


class MultiDomainSource:
    """Labelled batches from several domains: {"image", "domain", "target"}."""

    kind = "domain_labels"

    def __init__(self, sets: list[ImageSet], global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 geometry: Geometry | None = None):
        if len(sets) < 2:
            raise DataError("multi-domain data needs at least two domains")
        self.sets, self.seed, self.rank, self.world = sets, seed, rank, world
        self.global_batch, self.geometry = global_batch, geometry
        self.crops = RandomCrops(geometry, seed, 0, global_batch, rank, world)  # one crop per batch position
        self.streams = [IndexStream(len(s), global_batch, seed + 1 + d * DOMAIN_SEED_STRIDE, rank, world)
                        for d, s in enumerate(sets)]

    def labels(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(source domains, target domains) of this rank's part of global batch `step`."""
        n = len(self.sets)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        domain = torch.randint(n, (self.global_batch,), generator=g)
        target = (domain + torch.randint(1, n, (self.global_batch,), generator=g)) % n  # never the source
        return domain[self.rank::self.world], target[self.rank::self.world]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        domain, target = self.labels(step)
        shape = self.geometry.crop if self.geometry is not None else self.sets[0].get([0])[0].shape[-2:]
        images = torch.empty(len(domain), 3, *shape, dtype=torch.uint8)
        fractions = self.crops.fractions(step) if self.crops.active else None
        for d, s in enumerate(self.sets):
            where = (domain == d).nonzero().squeeze(1)
            if len(where):
                got = s.get(self.streams[d].indices(step)[: len(where)])
                images[where] = got if fractions is None else self.crops.apply(got, fractions[where])
        return {"image": images, "domain": domain, "target": target}

    def report(self) -> str:
        return "; ".join(f"{d}: {s.report()}" for d, s in enumerate(self.sets))


def build_domains(cfg: DataConfig, global_batch: int, seed: int, rank: int = 0, world: int = 1):
    """Two folders: two-domain batches; three or more: labelled multi-domain batches."""
    if cfg.source == "domains" and len(cfg.domains) >= 3:
        return build_domain_labels(cfg, global_batch, seed, rank, world)
    sets, held = domain_sets(cfg, seed)
    return (TwoDomainSource(sets[0], sets[1], global_batch, seed, rank, world, data_geometry(cfg)),
            {"A": held[0], "B": held[1]})


def build_domain_labels(cfg: DataConfig, global_batch: int, seed: int, rank: int = 0, world: int = 1):
    """Labelled multi-domain batches, whatever the number of folders (two included)."""
    sets, held = domain_sets(cfg, seed)
    return (MultiDomainSource(sets, global_batch, seed, rank, world, data_geometry(cfg)),
            {str(d): h for d, h in enumerate(held)})

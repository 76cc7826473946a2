"""Batches as a pure function of the training step: exact resume and DDP sharding come for free.

The global sample order is one seeded permutation per epoch. Global batch `step` holds positions
[step*B, (step+1)*B); rank r takes every world-th of them. Epochs roll over inside a batch, so within
an epoch every sample is seen exactly once across all ranks, whatever the number of processes.
"""

from __future__ import annotations

import torch

from .preprocess import Geometry, RandomCrops
from .sets import ImageSet


class IndexStream:
    def __init__(self, length: int, global_batch: int, seed: int, rank: int = 0, world: int = 1):
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not divisible by {world} processes")
        self.length, self.global_batch, self.seed = length, global_batch, seed
        self.rank, self.world = rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.length, generator=g)}  # keep only the current epoch
        return self._perms[epoch]

    def indices(self, step: int) -> list[int]:
        start = step * self.global_batch
        out = []
        for pos in range(start + self.rank, start + self.global_batch, self.world):
            out.append(int(self.permutation(pos // self.length)[pos % self.length]))
        return out


class UnpairedSource:
    """Shape batches for the generator's input and texture batches for the discriminator's real side."""

    kind = "unpaired"

    def __init__(self, shape: ImageSet, texture: ImageSet, global_batch: int, seed: int, rank: int = 0,
                 world: int = 1, geometry: Geometry | None = None):
        self.shape, self.texture, self.geometry = shape, texture, geometry
        self.shape_idx = IndexStream(len(shape), global_batch, seed, rank, world)
        self.texture_idx = IndexStream(len(texture), global_batch, seed + 1, rank, world)
        self.shape_crops = RandomCrops(geometry, seed, 0, global_batch, rank, world)
        self.texture_crops = RandomCrops(geometry, seed, 1, global_batch, rank, world)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return {"shape": self.shape_crops(self.shape.get(self.shape_idx.indices(step)), step),
                "texture": self.texture_crops(self.texture.get(self.texture_idx.indices(step)), step)}

    def report(self) -> str:
        how = f" ({self.geometry.describe()})" if self.geometry is not None else ""
        return f"shape set {self.shape.report()}; texture set {self.texture.report()}{how}"


class Prefetcher:
    """Builds upcoming batches in loader processes when decoding per batch; a plain call otherwise."""

    def __init__(self, source, start_step: int, workers: int):
        self.source, self.step, self.workers = source, start_step, workers
        self._it = None
        if workers > 0:
            self._it = iter(torch.utils.data.DataLoader(
                _StepDataset(source, start_step, workers), batch_size=None, num_workers=workers,
                persistent_workers=True, prefetch_factor=2))

    def next(self) -> dict[str, torch.Tensor]:
        self.step += 1
        if self._it is not None:
            return next(self._it)
        return self.source.batch(self.step - 1)


class _StepDataset(torch.utils.data.IterableDataset):
    # Worker w makes steps start+w, start+w+W, ...; the DataLoader takes workers round-robin, so
    # batches arrive in step order.
    def __init__(self, source, start: int, workers: int):
        self.source, self.start, self.workers = source, start, workers

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        step = self.start + wid
        while True:
            yield self.source.batch(step)
            step += self.workers

"""What a method may know about the run besides its own settings: the few facts of the data and the training
length that its defaults, networks and schedule depend on. Built once from the RunConfig by the registry
(`methods.build_method`); a method never sees the RunConfig itself."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig


@dataclass(frozen=True)
class RunContext:
    size: int  # training resolution: the side of the training crops (their height when `width` is set)
    batch: int  # global batch (all processes together)
    budget: int  # training length in images
    seed: int
    domains: tuple[str, ...] = ("shape", "texture")  # the data's domain names, in order (A, B, ...)
    domain_folders: tuple[str, ...] = ()  # the folder each domain was given as (folder data only)
    paired: bool = False  # the data is pairs that correspond pixel for pixel (data.source "paired")
    width: int | None = None  # width of the training crops (data.width; None: square, `size`)

    @property
    def crop(self) -> tuple[int, int]:
        """(height, width) of the training crops: what the networks see in training."""
        return self.size, self.width or self.size

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the budget: ceil(budget / global batch)."""
        return max(1, math.ceil(self.budget / self.batch))

    @classmethod
    def of(cls, run: RunConfig) -> RunContext:
        d, t = run.data, run.train
        if d.source == "domains":
            names = tuple(Path(p).name or str(p) for p in d.domains)
        elif d.source == "paired":
            names = ("input", "target")
        else:
            names = ("shape", "texture")
        folders = tuple(str(Path(p)) for p in d.domains) if d.source == "domains" else ()
        return cls(size=d.size, batch=t.batch, budget=t.budget, seed=t.seed, domains=names, domain_folders=folders,
                   paired=d.source == "paired", width=d.width)

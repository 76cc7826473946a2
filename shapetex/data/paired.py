"""Paired data for pix2pix-style methods: batches of {'input', 'target'} uint8 images that correspond pixel
for pixel.

Two layouts on disk (`DataConfig.paired`):
- aligned AB images, pix2pix's format: each file holds A on the left half and B on the right half;
- a folder holding A/ and B/ whose files are matched by name (relative path without the suffix). Files
  without a partner are listed in a warning (names and a count) and left out of training.
`DataConfig.direction` AtoB or BtoA says which half is the input. The built-in data gives pairs too
(plain shape -> the same shape striped).

Random jitter as in the paper: with the method's data.load_size (pix2pix: 286 for 256) pairs are stored at the
load size and every batch takes one random crop per pair, the same for both halves (see preprocess.py: the
offsets are a function of (seed, step)). The crop and scale-width modes work the same way; a B image of
another size than its A is brought to A's stored shape. Flips are the trainer's (`flip_together`).
Held-out pairs (data.holdout_folders, e.g. facades/val, else the last `DataConfig.holdout`) skip the jitter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from .folders import HELD_FOLDER_IMAGES
from .images import DataError, list_images, load_rgb, resize_center_crop, to_chw_tensor
from .preprocess import Geometry, RandomCrops, as_geometry, builtin_side, center_crops, data_geometry, stack_if_same
from .stream import IndexStream

log = logging.getLogger(__name__)

SHOW_NAMES = 10  # names listed in a missing-partner warning

def split_ab(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An aligned AB image -> (A: left half, B: right half)."""
    w = img.shape[1]
    if w < 2:
        raise DataError("an AB image must be at least 2 pixels wide")
    half = w // 2
    return img[:, :half], img[:, half: 2 * half]


def _key(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def match_by_name(folder_a: str | Path, folder_b: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str],
                                                                       list[str]]:
    """(pairs (name, A file, B file) sorted by name, names only in A, names only in B)."""
    folder_a, folder_b = Path(folder_a), Path(folder_b)
    sides = []
    for folder in (folder_a, folder_b):
        by_name: dict[str, Path] = {}
        dupes = []
        for f in list_images(folder):
            k = _key(f, folder)
            if k in by_name:
                dupes.append(f"{by_name[k].name} / {f.name}")
            by_name[k] = f
        if dupes:
            shown = ", ".join(dupes[:SHOW_NAMES])
            raise DataError(f"{folder}: several files share a name, so pairs are ambiguous: {shown}")
        sides.append(by_name)
    a, b = sides
    pairs = [(k, a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return pairs, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())


def missing_report(only_a: list[str], only_b: list[str]) -> str:
    parts = []
    for side, names in (("A", only_a), ("B", only_b)):
        if names:
            shown = ", ".join(names[:SHOW_NAMES]) + (f" ... ({len(names) - SHOW_NAMES} more)"
                                                     if len(names) > SHOW_NAMES else "")
            parts.append(f"{len(names)} only in {side}/ ({shown})")
    return f"{len(only_a) + len(only_b)} files without a partner, not used: " + "; ".join(parts)


class PairSet:
    """Pairs as (input, target) uint8 batches stored as `geometry` says (an int: a square resize to it): decoded
    once into memory, or per request. Each side is one N x 3 x H x W tensor, or a list where sizes differ."""

    def __init__(self, items: list[tuple[str, Path, Path | None]], geometry: int | Geometry, direction: str = "AtoB",
                 preload: bool = True, name: str = "pairs", missing: str = "", limit_mb: float | None = None):
        if direction not in ("AtoB", "BtoA"):
            raise DataError(f"direction must be AtoB or BtoA, got {direction!r}")
        if not items:
            raise DataError(f"{name}: no pairs")
        self.items, self.geometry, self.direction, self.name = items, as_geometry(geometry), direction, name
        self.skipped: list[str] = []
        self.missing = missing
        self._bad: set[int] = set()
        self.tensors: tuple[torch.Tensor | list, torch.Tensor | list] | None = None
        if preload:
            self._preload(limit_mb)

    @classmethod
    def from_tensors(cls, inputs: torch.Tensor, targets: torch.Tensor, name: str = "pairs",
                     geometry: Geometry | None = None) -> PairSet:
        """Pairs already stored (`geometry`: how; default: as they are, no jitter)."""
        self = cls.__new__(cls)
        self.items, self.direction, self.name = [], "AtoB", name
        self.geometry = geometry or Geometry.square(inputs.shape[-1])
        self.skipped, self.missing, self._bad = [], "", set()
        self.tensors = (inputs.contiguous(), targets.contiguous())
        return self

    def __len__(self) -> int:
        return len(self.tensors[0]) if self.tensors is not None else len(self.items)

    def decode(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, fa, fb = self.items[i]
        if fb is None:
            a, b = split_ab(load_rgb(fa))
        else:
            a, b = load_rgb(fa), load_rgb(fb)
        if self.direction == "BtoA":
            a, b = b, a
        a = self.geometry.prepare(a)
        return to_chw_tensor(a), to_chw_tensor(resize_center_crop(b, a.shape[:2]))  # B pixel for pixel on A

    def _note_bad(self, i: int, err: DataError) -> None:
        self._bad.add(i)
        self.skipped.append(self.items[i][0])
        log.warning("skipping pair %s: %s", self.items[i][0], err)

    def _preload(self, limit_mb: float | None) -> None:
        """Decode every pair into memory; past `limit_mb` of decoded pixels, give up and decode per request."""
        inputs, targets, good, used = [], [], [], 0
        for i in range(len(self.items)):
            try:
                x, y = self.decode(i)
            except DataError as e:
                self._note_bad(i, e)
                continue
            inputs.append(x)
            targets.append(y)
            good.append(self.items[i])
            used += x.numel() + y.numel()
            if limit_mb is not None and used > limit_mb * 2**20:
                log.info("%s: decoded pairs pass %.0f MB; decoding per batch instead", self.name, limit_mb)
                self._bad.clear()
                self.skipped.clear()
                return
        if not inputs:
            raise DataError(f"{self.name}: none of the {len(self.items)} pairs could be read")
        self.items = good
        self.tensors = (stack_if_same(inputs), stack_if_same(targets))

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        for k in range(len(self.items)):  # an unreadable pair is replaced by the next readable one
            j = (i + k) % len(self.items)
            if j in self._bad:
                continue
            try:
                return self.decode(j)
            except DataError as e:
                self._note_bad(j, e)
        raise DataError(f"{self.name}: no readable pair among {len(self.items)}")

    def get(self, indices) -> tuple[torch.Tensor | list, torch.Tensor | list]:
        if self.tensors is not None and isinstance(self.tensors[0], torch.Tensor):
            idx = torch.as_tensor(indices, dtype=torch.long)
            return self.tensors[0][idx], self.tensors[1][idx]
        loaded = [(self.tensors[0][int(i)], self.tensors[1][int(i)]) if self.tensors is not None
                  else self.load(int(i)) for i in indices]
        return stack_if_same([x for x, _ in loaded]), stack_if_same([y for _, y in loaded])

    def report(self) -> str:
        msg = f"{self.name}: {len(self)} pairs ({self.direction})"
        if self.skipped:
            msg += f", {len(self.skipped)} unreadable skipped ({', '.join(self.skipped[:5])})"
        if self.missing:
            msg += f"; {self.missing}"
        return msg


class PairedSource:
    """Step-indexed {'input', 'target'} batches with the same random crop for both images of a pair."""

    kind = "paired"

    def __init__(self, pairs: PairSet, global_batch: int, seed: int, rank: int = 0, world: int = 1):
        self.pairs, self.geometry, self.seed = pairs, pairs.geometry, seed
        self.rank, self.world, self.global_batch = rank, world, global_batch
        self.idx = IndexStream(len(pairs), global_batch, seed, rank, world)
        self.crops = RandomCrops(pairs.geometry, seed, 0, global_batch, rank, world)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        x, y = self.pairs.get(self.idx.indices(step))
        if self.crops.active:
            where = self.crops.fractions(step)  # one draw for both halves: they stay aligned
            x, y = self.crops.apply(x, where), self.crops.apply(y, where)
        return {"input": x.contiguous(), "target": y.contiguous()}

    def report(self) -> str:
        return f"{self.pairs.report()} ({self.geometry.describe()})"


def pair_items(root: str | Path) -> tuple[list[tuple[str, Path, Path | None]], str]:
    """(items, missing-partner report) for either layout; AB files have no second path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"paired data folder not found: {root}")
    if (root / "A").is_dir() and (root / "B").is_dir():
        pairs, only_a, only_b = match_by_name(root / "A", root / "B")
        missing = missing_report(only_a, only_b) if only_a or only_b else ""
        if missing:
            log.warning("%s: %s", root, missing)
        if not pairs:
            raise DataError(f"{root}: no file in A/ has a partner of the same name in B/")
        return [(k, a, b) for k, a, b in pairs], missing
    return [(_key(f, root), f, None) for f in list_images(root)], ""


def paired_sets(cfg: DataConfig, seed: int) -> tuple[PairSet, dict[str, torch.Tensor]]:
    """(training pairs stored as `data_geometry(cfg)` says, held-out {'input', 'target'} at the crop shape)."""
    geometry = data_geometry(cfg)
    if cfg.source == "builtin":
        from .builtin import builtin_images, translated_version

        n, side, task = cfg.max_images or cfg.builtin_count, builtin_side(cfg), cfg.builtin_task
        a, b = builtin_images("shape", n, side, seed, task), translated_version("shape", n, side, seed, task)
        k = max(cfg.holdout, 16)
        ha = builtin_images("shape-holdout", k, cfg.size, seed, task)
        hb = translated_version("shape-holdout", k, cfg.size, seed, task)
        if cfg.direction == "BtoA":
            a, b, ha, hb = b, a, hb, ha
        return PairSet.from_tensors(a, b, "builtin pairs", geometry), {"input": ha, "target": hb}
    if cfg.source != "paired" or not cfg.paired:
        raise DataError("this method needs paired data: --paired DIR (AB images side by side, or A/ and B/ "
                        "with matching file names)")
    items, missing = pair_items(cfg.paired)
    if len(cfg.holdout_folders) > 1:
        raise DataError(f"data.holdout_folders has {len(cfg.holdout_folders)} folders: paired data holds out one "
                        "folder of pairs (its val/ or test/)")
    if cfg.holdout_folders:
        train_items, held_items = items, pair_items(cfg.holdout_folders[0])[0][:HELD_FOLDER_IMAGES]
    else:
        if cfg.holdout >= len(items):
            raise DataError(f"{cfg.paired}: cannot hold out {cfg.holdout} of {len(items)} pairs")
        train_items = items[: len(items) - cfg.holdout] if cfg.holdout > 0 else items
        held_items = items[len(items) - cfg.holdout:] if cfg.holdout > 0 else items[:8]
    if cfg.max_images:
        train_items = train_items[: cfg.max_images]
    per_pair = geometry.stored_bytes()  # None: sizes differ, found out while decoding
    fits = per_pair is None or len(train_items) * 2 * per_pair / 2**20 <= cfg.preload_limit_mb
    name = f"paired:{cfg.paired}"
    train = PairSet(train_items, geometry, cfg.direction, preload=fits, name=name, missing=missing,
                    limit_mb=cfg.preload_limit_mb)
    held = PairSet(held_items, geometry.held(), cfg.direction, preload=True, name=f"{name} (held out)")
    x, y = held.tensors
    return train, {"input": center_crops(x, geometry.crop), "target": center_crops(y, geometry.crop)}


def build_paired(cfg: DataConfig, global_batch: int, seed: int, rank: int = 0, world: int = 1):
    pairs, holdout = paired_sets(cfg, seed)
    return PairedSource(pairs, global_batch, seed, rank, world), holdout

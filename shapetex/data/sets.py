"""Image sets: a uniform `get(indices) -> N x 3 x H x W uint8` over memory or files on disk.

Images are stored as their `Geometry` says (see preprocess.py): all of one shape, or, in the crop and
scale-width modes, each at its own, when `get` gives a list of 3 x H_i x W_i tensors instead of one tensor.
Small sets are decoded once into memory (the decoded cache: no decoding in the training loop); sets that
would not fit `preload_limit_mb` are decoded per batch. Unreadable files are skipped and counted, never
fatal: the count and the first names are reported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .cache import DecodedCache
from .images import DataError, load_rgb, to_chw_tensor
from .preprocess import Geometry, Images, as_geometry, center_crops, stack_if_same

log = logging.getLogger(__name__)


class ImageSet:
    """Base: a sized collection of uint8 images, stored as the set's geometry says."""

    name: str = ""
    skipped: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, indices: list[int] | torch.Tensor) -> Images:
        raise NotImplementedError

    def report(self) -> str:
        msg = f"{self.name}: {len(self)} images"
        if self.skipped:
            shown = ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
            msg += f", {len(self.skipped)} unreadable skipped ({shown})"
        return msg


class TensorImageSet(ImageSet):
    """Decoded images in memory: one N x 3 x H x W tensor, or a list of 3 x H_i x W_i tensors of several sizes."""

    def __init__(self, images: torch.Tensor | list[torch.Tensor], name: str = "images",
                 skipped: list[str] | None = None):
        if len(images) == 0:
            raise DataError(f"{name}: no usable images")
        images = stack_if_same(list(images)) if isinstance(images, list) else images
        parts = [images] if isinstance(images, torch.Tensor) else images
        ndim = 4 if isinstance(images, torch.Tensor) else 3
        if any(x.dtype != torch.uint8 or x.ndim != ndim or x.shape[-3] != 3 for x in parts):
            raise ValueError("TensorImageSet wants N x 3 x H x W uint8 (or a list of 3 x H x W)")
        self.images = images.contiguous() if isinstance(images, torch.Tensor) else images
        self.name = name
        self.skipped = skipped or []

    def __len__(self) -> int:
        return len(self.images)

    def get(self, indices) -> Images:
        if isinstance(self.images, torch.Tensor):
            return self.images[torch.as_tensor(indices, dtype=torch.long)]
        return stack_if_same([self.images[int(i)] for i in indices])

    def take(self, start: int, stop: int, name: str | None = None) -> TensorImageSet:
        return TensorImageSet(self.images[start:stop], name or self.name, self.skipped)


class FileImageSet(ImageSet):
    """Decodes per request; a file that fails is replaced by the next readable one and counted.
    An optional `cache` (see `cache.py`) keeps decoded images in a bounded memory LRU and on disk.
    `geometry` (an int: a square resize to that size) says how each decoded image is stored."""

    def __init__(self, files: list[Path], geometry: int | Geometry, name: str, cache: DecodedCache | None = None):
        self.files = files
        self.geometry = as_geometry(geometry)
        self.name = name
        self.cache = cache
        self.skipped = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def key(self, j: int) -> str:
        return f"{self.geometry.key()}:{self.files[j]}"

    def version(self, j: int) -> str:
        try:
            st = os.stat(self.files[j])
        except OSError:
            return "missing"
        return f"{st.st_mtime_ns}:{st.st_size}"

    def decode(self, j: int) -> torch.Tensor:
        return to_chw_tensor(self.geometry.prepare(load_rgb(self.files[j])))

    def describe(self, j: int) -> str:
        return str(self.files[j])

    def take(self, start: int, stop: int, name: str | None = None, geometry: Geometry | None = None
             ) -> FileImageSet:
        """Images [start, stop) as a set of the same kind, sharing the cache (stored as `geometry`, default the
        set's own) and the unreadable files found so far (the held-out part's among them), so its report counts
        them."""
        part = FileImageSet(self.files[start:stop], geometry or self.geometry, name or self.name, self.cache)
        part.note_skipped(self.skipped)
        return part

    def note_skipped(self, names: list[str]) -> None:
        """Count these unreadable files (each once, however often it is tried)."""
        self.skipped.extend(n for n in names if n not in self.skipped)

    def _skip(self, j: int, e: DataError) -> None:
        log.warning("skipping: %s", e)
        self.note_skipped([self.describe(j)])

    def preload(self, limit_mb: float | None = None) -> TensorImageSet | None:
        """Everything decoded into memory; unreadable images are left out and counted. None (nothing kept) when
        the decoded images pass `limit_mb`: sets of one stored shape know that before decoding, others find out."""
        from tqdm import tqdm

        per_image = self.geometry.stored_bytes()
        limit = None if limit_mb is None else limit_mb * 2**20
        if limit is not None and per_image is not None and len(self) * per_image > limit:
            return None
        good, used, known = [], 0, len(self.skipped)
        for j in tqdm(range(len(self)), desc=f"decoding {self.name}", unit="img", leave=False, disable=len(self) < 200):
            try:
                good.append(self.decode(j))
            except DataError as e:
                self._skip(j, e)
                continue
            used += good[-1].numel()
            if limit is not None and used > limit:
                log.info("%s: decoded images pass %.0f MB; decoding per batch instead", self.name, limit_mb)
                del self.skipped[known:]  # found again (and counted) when a batch reads them
                return None
        if not good:
            raise DataError(f"{self.name}: none of the {len(self)} images could be read")
        return TensorImageSet(good, name=self.name, skipped=self.skipped)

    def load(self, i: int) -> torch.Tensor:
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            if j in self._bad:
                continue
            try:
                if self.cache is None:
                    return self.decode(j)
                return self.cache.fetch(self.key(j), lambda j=j: self.decode(j), lambda j=j: self.version(j))
            except DataError as e:
                self._bad.add(j)
                self._skip(j, e)
        raise DataError(f"{self.name}: no readable image among {len(self.files)} files")

    def get(self, indices) -> Images:
        return stack_if_same([self.load(int(i)) for i in indices])

    def report(self) -> str:
        return super().report() + (f"; {self.cache.report()}" if self.cache is not None else "")


def preload_if_fits(images: ImageSet, limit_mb: float) -> ImageSet:
    """A set decoded per batch turned into one in memory when its decoded images fit `limit_mb`."""
    if not isinstance(images, FileImageSet):
        return images
    loaded = images.preload(limit_mb)
    if loaded is None:
        log.info("%s: %d images exceed preload_limit_mb; decoding per batch", images.name, len(images))
        return images
    return loaded


def subset(images: ImageSet, count: int) -> ImageSet:
    """The first `count` images (a deterministic cut, for the dataset-size experiment)."""
    if not count or count >= len(images):
        return images
    if isinstance(images, (TensorImageSet, FileImageSet)):
        return images.take(0, count, f"{images.name}[:{count}]")
    return TensorImageSet(images.get(list(range(count))), name=f"{images.name}[:{count}]")


def split_holdout(images: ImageSet, count: int, fallback: int = 8) -> tuple[ImageSet, torch.Tensor]:
    """(training part, held-out uint8 batch): the last `count` images are held out of training.
    With count 0 nothing is held out and the first `fallback` training images serve for samples.
    A set decoded per batch decodes its held-out files as its geometry's `held()` says (no jitter);
    images already in memory are centre-cropped to the crop shape."""
    n = len(images)
    if count <= 0:
        return images, held_batch(images, 0, min(fallback, n))
    if count >= n:
        raise DataError(f"{images.name}: cannot hold out {count} of {n} images")
    held = held_batch(images, n - count, n)  # first: its unreadable files are counted in the training part too
    return images.take(0, n - count), held


def held_batch(images: ImageSet, start: int, stop: int) -> torch.Tensor:
    """Images [start, stop) as one held-out batch at the training crop shape. Unreadable files are left out
    and counted in `images`' report (the batch is smaller)."""
    if isinstance(images, FileImageSet):
        held = images.take(start, stop, f"{images.name} (held out)", images.geometry.held())
        loaded = held.preload()
        images.note_skipped(held.skipped)
        return center_crops(loaded.get(list(range(len(loaded)))), images.geometry.crop)
    return images.get(list(range(start, stop)))

"""Image sets: a uniform `get(indices) -> N x 3 x S x S uint8` over memory or files on disk.

Small sets are decoded once into one uint8 tensor (the decoded cache: no decoding in the training loop);
sets that would not fit `preload_limit_mb` are decoded per batch. Unreadable files are skipped and
counted, never fatal: the count and the first names are reported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .cache import DecodedCache
from .images import DataError, load_rgb, resize_center_crop, to_chw_tensor

log = logging.getLogger(__name__)


class ImageSet:
    """Base: a sized collection of training-size uint8 images."""

    name: str = ""
    skipped: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, indices: list[int] | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def report(self) -> str:
        msg = f"{self.name}: {len(self)} images"
        if self.skipped:
            shown = ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
            msg += f", {len(self.skipped)} unreadable skipped ({shown})"
        return msg


class TensorImageSet(ImageSet):
    def __init__(self, images: torch.Tensor, name: str = "images", skipped: list[str] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("TensorImageSet wants N x 3 x H x W uint8")
        if len(images) == 0:
            raise DataError(f"{name}: no usable images")
        self.images = images.contiguous()
        self.name = name
        self.skipped = skipped or []

    def __len__(self) -> int:
        return len(self.images)

    def get(self, indices) -> torch.Tensor:
        return self.images[torch.as_tensor(indices, dtype=torch.long)]


class FileImageSet(ImageSet):
    """Decodes per request; a file that fails is replaced by the next readable one and counted.
    An optional `cache` (see `cache.py`) keeps decoded images in a bounded memory LRU and on disk."""

    def __init__(self, files: list[Path], size: int, name: str, cache: DecodedCache | None = None):
        self.files = files
        self.size = size
        self.name = name
        self.cache = cache
        self.skipped = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def key(self, j: int) -> str:
        return f"{self.size}:{self.files[j]}"

    def version(self, j: int) -> str:
        try:
            st = os.stat(self.files[j])
        except OSError:
            return "missing"
        return f"{st.st_mtime_ns}:{st.st_size}"

    def decode(self, j: int) -> torch.Tensor:
        return to_chw_tensor(resize_center_crop(load_rgb(self.files[j]), self.size))

    def describe(self, j: int) -> str:
        return str(self.files[j])

    def take(self, start: int, stop: int, name: str | None = None) -> FileImageSet:
        """Images [start, stop) as a set of the same kind, sharing the cache."""
        return FileImageSet(self.files[start:stop], self.size, name or self.name, self.cache)

    def preload(self) -> TensorImageSet:
        """Everything decoded into one tensor; unreadable images are left out and counted."""
        from tqdm import tqdm

        good = []
        for j in tqdm(range(len(self)), desc=f"decoding {self.name}", unit="img", leave=False, disable=len(self) < 200):
            try:
                good.append(self.decode(j))
            except DataError as e:
                self.skipped.append(self.describe(j))
                log.warning("skipping: %s", e)
        if not good:
            raise DataError(f"{self.name}: none of the {len(self)} images could be read")
        return TensorImageSet(torch.stack(good), name=self.name, skipped=self.skipped)

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
                self.skipped.append(self.describe(j))
                log.warning("skipping: %s", e)
        raise DataError(f"{self.name}: no readable image among {len(self.files)} files")

    def get(self, indices) -> torch.Tensor:
        return torch.stack([self.load(int(i)) for i in indices])

    def report(self) -> str:
        return super().report() + (f"; {self.cache.report()}" if self.cache is not None else "")


def decode_all(files: list[Path], size: int, name: str) -> TensorImageSet:
    from tqdm import tqdm

    good, skipped = [], []
    for f in tqdm(files, desc=f"decoding {name}", unit="img", leave=False, disable=len(files) < 200):
        try:
            good.append(to_chw_tensor(resize_center_crop(load_rgb(f), size)))
        except DataError as e:
            skipped.append(str(f))
            log.warning("skipping: %s", e)
    if not good:
        raise DataError(f"{name}: none of the {len(files)} image files could be read")
    return TensorImageSet(torch.stack(good), name=name, skipped=skipped)


def subset(images: ImageSet, count: int) -> ImageSet:
    """The first `count` images (a deterministic cut, for the dataset-size experiment)."""
    if not count or count >= len(images):
        return images
    if isinstance(images, TensorImageSet):
        return TensorImageSet(images.images[:count], name=f"{images.name}[:{count}]", skipped=images.skipped)
    if isinstance(images, FileImageSet):
        return images.take(0, count, f"{images.name}[:{count}]")
    return TensorImageSet(images.get(list(range(count))), name=f"{images.name}[:{count}]")


def split_holdout(images: ImageSet, count: int, fallback: int = 8) -> tuple[ImageSet, torch.Tensor]:
    """(training part, held-out uint8 batch): the last `count` images are held out of training.
    With count 0 nothing is held out and the first `fallback` training images serve for samples."""
    n = len(images)
    if count <= 0:
        return images, images.get(list(range(min(fallback, n))))
    if count >= n:
        raise DataError(f"{images.name}: cannot hold out {count} of {n} images")
    held = images.get(list(range(n - count, n)))
    if isinstance(images, TensorImageSet):
        return TensorImageSet(images.images[: n - count], images.name, images.skipped), held
    return images.take(0, n - count), held

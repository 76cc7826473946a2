"""Image sets: a uniform `get(indices) -> N x 3 x S x S uint8` over memory or files on disk.

Small sets are decoded once into one uint8 tensor (the decoded cache: no decoding in the training loop);
sets that would not fit `preload_limit_mb` are decoded per batch. Unreadable files are skipped and
counted, never fatal: the count and the first names are reported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .images import DataError, list_images, load_rgb, resize_center_crop, to_chw_tensor

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
    """Decodes per request; a file that fails is replaced by the next readable one and counted."""

    def __init__(self, files: list[Path], size: int, name: str):
        self.files = files
        self.size = size
        self.name = name
        self.skipped = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> torch.Tensor:
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            if j in self._bad:
                continue
            try:
                return to_chw_tensor(resize_center_crop(load_rgb(self.files[j]), self.size))
            except DataError as e:
                self._bad.add(j)
                self.skipped.append(str(self.files[j]))
                log.warning("skipping: %s", e)
        raise DataError(f"{self.name}: no readable image among {len(self.files)} files")

    def get(self, indices) -> torch.Tensor:
        return torch.stack([self.load(int(i)) for i in indices])


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


def folder_image_set(folder: str | Path, size: int, preload_limit_mb: int = 2048, max_images: int = 0,
                     name: str | None = None) -> ImageSet:
    files = list_images(folder)
    if max_images:
        files = files[:max_images]
    name = name or str(folder)
    need_mb = len(files) * 3 * size * size / 2**20
    if need_mb <= preload_limit_mb:
        return decode_all(files, size, name)
    log.info("%s: %d images (%.0f MB decoded) exceed preload_limit_mb; decoding per batch", name, len(files), need_mb)
    return FileImageSet(files, size, name)


def subset(images: ImageSet, count: int) -> ImageSet:
    """The first `count` images (a deterministic cut, for the dataset-size experiment)."""
    if not count or count >= len(images):
        return images
    if isinstance(images, TensorImageSet):
        return TensorImageSet(images.images[:count], name=f"{images.name}[:{count}]", skipped=images.skipped)
    if isinstance(images, FileImageSet):
        return FileImageSet(images.files[:count], images.size, f"{images.name}[:{count}]")
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
    return FileImageSet(images.files[: n - count], images.size, images.name), held

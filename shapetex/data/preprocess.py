"""The reference's `--preprocess` for shapetex's sets: how each image is stored, and how every batch is cropped.

A `Geometry` says both. Stored images are, by `data.preprocess`:
- resize_and_crop (the reference's default): resized to cover the load shape, centre-cropped to it (one shape
  for all: they stack into one tensor). With load_size 286 and size 256, the reference's jitter;
- scale_width_and_crop: scaled to the load width, the aspect ratio kept (heights differ; at least the crop's);
- crop: kept at their own size (only an image smaller than the crop is enlarged to cover it).
Every batch then takes one random crop of the training shape per image, the same for both images of a pair.
The offsets come from a generator seeded by (seed, stream, step), drawn for the whole global batch with each
rank taking its positions as `IndexStream` does: a batch stays a pure function of the step (exact resume,
DDP). Flips stay the trainer's. Held-out images skip the jitter: resized straight to the crop shape, or, in
crop mode, centre-cropped at their own scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataConfig
from .images import DataError, resize_center_crop, scale_to_width

REFERENCE_LOAD_RATIO = 286 / 256  # the reference's load_size / crop_size, kept at other sizes
CROP_STREAM_STRIDE = 424_242  # stream k's crops: generator seed offset k * stride (streams draw independently)

Images = torch.Tensor | list[torch.Tensor]  # a batch: N x 3 x H x W, or a list of 3 x H_i x W_i when sizes differ


def default_load_size(size: int, ratio: float) -> int:
    """The load size a method asks for at training size `size` (286 at 256 for the reference's ratio)."""
    return max(size, int(round(size * ratio)))


@dataclass(frozen=True)
class Geometry:
    crop: tuple[int, int]  # (height, width) of the training crops
    mode: str = "resize_and_crop"  # one of config.PREPROCESS_MODES
    load: tuple[int, int] | None = None  # resize_and_crop: the stored shape; scale_width_and_crop: load[1] is the width

    @classmethod
    def square(cls, size: int) -> Geometry:
        """Resized and centre-cropped to `size`, no jitter: what every set was before load sizes existed."""
        return cls((size, size), "resize_and_crop", (size, size))

    @property
    def fixed(self) -> tuple[int, int] | None:
        """The stored shape when every image has it (they stack into one tensor), else None."""
        return self.load if self.mode == "resize_and_crop" else None

    @property
    def jitter(self) -> bool:
        return self.fixed != self.crop

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """One decoded H x W x 3 image as the set stores it."""
        if self.mode == "resize_and_crop":
            return resize_center_crop(img, self.load)
        if self.mode == "scale_width_and_crop":
            return scale_to_width(img, self.load[1], self.crop[0])
        h, w = img.shape[:2]
        if h < self.crop[0] or w < self.crop[1]:  # too small to crop: enlarged just enough to cover
            scale = max(self.crop[0] / h, self.crop[1] / w)
            return resize_center_crop(img, (max(self.crop[0], round(h * scale)), max(self.crop[1], round(w * scale))))
        return img

    def held(self) -> Geometry:
        """Held-out images: no jitter (the reference tests with load_size = crop_size)."""
        return self if self.mode == "crop" else Geometry(self.crop, self.mode, self.crop)

    def key(self) -> str:
        """Names stored images in caches: a square resize keeps the bare size it always had."""
        if self.mode == "resize_and_crop" and self.load[0] == self.load[1]:
            return str(self.load[0])
        load = "x".join(map(str, self.load)) if self.load else "native"
        return f"{self.mode}:{load}:{self.crop[0]}x{self.crop[1]}"

    def stored_bytes(self) -> int | None:
        """Bytes per stored image when all have one shape."""
        return None if self.fixed is None else 3 * self.fixed[0] * self.fixed[1]

    def describe(self) -> str:
        h, w = self.crop
        crop = f"{h}" if h == w else f"{h}x{w}"
        if not self.jitter:
            return f"resized to {crop}"
        if self.mode == "crop":
            return f"random {crop} crops at the images' own size"
        if self.mode == "scale_width_and_crop":
            return f"scaled to width {self.load[1]}, random {crop} crops"
        lh, lw = self.load
        return f"resized to {lh if lh == lw else f'{lh}x{lw}'}, random {crop} crops"


def as_geometry(size: int | Geometry) -> Geometry:
    return size if isinstance(size, Geometry) else Geometry.square(size)


def data_geometry(cfg: DataConfig) -> Geometry:
    """The geometry of a run's training sets. data.load_size None (not resolved by a method): no jitter."""
    crop = (cfg.size, cfg.width or cfg.size)
    if cfg.preprocess == "crop":
        return Geometry(crop, "crop")
    if cfg.preprocess not in ("resize_and_crop", "scale_width_and_crop"):
        raise DataError(f"data.preprocess {cfg.preprocess!r} is not resize_and_crop, crop or scale_width_and_crop")
    load_h = cfg.load_size or cfg.size
    return Geometry(crop, cfg.preprocess, (load_h, max(crop[1], int(round(crop[1] * load_h / cfg.size)))))


def builtin_side(cfg: DataConfig) -> int:
    """The side the built-in (square, rendered) images are made at: the load size, for the jitter."""
    g = data_geometry(cfg)
    if g.mode != "resize_and_crop" or g.crop[0] != g.crop[1]:
        raise DataError("the built-in data is square, rendered at its size: non-square crops (data.width) and "
                        "data.preprocess crop or scale_width_and_crop need image folders")
    return g.load[0]


def resolve_load_size(cfg: DataConfig, ratio: float) -> int | None:
    """data.load_size as a run records it: the given one, else the method's ratio of the size (none in crop mode)."""
    if cfg.load_size is not None or cfg.preprocess == "crop":
        return cfg.load_size
    return default_load_size(cfg.size, ratio)


# ---- crops ---------------------------------------------------------------------------------------
def crop_at(img: torch.Tensor, crop: tuple[int, int], where: tuple[float, float]) -> torch.Tensor:
    """The `crop` (h, w) window of a 3 x H x W image at fractions `where` in [0, 1) of the free range."""
    h, w = crop
    free_h, free_w = img.shape[-2] - h, img.shape[-1] - w
    if free_h < 0 or free_w < 0:
        raise ValueError(f"a {img.shape[-2]}x{img.shape[-1]} image cannot be cropped to {h}x{w}")
    top, left = min(int(where[0] * (free_h + 1)), free_h), min(int(where[1] * (free_w + 1)), free_w)
    return img[:, top: top + h, left: left + w]


def center_crops(images: Images, crop: tuple[int, int]) -> torch.Tensor:
    """Each image's central `crop` window (as resize_center_crop places it), stacked: held-out batches."""
    if isinstance(images, torch.Tensor) and tuple(images.shape[-2:]) == tuple(crop):
        return images
    h, w = crop
    out = []
    for img in images:
        top, left = (img.shape[-2] - h) // 2, (img.shape[-1] - w) // 2
        if top < 0 or left < 0:
            raise ValueError(f"a {img.shape[-2]}x{img.shape[-1]} image cannot be cropped to {h}x{w}")
        out.append(img[:, top: top + h, left: left + w])
    return torch.stack(out).contiguous()


def stack_if_same(images: list[torch.Tensor]) -> Images:
    """One tensor when every image has one shape (the fast path), else the list."""
    if images and all(img.shape == images[0].shape for img in images):
        return torch.stack(images)
    return images


class RandomCrops:
    """The random crops of one stream: `fractions(step)` gives this rank's (top, left) fractions of global batch
    `step`, `apply` cuts them. No geometry, or one without jitter, passes batches through untouched."""

    def __init__(self, geometry: Geometry | None, seed: int, stream: int, global_batch: int, rank: int = 0,
                 world: int = 1):
        self.geometry, self.crop = geometry, geometry.crop if geometry else None
        self.seed, self.stream, self.global_batch, self.rank, self.world = seed, stream, global_batch, rank, world

    def fractions(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + step * 9_973 + (self.stream + 1) * CROP_STREAM_STRIDE) % (2**63 - 1))
        return torch.rand(self.global_batch, 2, generator=g, dtype=torch.float64)[self.rank:: self.world]

    def apply(self, images: Images, fractions: torch.Tensor) -> torch.Tensor:
        if isinstance(images, torch.Tensor) and tuple(images.shape[-2:]) == self.crop:
            return images
        return torch.stack([crop_at(img, self.crop, tuple(f)) for img, f in zip(images, fractions.tolist(),
                                                                                strict=True)]).contiguous()

    @property
    def active(self) -> bool:
        return self.geometry is not None and self.geometry.jitter

    def __call__(self, images: Images, step: int) -> torch.Tensor:
        return self.apply(images, self.fractions(step)) if self.active else images

"""Finding, decoding and resizing image files. Everything here returns uint8 arrays; nothing knows of models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}

# Decoding costs tens of bytes per pixel on the way to RGB, so the size an image declares in its header is checked
# before anything is unpacked: a 300 KB PNG can declare 10000 x 10000. The limit is DataConfig.max_pixels (the
# environment variable carries it to loader processes, forked or spawned).
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "SHAPETEX_MAX_PIXELS"
Image.MAX_IMAGE_PIXELS = 178_956_970  # PIL's own guard stays as a backstop for code that opens images elsewhere


class DataError(UserError, ValueError):
    """Input data or files that cannot be used (images, folders, checkpoints, run folders, downloads), with a
    message that says what to fix. A ValueError too, for code that catches those."""


def max_pixels() -> int:
    """The largest width x height decoded: $SHAPETEX_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "")
    try:
        return int(text) if text else DEFAULT_MAX_PIXELS
    except ValueError:
        raise DataError(f"${MAX_PIXELS_ENV} must be a whole number of pixels, not {text!r}") from None


def set_max_pixels(limit: int) -> None:
    """Set the decoding limit for this process and the loader processes it starts."""
    if int(limit) < 1:
        raise DataError(f"data.max_pixels must be at least 1, not {limit}")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


def list_images(folder: str | Path) -> list[Path]:
    """All image files below `folder`, sorted, so that every process sees the same order."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    files, seen = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        # a linked folder is walked once: a link back to a folder above (`ln -s . loop`) would walk forever
        # and count every image again
        here = os.stat(root)
        if (here.st_dev, here.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((here.st_dev, here.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS)
    files.sort()
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {folder}")
    return files


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (RGBA, LA, P, L, I;16, CMYK...) to RGB; transparency is composited over white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit samples (PIL opens 16-bit PNGs as "I"): scale the full 0..65535 range, not the image's maximum,
        # so that a dark image stays dark
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.round(arr * (255 / 65535)), 0, 255).astype(np.uint8))
    return img.convert("RGB")


def load_rgb(path, limit: int | None = None) -> np.ndarray:
    """Decode one file (a path or a file object) to an HxWx3 uint8 array. Raises DataError with the file name when
    it cannot, or when its header declares more than `limit` (default: max_pixels()) pixels."""
    limit = max_pixels() if limit is None else limit
    what = f"image {path}" if isinstance(path, (str, os.PathLike)) else "the image"
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > limit:
                raise DataError(f"{what} is {w} x {h} = {w * h:,} pixels, more than the limit of {limit:,} "
                                f"(setting data.max_pixels, or ${MAX_PIXELS_ENV}): shrink it or raise the limit")
            img.load()
            return np.asarray(to_rgb(img), dtype=np.uint8).copy()
    except DataError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def resize_center_crop(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize so the image covers `size` (h, w), then crop the centre; antialiased (PIL's bicubic)."""
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = img.shape[:2]
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    pil = Image.fromarray(img)
    if (nh, nw) != (h, w):
        pil = pil.resize((nw, nh), Image.BICUBIC)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.asarray(pil.crop((left, top, left + tw, top + th)), dtype=np.uint8)


def scale_to_width(img: np.ndarray, width: int, min_height: int = 1) -> np.ndarray:
    """Resize to `width`, the aspect ratio kept but at least `min_height` high (the reference's scale_width)."""
    h, w = img.shape[:2]
    nh = max(min_height, round(h * width / w))
    if (nh, width) == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((width, nh), Image.BICUBIC), dtype=np.uint8)


def to_chw_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1], the package's inside convention."""
    return x.float().div_(127.5).sub_(1.0)


def float_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] to uint8 [0, 255], rounded to the nearest."""
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def as_float_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float [-1, 1] (`uint8_to_float`); float images (already in [-1, 1]) as float32."""
    return uint8_to_float(x) if x.dtype == torch.uint8 else x.float()


def save_uint8(img: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Save a 3xHxW uint8 tensor or HxWx3 array as an image file (format from the suffix)."""
    if isinstance(img, torch.Tensor):
        img = img.cpu().numpy().transpose(1, 2, 0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)

"""Finding, decoding and resizing image files. Everything here returns uint8 arrays; nothing knows of models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}

# Refuse decompression bombs: PIL raises for images above this many pixels.
Image.MAX_IMAGE_PIXELS = 178_956_970


class DataError(ValueError):
    """Input data that cannot be used, with a message that says what to fix."""


def list_images(folder: str | Path) -> list[Path]:
    """All image files below `folder`, sorted, so that every process sees the same order."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
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
        arr = np.asarray(img, dtype=np.float64)
        hi = max(arr.max(), 1.0)
        img = Image.fromarray((arr / hi * 255).astype(np.uint8))
    return img.convert("RGB")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode one file to an HxWx3 uint8 array. Raises DataError with the file name when it cannot."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(to_rgb(img), dtype=np.uint8).copy()
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


def to_chw_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1], the package's inside convention."""
    return x.float().div_(127.5).sub_(1.0)


def float_to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def save_uint8(img: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Save a 3xHxW uint8 tensor or HxWx3 array as an image file (format from the suffix)."""
    if isinstance(img, torch.Tensor):
        img = img.cpu().numpy().transpose(1, 2, 0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)

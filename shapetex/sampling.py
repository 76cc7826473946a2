"""Sample grids: one row per held-out input; the input, then the outputs for several fixed z."""

from __future__ import annotations

from pathlib import Path

import torch


def save_sample_grid(method, holdout, path: str | Path, samples: int = 4, seed: int = 0) -> Path:
    return save_columns(method.sample_columns(holdout, samples, seed), path)


def save_columns(columns: list[torch.Tensor], path: str | Path) -> Path:
    """A PNG grid: one row per image of the N x 3 x H x W float [-1, 1] columns, side by side."""
    from torchvision.utils import save_image  # here, not at the top: all of torchvision costs ~170 MB of memory

    n = columns[0].shape[0]
    # rows: one per input; save_image lays out row-major with nrow images per row
    grid = torch.stack(columns, dim=1).reshape(n * len(columns), *columns[0].shape[1:])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.add(1).div(2).clamp(0, 1), path, nrow=len(columns), padding=2, pad_value=1.0)
    return path


def labelled_grid(sections: list[tuple[list[str], list[torch.Tensor]]], path: str | Path, scale: int = 1) -> Path:
    """A PNG of several grids one above the other, each with a header row of column labels.

    sections: (labels, columns) pairs, columns as in `save_columns`; tiles are upscaled `scale` times with
    nearest neighbour, so small images stay sharp enough to see."""
    import numpy as np
    from PIL import Image, ImageDraw

    pad, label_h = 4, 16
    blocks = []
    for labels, columns in sections:
        tiles = [c.add(1).div(2).clamp(0, 1).mul(255).round().byte() for c in columns]
        n, (h, w) = tiles[0].shape[0], tiles[0].shape[-2:]
        th, tw = h * scale, w * scale
        block = Image.new("RGB", (len(tiles) * (tw + pad) + pad, label_h + n * (th + pad) + pad), "white")
        draw = ImageDraw.Draw(block)
        for j, (label, col) in enumerate(zip(labels, tiles)):
            x0 = pad + j * (tw + pad)
            draw.text((x0 + 2, 2), label, fill="black")
            for i in range(n):
                arr = col[i].permute(1, 2, 0).numpy()
                tile = Image.fromarray(np.ascontiguousarray(arr)).resize((tw, th), Image.NEAREST)
                block.paste(tile, (x0, label_h + pad + i * (th + pad)))
        blocks.append(block)
    out = Image.new("RGB", (max(b.width for b in blocks), sum(b.height for b in blocks) + pad * len(blocks)), "white")
    y = 0
    for b in blocks:
        out.paste(b, (0, y))
        y += b.height + pad
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path

"""Sample grids: one row per held-out input; the input, then the outputs for several fixed z."""

from __future__ import annotations

from pathlib import Path

import torch


@torch.no_grad()
def sample_columns(method, holdout: dict[str, torch.Tensor], samples: int, seed: int) -> list[torch.Tensor]:
    """Columns of the grid as float [-1, 1] CPU tensors; methods may override `sample_columns` themselves."""
    if hasattr(method, "sample_columns"):
        return method.sample_columns(holdout, samples, seed)
    engine = method.engine
    x = engine.prepare_images(holdout[method.sample_key][:8])
    columns = [x]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(samples if method.z_dim else 1):
        z = method.sample_z(x.shape[0], gen, engine.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # fixed noise inputs, so grids over time are comparable
            columns.append(method.translate(x, z))
    return [c.float().cpu() for c in columns]


def save_sample_grid(method, holdout, path: str | Path, samples: int = 4, seed: int = 0) -> Path:
    return save_columns(sample_columns(method, holdout, samples, seed), path)


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

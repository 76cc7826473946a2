"""Where does a trained streamlined translator lose the silhouette? On held-out built-in shapes, the share of
the input's shape that the output covers, split into the shape's rim (within `--rim` pixels of its outline)
and its interior, and the output's foreground that spills outside the shape.

    python benchmarks/silhouette_coverage.py runs/quickstart [runs/tune/def_s1 ...] [--inputs 128 --rim 2]

Foreground is the silhouette score's own (`metrics.shapes.foreground_mask`: far from the background colour).
A translator that paints stripes along the outline only and leaves the inside as background has high rim
and low interior coverage; one that paints the whole shape has both near 1.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from shapetex.api import Translator
from shapetex.data.builtin import builtin_images
from shapetex.data.images import uint8_to_float
from shapetex.metrics.shapes import foreground_mask


def erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """N x H x W bool mask eroded by `pixels` (square structuring element)."""
    k = 2 * pixels + 1
    return (-F.max_pool2d(-mask.float().unsqueeze(1), k, stride=1, padding=pixels)).squeeze(1) > 0.5


def share(hit: torch.Tensor, region: torch.Tensor) -> float:
    """Pooled share of `region`'s pixels that are in `hit`, over all images."""
    return float((hit & region).sum() / region.sum().clamp_min(1))


@torch.no_grad()
def coverage(run: str, inputs: int = 128, rim: int = 2, seed: int = 0) -> dict[str, float]:
    t = Translator.load(run, device="cpu")
    x = uint8_to_float(builtin_images("shape-holdout", inputs, t.size, seed + 1, t.config.data.builtin_task))
    out = t.translate_tensor(x, 1, seed)[:, 0]
    shape, painted = foreground_mask(x), foreground_mask(out)
    inner = erode(shape, rim)
    return {"rim": share(painted, shape & ~inner), "interior": share(painted, inner),
            "spill": float((painted & ~shape).sum() / shape.sum().clamp_min(1))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--inputs", type=int, default=128)
    p.add_argument("--rim", type=int, default=2)
    a = p.parse_args()
    print(f"| run | rim covered (within {a.rim} px of the outline) | interior covered | spill (of the shape's area) |")
    print("| --- | --- | --- | --- |")
    for run in a.runs:
        c = coverage(run, a.inputs, a.rim)
        print(f"| {run} | {c['rim']:.3f} | {c['interior']:.3f} | {c['spill']:.3f} |")


if __name__ == "__main__":
    main()

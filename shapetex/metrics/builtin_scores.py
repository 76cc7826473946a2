"""The built-in tasks' scores, one entry per task: what a translator kept, what it took, and what z changes.

Each task scores K outputs per input (N x K x 3 x H x W, float in [-1, 1]) against the inputs, and names its
columns, so the quickstart, the tuning benchmark and the experiments print one table for either task.
- colours: silhouette IoU; the share of outputs filled from the texture set's family of hues; the hue spread
  over the K outputs (circular sd, degrees).
- stripes: silhouette IoU; the texture score (local contrast, real stripes 1); the stripe-angle spread over
  the K outputs (degrees) and the stripes' coherence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .colours import colour_z_spread, texture_taken
from .shapes import shape_scores, silhouette_score
from .stripes import z_spread


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: str  # format spec of the value


@dataclass(frozen=True)
class TaskScores:
    row: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]  # (inputs N, outputs N x K) -> scores
    spread: str  # the key of what z should change (its "z alone" twin is spread + "_z")
    columns: tuple[Column, ...]


def _colours_row(x: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    return {"silhouette": silhouette_score(x, outputs[:, 0]), "texture_taken": texture_taken(outputs[:, 0]),
            **colour_z_spread(outputs)}


def _stripes_row(x: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    return {**shape_scores(x, outputs[:, 0]), **z_spread(outputs)}


TASK_SCORES = {
    "colours": TaskScores(_colours_row, "hue_spread", (
        Column("silhouette", "silhouette IoU (shape kept)", ".3f"),
        Column("texture_taken", "texture taken (outputs with a texture-set colour)", ".0%"),
        Column("hue_spread", "hue spread over {k} samples (degrees)", ".1f"),
        Column("hue_spread_z", "of it, z alone (noise fixed)", ".1f"),
        Column("pixel_diversity", "pixel diversity over samples", ".3f"))),
    "stripes": TaskScores(_stripes_row, "angle_spread", (
        Column("silhouette", "silhouette IoU (shape kept)", ".3f"),
        Column("texture", "texture score (stripes)", ".3f"),
        Column("angle_spread", "stripe-angle spread over {k} samples (degrees)", ".1f"),
        Column("angle_spread_z", "of it, z alone (noise fixed)", ".1f"),
        Column("stripe_coherence", "stripe coherence", ".2f"),
        Column("pixel_diversity", "pixel diversity over samples", ".3f"))),
}


def score_table(rows: dict[str, dict[str, float]], task: str, samples: int) -> str:
    """Markdown table, one line per scored output (translator, baselines), the task's columns."""
    cols = TASK_SCORES[task].columns
    lines = ["| output | " + " | ".join(c.title.format(k=samples) for c in cols) + " |",
             "| --- |" + " --- |" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(format(r[c.key], c.fmt) if c.key in r else "-" for c in cols) + " |")
    return "\n".join(lines)

"""The shared driver of the paper's experiments: train in chunks of K images and measure between chunks.

A `Tracker` holds a fixed set of held-out shape images and fixed latents; at every measurement point it
translates them with the method's EMA generator and records
- recon_mse: mean squared error between input and output ([-1, 1] units, outputs clamped to the image range),
- a content-preservation score: silhouette IoU on the built-in data, structure SSIM of edge maps on real data,
- diversity (with 2 or more latents per input): mean pairwise absolute pixel difference of one input's outputs,
- texture score (built-in data): how striped the outputs are.
`train_tracked` runs `Trainer.run(stop_after_images=...)` in chunks of K on one Trainer (the loop state lives on
the object, so a later call continues where the previous stopped) and calls the tracker between chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import RunConfig, apply_override
from ..metrics.image_scores import pixel_diversity, reconstruction_mse, structure_ssim
from ..metrics.shapes import silhouette_score, texture_score

EVAL_SEED = 4242  # the held-out built-in images and the measurement latents do not depend on the run's seed


@dataclass
class ExperimentSettings:
    """What every experiment shares; the defaults finish on built-in data in minutes on a small CPU."""

    data: list[str] = field(default_factory=lambda: ["builtin"])  # ["builtin"] or [SHAPE_DIR, TEXTURE_DIR]
    out: str = "runs/experiments"
    size: int = 32
    budget: int = 4000  # training images per run
    seeds: int = 1  # each variant is trained with seeds seed0 .. seed0 + seeds - 1
    seed0: int = 0
    every: int = 1000  # K: images between measurements
    batch: int = 16
    eval_images: int = 64  # held-out shape images translated at every measurement
    samples: int = 4  # latents per input (diversity; 1 gives none)
    grid_images: int = 8  # rows of the image grids
    builtin_count: int = 4000  # images per built-in set ("all" in the dataset-size experiment)
    device: str = "auto"
    threads: int = 0
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every run, e.g. model.g_channel_max=128

    @property
    def builtin(self) -> bool:
        return self.data == ["builtin"]

    @property
    def preservation(self) -> str:
        return "silhouette" if self.builtin else "structure_ssim"

    def validate(self) -> None:
        if not self.builtin and len(self.data) != 2:
            raise ValueError("--data is 'builtin' or two folders: SHAPE_DIR TEXTURE_DIR")
        for name in ("budget", "seeds", "every", "batch", "eval_images", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def base_config(s: ExperimentSettings, out: str | Path, seed: int, method: str = "adversarial") -> RunConfig:
    """One run of an experiment: narrow networks as in the quickstart, checkpoints and monitors at each chunk."""
    cfg = RunConfig(method=method, out=str(out))
    d, t = cfg.data, cfg.train
    d.size = s.size
    if s.builtin:
        d.source, d.builtin_count = "builtin", s.builtin_count
    else:
        d.source, d.shape, d.texture = "folders", s.data[0], s.data[1]
        d.holdout = s.eval_images  # the measured images never take part in training
    t.budget, t.batch, t.seed, t.device, t.threads = s.budget, s.batch, seed, s.device, s.threads
    t.log_every = t.monitor_every = s.every
    t.sample_every = t.checkpoint_every = 0  # Trainer.run saves a checkpoint and a grid at the end of each chunk
    t.keep_checkpoints = 1
    cfg.model = {"g_channel_max": 64, "d_channel_max": 64, "r1_gamma": 0.1}
    for item in s.overrides:
        if "=" not in item:
            raise ValueError(f"--set wants KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        apply_override(cfg, key.strip(), value.strip())
    return cfg


def held_out_shapes(s: ExperimentSettings) -> torch.Tensor:
    """The fixed held-out shape images every run is measured on (uint8 N x 3 x S x S)."""
    if s.builtin:
        from ..data.builtin import builtin_images

        return builtin_images("shape-holdout", s.eval_images, s.size, seed=EVAL_SEED)
    from ..data.sets import folder_image_set, split_holdout

    # the same split as the training data's (data.holdout = eval_images): the last images of the shape folder
    _, held = split_holdout(folder_image_set(s.data[0], s.size), s.eval_images)
    return held


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()


class Tracker:
    """Translates fixed inputs with fixed latents at every measurement point and records the scores.

    `translate(x, z) -> y` is any translation function (a method's `translate`: the EMA generator), x and y
    float N x 3 x H x W in [-1, 1]. Rows are dicts {images, recon_mse, <preservation>, diversity, texture}."""

    def __init__(self, inputs: torch.Tensor, samples: int = 1, preservation: str = "silhouette",
                 texture: bool | None = None, grid: int = 8, seed: int = EVAL_SEED, batch: int = 64):
        if preservation not in ("silhouette", "structure_ssim"):
            raise ValueError(f"preservation is 'silhouette' or 'structure_ssim', not {preservation!r}")
        self.inputs = to_float(inputs).cpu()
        self.samples, self.preservation, self.grid, self.seed, self.batch = samples, preservation, grid, seed, batch
        self.texture = preservation == "silhouette" if texture is None else texture
        self.rows: list[dict] = []
        self.snapshots: list[tuple[int, torch.Tensor]] = []  # (images, the first `grid` outputs for latent 0)
        self.last_outputs: torch.Tensor | None = None  # N x K x 3 x H x W of the latest measurement

    def latents(self, z_dim: int) -> list[torch.Tensor | None]:
        if not z_dim:
            return [None] * self.samples
        g = torch.Generator().manual_seed(self.seed)
        return [torch.randn(len(self.inputs), z_dim, generator=g) for _ in range(self.samples)]

    @torch.no_grad()
    def outputs(self, translate: Callable, z_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """N x K x 3 x H x W float CPU outputs, clamped to [-1, 1]; repeatable (fixed latents and noise)."""
        cols = []
        for k, z in enumerate(self.latents(z_dim)):
            parts = []
            for i in range(0, len(self.inputs), self.batch):
                x = self.inputs[i:i + self.batch].to(device)
                zz = None if z is None else z[i:i + self.batch].to(device)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed * 7919 + k)  # the generator's noise inputs
                    parts.append(translate(x, zz).float().clamp(-1, 1).cpu())
            cols.append(torch.cat(parts))
        return torch.stack(cols, dim=1)

    def scores(self, out: torch.Tensor) -> dict[str, float]:
        n, k = out.shape[:2]
        flat = out.reshape(n * k, *out.shape[2:])
        x = self.inputs.repeat_interleave(k, dim=0)
        row = {"recon_mse": reconstruction_mse(x, flat)}
        if self.preservation == "silhouette":
            row["silhouette"] = silhouette_score(x, flat)
        else:
            row["structure_ssim"] = float(structure_ssim(x, flat).mean())
        if k >= 2:
            row["diversity"] = float(pixel_diversity(out).mean())
        if self.texture:
            row["texture"] = texture_score(flat)
        return row

    def measure(self, translate: Callable, z_dim: int, images: int, device: torch.device | str = "cpu") -> dict:
        out = self.outputs(translate, z_dim, device)
        row = {"images": int(images), **self.scores(out)}
        self.rows.append(row)
        self.snapshots.append((int(images), out[: self.grid, 0].clone()))
        self.last_outputs = out
        return row

    def measure_method(self, method, images: int) -> dict:
        return self.measure(method.translate, method.z_dim, images, method.engine.device)


def train_tracked(cfg: RunConfig, tracker: Tracker, every: int, log: Callable[[str], None] = print):
    """Train `cfg` to its budget in chunks of `every` images, measuring with `tracker` at 0 images and after each
    chunk (the EMA generator). Returns the Trainer. A stop request (Ctrl-C) ends the run after its chunk's
    measurement; the rows so far stay valid."""
    from ..train import Trainer

    trainer = Trainer(cfg, overwrite=True)  # an experiment re-run regenerates its own run folders
    tracker.measure_method(trainer.method, trainer.images_seen)
    budget = cfg.train.budget
    while trainer.images_seen < budget:
        target = min((trainer.images_seen // every + 1) * every, budget)
        trainer.run(stop_after_images=target)
        row = tracker.measure_method(trainer.method, trainer.images_seen)
        log("  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if trainer.images_seen < target:  # stopped on request
            break
    return trainer


@dataclass
class Variant:
    """One arm of an experiment: a name, a method and an edit of the base config."""

    name: str
    method: str = "adversarial"
    edit: Callable[[RunConfig], None] | None = None


@dataclass
class VariantResult:
    name: str
    seed: int
    run_dir: Path
    tracker: Tracker


def run_variants(s: ExperimentSettings, variants: list[Variant], out: Path, samples: int,
                 log: Callable[[str], None] = print) -> list[VariantResult]:
    """Every variant with every seed (the same seed gives every variant the same initial generator)."""
    inputs = held_out_shapes(s)
    results = []
    for seed in range(s.seed0, s.seed0 + s.seeds):
        for v in variants:
            run_dir = out / "runs" / v.name / f"seed{seed}"
            cfg = base_config(s, run_dir, seed, v.method)
            if v.edit is not None:
                v.edit(cfg)
            log(f"[{v.name}, seed {seed}] {cfg.method}, {cfg.train.budget} images -> {run_dir}")
            tracker = Tracker(inputs, samples, s.preservation, grid=s.grid_images)
            train_tracked(cfg, tracker, s.every, log)
            results.append(VariantResult(v.name, seed, run_dir, tracker))
    return results


def result_rows(results: list[VariantResult]) -> list[dict]:
    return [{"run": r.name, "seed": r.seed, **row} for r in results for row in r.tracker.rows]


# ---- mean and spread over seeds ---------------------------------------------------------------------------
def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


def curves(rows: list[dict], key: str) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """{run: (images, mean over seeds, sd over seeds)} of `key`, at the measurement points all seeds share."""
    by: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if key in r:
            by.setdefault(r["run"], {}).setdefault(r["images"], []).append(r[key])
    out = {}
    for run, points in by.items():
        n = max(len(v) for v in points.values())
        xs = sorted(i for i, v in points.items() if len(v) == n)
        stats = [mean_sd(points[i]) for i in xs]
        out[run] = (xs, [m for m, _ in stats], [sd for _, sd in stats])
    return out


def final_values(rows: list[dict], key: str, first: bool = False) -> dict[str, list[float]]:
    """{run: [the value of `key` at each seed's last (or first) measurement]}."""
    per: dict[tuple[str, int], dict] = {}
    for r in rows:
        if key not in r:
            continue
        k = (r["run"], r["seed"])
        keep = per.get(k)
        if keep is None or (r["images"] < keep["images"] if first else r["images"] > keep["images"]):
            per[k] = r
    out: dict[str, list[float]] = {}
    for (run, _), r in sorted(per.items(), key=lambda kv: kv[0][1]):
        out.setdefault(run, []).append(r[key])
    return out

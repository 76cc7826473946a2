"""Measuring a run while it trains: a `Tracker` translates fixed held-out inputs with fixed latents at every
measurement point and records the scores; `train_tracked` trains in chunks of K images on one Trainer (the loop
state lives on the object, so a later call continues where the previous stopped) and measures between chunks,
stopping at a plateau.

Recorded per measurement:
- recon_mse: mean squared error between input and output ([-1, 1] units, outputs clamped to the image range),
- a content-preservation score: silhouette IoU on the built-in data, structure SSIM of edge maps on real data,
- diversity (with 2 or more latents per input): mean pairwise absolute pixel difference of one input's outputs,
- texture score (built-in data): the task's texture-only feature.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import torch

from ..config import RunConfig
from ..data.images import as_float_images
from ..metrics.colours import colour_z_spread, texture_taken
from ..metrics.image_scores import input_match_rate, pixel_diversity, reconstruction_mse, structure_ssim
from ..metrics.shapes import silhouette_iou, silhouette_score, texture_score
from ..metrics.stripes import z_spread
from ..stopping import StopRequested, requested
from .plateau import PlateauRule

MATCH_MIN_INPUTS = 8  # input_match below this many inputs rests on too few comparisons to judge a run by
EVAL_SEED = 4242  # the held-out built-in images and the measurement latents do not depend on the run's seed


def training_shapes(cfg: RunConfig, count: int) -> torch.Tensor:
    """The first `count` images of a run's own training shape set (after its data.max_images cut): the paper
    measures reconstruction on what the run trains on."""
    from ..data.unpaired import unpaired_sets

    shape, _, _ = unpaired_sets(cfg.data, cfg.train.seed)
    return shape.get(list(range(min(count, len(shape)))))


class Tracker:
    """Translates fixed inputs with fixed latents at every measurement point and records the scores.

    `translate(x, z) -> y` is any translation function (a method's `translate`: the EMA generator), x and y
    float N x 3 x H x W in [-1, 1]. Rows are dicts {images, recon_mse, <preservation>, diversity, texture,
    hue_spread or angle_spread, recon_mse_train}: recon_mse on the held-out inputs, recon_mse_train on `train_inputs`
    (a fixed set of the run's own training images). On a built-in `task`, texture is what the task's texture-only
    feature scores (colours: the share of outputs with a texture-set colour; stripes: the texture score) and the
    spread across the latents is of that feature (colours: hue; stripes: stripe angle; degrees)."""

    def __init__(self, inputs: torch.Tensor, samples: int = 1, preservation: str = "silhouette",
                 task: str | None = None, grid: int = 8, seed: int = EVAL_SEED, batch: int = 64,
                 train_inputs: torch.Tensor | None = None):
        if preservation not in ("silhouette", "structure_ssim"):
            raise ValueError(f"preservation is 'silhouette' or 'structure_ssim', not {preservation!r}")
        self.inputs = as_float_images(inputs).cpu()
        self.train_inputs = None if train_inputs is None else as_float_images(train_inputs).cpu()
        self.samples, self.preservation, self.grid, self.seed, self.batch = samples, preservation, grid, seed, batch
        self.task = task
        self.rows: list[dict] = []
        self.snapshots: list[tuple[int, torch.Tensor]] = []  # (images, the first `grid` outputs for latent 0)
        self.last_outputs: torch.Tensor | None = None  # N x K x 3 x H x W of the latest measurement

    def latents(self, n: int, z_dim: int, samples: int) -> list[torch.Tensor | None]:
        if not z_dim:
            return [None] * samples
        g = torch.Generator().manual_seed(self.seed)
        return [torch.randn(n, z_dim, generator=g) for _ in range(samples)]

    @torch.no_grad()
    def outputs(self, translate: Callable, z_dim: int, device: torch.device | str = "cpu",
                inputs: torch.Tensor | None = None, samples: int | None = None) -> torch.Tensor:
        """N x K x 3 x H x W float CPU outputs, clamped to [-1, 1]; repeatable (fixed latents and noise)."""
        inputs = self.inputs if inputs is None else inputs
        cols = []
        for k, z in enumerate(self.latents(len(inputs), z_dim, samples or self.samples)):
            parts = []
            for i in range(0, len(inputs), self.batch):
                x = inputs[i:i + self.batch].to(device)
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
        # how much the output depends on the input: ~0 when G paints one image whatever it is given (collapse)
        row["input_spread"] = float(out[:, 0].std(dim=0).mean()) if n > 1 else 0.0
        # whether each output is told apart by its own input (~0.5 when G ignores the input, however it varies)
        like = silhouette_iou if self.preservation == "silhouette" else None  # None: the coarse layout
        row["input_match"] = input_match_rate(self.inputs, out[:, 0], like) if n >= MATCH_MIN_INPUTS else float("nan")
        if k >= 2:
            row["diversity"] = float(pixel_diversity(out).mean())
        if self.task == "colours":
            row["texture"] = texture_taken(flat)
            if k >= 2:
                row["hue_spread"] = colour_z_spread(out)["hue_spread"]
        elif self.task == "stripes":
            row["texture"] = texture_score(flat)
            if k >= 2:
                row["angle_spread"] = z_spread(out)["angle_spread"]
        return row

    def measure(self, translate: Callable, z_dim: int, images: int, device: torch.device | str = "cpu") -> dict:
        out = self.outputs(translate, z_dim, device)
        row = {"images": int(images), **self.scores(out)}
        if self.train_inputs is not None:
            own = self.outputs(translate, z_dim, device, self.train_inputs, samples=1)[:, 0]
            row["recon_mse_train"] = reconstruction_mse(self.train_inputs, own)
        self.rows.append(row)
        self.snapshots.append((int(images), out[: self.grid, 0].clone()))
        self.last_outputs = out
        return row

    def measure_method(self, method, images: int) -> dict:
        return self.measure(method.translate, method.z_dim, images, method.engine.device)


def train_tracked(cfg: RunConfig, tracker: Tracker, every: int, log: Callable[[str], None] = print,
                  rules: tuple[PlateauRule, ...] = ()) -> tuple[object, str]:
    """Train `cfg` up to its budget in chunks of `every` images, measuring with `tracker` at 0 images and after
    each chunk (the EMA generator); with `rules`, stop at the first measurement where every rule whose quantity
    the tracker measures says the run has plateaued. Returns (the Trainer, why it stopped). A stop request
    (Ctrl-C, SIGTERM) ends the run after its step's checkpoint and raises StopRequested: the experiment ends."""
    from ..train import Trainer

    if requested():  # this process was asked to stop: a queued run must not start (nor clear its folder)
        raise StopRequested(requested(), f"stopped on request before {cfg.out} began")
    trainer = Trainer(cfg, overwrite=True)  # an experiment re-run regenerates its own run folders
    tracker.measure_method(trainer.method, trainer.images_seen)
    budget, why = cfg.train.budget, f"cap ({cfg.train.budget:,} images)"
    while trainer.images_seen < budget:
        target = min((trainer.images_seen // every + 1) * every, budget)
        if not requested():  # a stop noted between chunks (a worker's signals only set a flag) trains no more
            trainer.run(stop_after_images=target)
        row = tracker.measure_method(trainer.method, trainer.images_seen)
        log("  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if trainer.images_seen < target:  # stopped on request (Ctrl-C, SIGTERM): the whole experiment ends
            trainer.release()
            raise StopRequested(trainer.stop_signal or requested() or signal.SIGINT,
                                f"stopped on request: {cfg.out} at {trainer.images_seen:,} images (checkpointed); "
                                "runs that finished are kept: run the same command with --resume to read them back "
                                "and train the others")
        if plateaued(tracker.rows, rules):
            why = f"plateau at {trainer.images_seen:,} images"
            break
    return trainer, why


def plateaued(rows: list[dict], rules: tuple[PlateauRule, ...]) -> bool:
    """Every rule whose quantity the rows hold has reached its plateau (False without such a rule)."""
    live = [r for r in rules if any(r.key in row for row in rows)]
    for rule in live:
        kept = [row for row in rows if rule.key in row and row["images"] > 0]
        if not rule.reached([row["images"] for row in kept], [row[rule.key] for row in kept]):
            return False
    return bool(live)

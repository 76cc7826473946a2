"""The shared driver of the paper's experiments: their settings, the variants and seeds they train (in parallel
processes, measured by `tracker.Tracker`), what is read back with --resume, and the tables' building blocks
(collapse checks, final values, curves)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..config import BUILTIN_TASKS, ConfigError, RunConfig, apply_override
from ..methods.adversarial import PAPER_SIZE
from ..stopping import clear_stop
from . import finished
from .plateau import PlateauRule
from .presets import SCALES, describe, paper_share, preset_overrides
from .processes import in_processes
from .tracker import EVAL_SEED, Tracker, train_tracked, training_shapes


@dataclass
class ExperimentSettings:
    """What every experiment shares. `budget` is each run's cap; with `plateau` a run stops earlier once its
    monitored quantity has stopped improving (see plateau.PlateauRule)."""

    data: list[str] = field(default_factory=lambda: ["builtin"])  # ["builtin[:TASK]"] or [SHAPE_DIR, TEXTURE_DIR]
    out: str = "runs/experiments"
    scale: str = "cpu"  # cpu (scale-true at `size`) | paper (512 px, the paper's networks) | custom (see presets)
    size: int = 32
    budget: int = 4000  # training images per run at most
    seeds: int = 1  # each variant is trained with seeds seed0 .. seed0 + seeds - 1
    seed0: int = 0
    every: int = 1000  # K: images between measurements
    batch: int = 16
    plateau: bool = True  # stop a run at its plateau (else at the budget)
    window: int = 3  # plateau rule: measurements per window
    tolerance: float = 0.05  # plateau rule: relative improvement of the window mean that still counts
    min_images: int = 0  # plateau rule: never stop before this many images
    eval_images: int = 64  # held-out shape images translated at every measurement (and as many training images)
    samples: int = 4  # latents per input (diversity; 1 gives none)
    grid_images: int = 8  # rows of the image grids
    builtin_count: int = 4000  # images per built-in set ("all" in the dataset-size experiment)
    jobs: int = 1  # runs trained at once, each in its own process
    fid: bool = True  # photos: FID/KID of each translating run's final outputs (fid_at_end)
    feature_net: str | None = None  # FID's feature network (default: the FID Inception network)
    device: str = "auto"
    threads: int = 0
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every run, e.g. model.g_channel_max=128
    resume: bool = False  # read back runs that finished under the same settings instead of training them again

    @property
    def builtin(self) -> bool:
        return len(self.data) == 1 and self.data[0].partition(":")[0] == "builtin"

    @property
    def builtin_task(self) -> str:
        """The built-in task ("builtin" alone: the default colours task)."""
        return self.data[0].partition(":")[2] or "colours"

    @property
    def task(self) -> str | None:
        """The built-in task, or None for photos."""
        return self.builtin_task if self.builtin else None

    def data_line(self) -> str:
        """What the runs translate, for the reports."""
        if not self.builtin:
            return f"{self.data[0]} -> {self.data[1]}"
        return {"colours": "built-in shapes, warm fills -> cool fills",
                "stripes": "built-in shapes -> striped shapes"}[self.builtin_task]

    @property
    def preservation(self) -> str:
        return "silhouette" if self.builtin else "structure_ssim"

    def validate(self) -> None:
        if not self.builtin and len(self.data) != 2:
            raise ConfigError("--data is 'builtin' (or builtin:colours, builtin:stripes) or two folders: SHAPE_DIR "
                              "TEXTURE_DIR")
        if self.builtin and self.builtin_task not in BUILTIN_TASKS:
            raise ConfigError(f"--data {self.data[0]}: the built-in tasks are {', '.join(BUILTIN_TASKS)}")
        if self.scale not in SCALES:
            raise ConfigError(f"--scale is one of {', '.join(SCALES)}, not {self.scale!r}")
        if self.scale == "paper" and self.size != PAPER_SIZE:
            raise ConfigError(f"--scale paper trains at the paper's {PAPER_SIZE} px, not {self.size}")
        for name in ("budget", "seeds", "every", "batch", "eval_images", "samples", "jobs", "window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for item in self.overrides:
            if "=" not in item:
                raise ConfigError(f"--set wants KEY=VALUE, got {item!r}")

    def bottleneck(self, variant: str = "default") -> tuple[int, int]:
        """(resolution, channels) of the encoder output of a bottleneck variant under this scale."""
        m = preset_overrides(self.scale, self.size, variant)
        return int(m["bottleneck_res"]), int(m.get("bottleneck_channels", 128))

    def scale_line(self) -> str:
        """One line for summary.md: which preset ran, and the bottleneck's share of the input."""
        res, ch = self.bottleneck("default")
        low = self.bottleneck("low")
        what = {"cpu": "scale-true CPU preset (the paper's bottleneck shares and StyleGAN2's relative "
                       "discriminator widths at this size)",
                "paper": "the paper's literal setting", "custom": "custom (not scale-true)"}[self.scale]
        return (f"Scale: {what}; bottleneck {describe(self.size, res, ch)}, low-dimension variant "
                f"{describe(self.size, *low)}; the paper's are {paper_share('default'):.2%} and "
                f"{paper_share('low'):.2%}.")


def base_config(s: ExperimentSettings, out: str | Path, seed: int, method: str = "adversarial",
                bottleneck: str = "default") -> RunConfig:
    """One run of an experiment: the scale preset's networks, checkpoints and monitors at each chunk."""
    cfg = RunConfig(method=method, out=str(out))
    d, t = cfg.data, cfg.train
    d.size = s.size
    if s.builtin:
        d.source, d.builtin_count, d.builtin_task = "builtin", s.builtin_count, s.builtin_task
    else:
        d.source, d.shape, d.texture = "folders", s.data[0], s.data[1]
        d.holdout = s.eval_images  # the measured images never take part in training
    t.budget, t.batch, t.seed, t.device, t.threads = s.budget, s.batch, seed, s.device, s.threads
    t.log_every = t.monitor_every = s.every
    t.sample_every = t.checkpoint_every = 0  # Trainer.run saves a checkpoint and a grid at the end of each chunk
    t.keep_checkpoints = 1
    cfg.model = dict(preset_overrides(s.scale, s.size, bottleneck))
    for item in s.overrides:
        key, value = item.split("=", 1)
        apply_override(cfg, key.strip(), value.strip())
    return cfg


def held_out_shapes(s: ExperimentSettings) -> torch.Tensor:
    """The fixed held-out shape images every run is measured on (uint8 N x 3 x S x S)."""
    if s.builtin:
        from ..data.builtin import builtin_images

        return builtin_images("shape-holdout", s.eval_images, s.size, EVAL_SEED, s.builtin_task)
    from ..data.folders import folder_image_set
    from ..data.sets import split_holdout

    # the same split as the training data's (data.holdout = eval_images): the last images of the shape folder
    _, held = split_holdout(folder_image_set(s.data[0], s.size), s.eval_images)
    return held


def plateau_rules(s: ExperimentSettings) -> tuple[PlateauRule, ...]:
    """The experiments' stopping rule: the training-set reconstruction error and the content kept."""
    common = dict(window=s.window, tolerance=s.tolerance, min_images=s.min_images)
    return (PlateauRule("recon_mse_train", True, **common), PlateauRule(s.preservation, False, **common))


def plateau_text(s: ExperimentSettings) -> str:
    if not s.plateau:
        return f"Every run trained to its budget of {s.budget:,} images (no plateau rule)."
    rules = plateau_rules(s)
    return ("Stopping rule, stated before the runs: " + "; and ".join(r.describe(s.every, s.budget) for r in rules)
            .replace(f", or at the cap of {s.budget:,} images; and ", "; and ") + " (both must hold).")


@dataclass
class Variant:
    """One arm of an experiment: a name, a method, its bottleneck variant and settings over the base config
    (dotted keys, e.g. {"data.max_images": 16}). Plain data, so a run can be sent to another process."""

    name: str
    method: str = "adversarial"
    bottleneck: str = "default"  # default | low: presets.PAPER_BOTTLENECKS
    settings: dict = field(default_factory=dict)

    def config(self, s: ExperimentSettings, out: str | Path, seed: int) -> RunConfig:
        cfg = base_config(s, out, seed, self.method, self.bottleneck)
        for key, value in self.settings.items():
            section, name = key.split(".", 1)
            if section == "model":
                cfg.model[name] = value
            else:
                setattr(getattr(cfg, section), name, value)
        if cfg.data.texture_from_shape and cfg.data.source == "folders":
            cfg.data.texture = cfg.data.shape
        return cfg


@dataclass
class VariantResult:
    name: str
    seed: int
    run_dir: Path
    tracker: Tracker
    stopped: str = ""  # why the run ended: its plateau, the cap, a stop request
    seconds: float = 0.0  # training time
    read_back: bool = False  # finished earlier: its measurements were read back by --resume, not trained now


def _train_variant(s: ExperimentSettings, v: Variant, seed: int, run_dir: Path, samples: int,
                   inputs: torch.Tensor, quiet: bool = False) -> VariantResult:
    cfg = v.config(s, run_dir, seed)
    prefix = f"[{v.name}, seed {seed}]"
    log = (lambda m: print(f"{prefix}{m}", flush=True)) if not quiet else (lambda m: None)
    # (the identical-sets arm would be scored against its own inputs)
    scored = s.fid and not s.builtin and v.method == "adversarial" and not cfg.data.texture_from_shape
    key = measurement_key(s, cfg, samples, scored)
    if s.resume:
        done, unusable = finished.load(run_dir, key)
        if done is not None:
            tracker = Tracker(inputs, samples, s.preservation, s.task,
                              grid=s.grid_images)
            tracker.rows, tracker.snapshots, tracker.last_outputs = done.rows, done.snapshots, done.last_grid
            log(f" finished earlier ({done.stopped}): read back from {run_dir}")
            return VariantResult(v.name, seed, run_dir, tracker, done.stopped, done.seconds, read_back=True)
        if unusable:
            log(f" {unusable}: training it again")
    finished.forget(run_dir)
    tracker = Tracker(inputs, samples, s.preservation, s.task, grid=s.grid_images,
                      train_inputs=training_shapes(cfg, s.eval_images))
    trainer, why = train_tracked(cfg, tracker, s.every, log, plateau_rules(s) if s.plateau else ())
    log(f" {why}")
    if scored:
        fid_at_end(s, cfg, tracker, log)
    # kept for --resume only when complete: trained to its end, and scored where it should be
    if why.startswith(("plateau", "cap")) and (not scored or "fid" in tracker.rows[-1]):
        last = None if tracker.last_outputs is None else tracker.last_outputs[: s.grid_images]
        finished.save(run_dir, key, finished.Finished(tracker.rows, tracker.snapshots, last, why,
                                                      trainer.train_seconds))
    return VariantResult(v.name, seed, run_dir, tracker, why, trainer.train_seconds)


MEASUREMENTS_VERSION = 1  # raise when what a Tracker measures changes: saved runs then train again
# how a run executes, not what it computes: a run read back may have used other values
EXECUTION_ONLY = {"train": ("threads", "device"), "data": ("workers", "cache_mb", "cache_dir", "preload_limit_mb")}


def measurement_key(s: ExperimentSettings, cfg: RunConfig, samples: int, scored: bool) -> dict:
    """What decides a run's measurements: its configuration (less where and how it runs) and what the
    experiment measures. A run finished under another key trains again with --resume."""
    config = cfg.to_dict()
    config.pop("out")
    for section, names in EXECUTION_ONLY.items():
        for name in names:
            config[section].pop(name)
    measure = {"samples": samples, "preservation": s.preservation, "eval_images": s.eval_images,
               "grid_images": s.grid_images, "every": s.every, "plateau": s.plateau,
               "fid": {"feature_net": s.feature_net} if scored else None}
    if s.plateau:
        measure.update(window=s.window, tolerance=s.tolerance, min_images=s.min_images)
    return {"version": MEASUREMENTS_VERSION, "config": config, "measure": measure}


FID_KID_SUBSET = 100  # KID: images per subset (100 subsets); the fakes are eval_images x samples


def fid_at_end(s: ExperimentSettings, cfg: RunConfig, tracker: Tracker, log: Callable[[str], None]) -> None:
    """FID and KID of the last measurement's outputs (every held-out shape image with every latent) against
    the run's whole texture folder at the run's size, added to that row as fid, kid. Comparable between the
    arms of one experiment only: a few hundred fakes give FID a large bias. Without a feature network (no
    Inception weights here) it says so once and the run keeps its other measures."""
    from ..metrics.fid import extract_features, fid_from_features, folder_features, kid_from_features, load_feature_net

    fake = tracker.last_outputs.flatten(0, 1)
    if len(fake) < 2:
        log(" FID/KID skipped: fewer than 2 outputs (raise --eval-images or --samples)")
        return
    try:
        net = load_feature_net(s.feature_net)
        f_fake = extract_features((fake[i:i + 50] for i in range(0, len(fake), 50)), net, progress=False)
        f_real = folder_features(cfg.data.texture, net, size=cfg.data.size, progress=False, workers=1)
        kid, _ = kid_from_features(f_fake, f_real, 100, FID_KID_SUBSET)
        fid = fid_from_features(f_fake, f_real)
    except Exception as err:  # noqa: BLE001 - no network here, an unreadable folder: the trained run stays
        log(f" FID/KID skipped: {err}")
        return
    tracker.rows[-1].update(fid=fid, kid=kid)
    log(f" FID {fid:.1f}, KID {kid:.4f} ({len(f_fake)} outputs vs {len(f_real)} images of {cfg.data.texture})")


def run_variants(s: ExperimentSettings, variants: list[Variant], out: Path, samples: int,
                 log: Callable[[str], None] = print) -> list[VariantResult]:
    """Every variant with every seed (the same seed gives every variant the same initial generator); with
    s.jobs > 1, that many runs at once, each in its own process with s.threads (default 1) threads."""
    clear_stop()  # a stop noted by an earlier experiment in this process ended that one, not this
    inputs = held_out_shapes(s)
    todo = [(v, seed, out / "runs" / v.name / f"seed{seed}") for seed in range(s.seed0, s.seed0 + s.seeds)
            for v in variants]
    for v, seed, run_dir in todo:
        log(f"[{v.name}, seed {seed}] {v.method}, at most {s.budget:,} images -> {run_dir}")
    if s.jobs <= 1:
        quiet = log is not print
        return [_train_variant(s, v, seed, d, samples, inputs, quiet) for v, seed, d in todo]
    each = replace(s, threads=s.threads or 1)
    return in_processes(_train_variant, [(each, v, seed, d, samples, inputs) for v, seed, d in todo], s.jobs)


COLLAPSE_RATIO = 0.5  # outputs that vary across inputs less than this fraction of the inputs do: collapse
# An output told apart by its own input less often than this ignores its input. Chance is 0.5: on 64 held-out
# horses, uniform noise scored 0.50 +- 0.04 (20 draws, max 0.56) and other horses' images 0.49 +- 0.06 (max
# 0.61), while the horses at 30% under 70% noise, blurred 4x or gray and inverted all scored 0.98-1.00.
INPUT_MATCH_MIN = 0.75


def collapse_reasons(results: list[VariantResult], runs: list[str]) -> dict[str, str]:
    """The runs whose final outputs (seed mean) do not depend on their input, with why:
    - their spread across inputs is below COLLAPSE_RATIO of the inputs' own (built-in data: 0.03-0.05 for runs
      painting plain background, 0.07-0.28 for runs keeping silhouettes, against the held-out shapes' 0.12), or
    - an output matches its own input no better than another input (input_match below INPUT_MATCH_MIN): noise
      or speckle varies across inputs without following them, which the spread alone does not see."""
    if not results:
        return {}
    own = float(results[0].tracker.inputs.std(dim=0).mean())
    rows = result_rows(results)
    spread, match = final_values(rows, "input_spread"), final_values(rows, "input_match")
    out = {}
    for r in runs:
        if r in spread and (m := mean_sd(spread[r])[0]) < COLLAPSE_RATIO * own:
            out[r] = f"spread across inputs {m:.3g}, below {COLLAPSE_RATIO:g} x the inputs' {own:.3g}"
        elif r in match and (m := mean_sd(match[r])[0]) < INPUT_MATCH_MIN:
            out[r] = (f"an output matches its own input over another in {m:.0%} of comparisons (chance 50%, "
                      f"needs {INPUT_MATCH_MIN:.0%})")
    return out


def collapse_line(broken: dict[str, str]) -> str:
    """The summary's line for the runs collapse_reasons names: which, and why each."""
    why = "; ".join(f"{r}: {reason}" for r, reason in broken.items())
    return f"**No verdict: {', '.join(broken)} collapsed**: its outputs no longer depend on the input ({why})."


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

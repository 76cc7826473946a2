"""Experiment: the streamlined translator against CycleGAN and AsymmetricGAN at equal compute.

Each method trains on the same two folders (A -> B, the last `holdout` images of each kept out) for the same
wall-clock time (`train.max_minutes`, the same threads), then translates the held-out A images and is scored
against the held-out B images: FID, KID, structure SSIM (Sobel edges of input vs output) and, for the method
with a latent, the diversity of several outputs per input. The paper claims results comparable to the
cycle-consistent methods without their extra networks and loss terms; this measures it at one budget.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import RunConfig, apply_override
from .report import fmt, markdown_table

NAME = "compare"
METHODS = ("adversarial", "cyclegan", "asymmetric")
# Per-method settings that differ from the method's defaults, stated in the summary. The cycle-consistent
# methods train at batch 1 as their papers do, with a first-layer width of 32 at 64 px (docs/methods.md).
METHOD_SETTINGS: dict[str, dict[str, object]] = {
    "adversarial": {"train.batch": 8},
    "cyclegan": {"train.batch": 1, "model.t_width": 32},
    "asymmetric": {"train.batch": 1, "model.t_width": 32},
}
NEVER = 10**9  # images: the time cap ends every run


@dataclass
class CompareSettings:
    data: list[str]  # [A_DIR, B_DIR]: inputs, and the domain the translations should look like
    out: str = "runs/experiments/compare"
    size: int = 64
    minutes: float = 20.0  # training time per method
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    holdout: int = 100  # the last N images of each folder: never trained on, scored on
    samples: int = 4  # outputs per input for the diversity of a method with a latent
    kid_subset_size: int = 50
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    feature_net: str | None = None  # evaluate's --feature-net (default: the FID Inception network)
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every method's run (train.*, data.*)

    def validate(self) -> None:
        if len(self.data) != 2:
            raise ValueError("compare needs --data A_DIR B_DIR (translate A into B)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"compare knows the methods {', '.join(METHODS)}, not {', '.join(unknown)}")
        if self.minutes <= 0 or self.holdout < 2:
            raise ValueError("compare needs --minutes above 0 and --holdout of at least 2")
        for item in self.overrides:
            if "=" not in item:
                raise ValueError(f"--set wants KEY=VALUE, got {item!r}")


def run_config(s: CompareSettings, method: str) -> RunConfig:
    cfg = RunConfig(method=method, out=str(Path(s.out) / "runs" / method))
    d, t = cfg.data, cfg.train
    d.size, d.holdout = s.size, s.holdout
    if method == "adversarial":
        d.source, d.shape, d.texture = "folders", s.data[0], s.data[1]
    else:
        d.source, d.domains = "domains", list(s.data)
    t.budget, t.max_minutes, t.seed, t.threads, t.device = NEVER, s.minutes, s.seed, s.threads, s.device
    t.sample_every = t.checkpoint_every = 0
    t.log_every, t.monitor_every, t.keep_checkpoints = 500, 0, 1
    for key, value in METHOD_SETTINGS[method].items():
        apply_override(cfg, key, str(value))
    for item in s.overrides:
        key, value = item.split("=", 1)
        apply_override(cfg, key.strip(), value.strip())
    return cfg.validate()


def evaluate_run(run_dir: Path, out: Path, samples: int, kid_subset_size: int, to: str | None,
                 feature_net: str | None = None) -> dict:
    """`shapetex evaluate --checkpoint RUN --holdout` in this process; returns its metrics.json."""
    from .. import evaluate

    p = argparse.ArgumentParser()
    evaluate.add_arguments(p)
    argv = ["--checkpoint", str(run_dir), "--holdout", "--samples", str(samples), "--out", str(out),
            "--kid-subset-size", str(kid_subset_size), "--workers", "1", "--quiet"]
    if to:
        argv += ["--to", to]
    if feature_net:
        argv += ["--feature-net", feature_net]
    evaluate.run(p.parse_args(argv))
    return json.loads((out / "metrics.json").read_text())


def side_by_side(s: CompareSettings, run_dirs: dict[str, Path], path: Path, rows: int = 8) -> Path:
    """Held-out inputs, then each method's translation (two latents for the one that has them)."""
    from ..api import Translator
    from ..data.folders import folder_image_set
    from ..data.images import uint8_to_float
    from ..data.sets import split_holdout
    from ..sampling import labelled_grid

    _, held = split_holdout(folder_image_set(s.data[0], s.size), s.holdout)
    x = uint8_to_float(held[:rows])
    labels, cols = ["input"], [x]
    for method, run_dir in run_dirs.items():
        tr = Translator.load(run_dir, device="cpu")
        k = 2 if tr.z_dim else 1
        y = tr.translate_tensor(x, samples=k, seed=s.seed).cpu()
        for j in range(k):
            labels.append(method if k == 1 else f"{method} z{j + 1}")
            cols.append(y[:, j])
    return labelled_grid([(labels, cols)], path, scale=max(1, 128 // s.size))


def run(s: CompareSettings, log=print) -> Path:
    from ..train import Trainer

    s.validate()
    out = Path(s.out)
    results: dict[str, dict] = {}
    for method in s.methods:
        cfg = run_config(s, method)
        log(f"[{method}] {s.minutes:g} minutes of training at {s.size} px -> {cfg.out}")
        trainer = Trainer(cfg, overwrite=True)
        torch.manual_seed(s.seed)
        done = trainer.run()
        to = None if cfg.data.source == "folders" else "B"
        metrics = evaluate_run(Path(cfg.out), out / "eval" / method, 1, s.kid_subset_size, to, s.feature_net)
        stochastic = bool(trainer.method.z_dim)
        if stochastic:  # diversity from several latents per input, scored apart so FID sees one output each
            many = evaluate_run(Path(cfg.out), out / "eval" / f"{method}-z", s.samples, s.kid_subset_size, to,
                                s.feature_net)
            metrics["diversity_pixel"] = many.get("diversity_pixel")
            metrics["diversity_feature"] = many.get("diversity_feature")
        counts = trainer.method.parameter_counts()
        results[method] = {"images": done["images_seen"], "minutes": done["train_seconds"] / 60,
                           "images_per_s": done["images_seen"] / max(done["train_seconds"], 1e-9),
                           "parameters": sum(counts.values()), "stochastic": stochastic, **metrics}
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    side_by_side(s, {m: out / "runs" / m for m in s.methods}, out / "samples.png")
    write_summary(out, s, results)
    return out


def _num(v, digits=4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def write_summary(out: Path, s: CompareSettings, results: dict[str, dict]) -> str:
    rows = []
    for m, r in results.items():
        div = _num(r.get("diversity_pixel"), 3) if r["stochastic"] else "0 (deterministic)"
        rows.append([m, f"{r['minutes']:.1f}", f"{r['images']:,}", f"{r['images_per_s']:.2f}",
                     f"{r['parameters'] / 1e6:.2f}M", _num(r["fid"], 4),
                     f"{r['kid']:.4f} ± {r['kid_std']:.4f}", _num(r.get("structure_ssim"), 3), div])
    header = ["method", "minutes", "images", "img/s", "parameters", "FID", "KID", "structure SSIM",
              f"diversity ({s.samples} z)"]
    settings = "; ".join(f"{m}: " + ", ".join(f"{k}={v}" for k, v in METHOD_SETTINGS[m].items())
                         for m in s.methods)
    best_fid = min(results, key=lambda m: results[m]["fid"])
    parts = [f"# {NAME}: equal training time, {s.data[0]} -> {s.data[1]}", "",
             f"Every method trained for {s.minutes:g} minutes ({s.threads} thread(s), device {s.device}) at "
             f"{s.size} px, seed {s.seed}, then translated the {s.holdout} held-out A images (never trained on); "
             f"FID and KID (subsets of {min(s.kid_subset_size, s.holdout)}) against the {s.holdout} held-out B "
             "images, one output per input; structure SSIM: SSIM of the Sobel edge maps of input and output; "
             f"diversity: mean absolute pixel difference between {s.samples} outputs of one input (different z). "
             f"FID on {s.holdout} images is biased upwards and comparable only between these runs.", "",
             markdown_table(header, rows), "",
             f"Settings that differ from each method's defaults: {settings}.", "",
             f"Lowest FID at this budget: {best_fid}. {fmt([results[best_fid]['fid']])} against "
             + ", ".join(f"{m} {_num(r['fid'])}" for m, r in results.items() if m != best_fid) + ".", "",
             "![held-out inputs and each method's translation](samples.png)", ""]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text

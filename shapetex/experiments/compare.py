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

from ..config import ConfigError, RunConfig, apply_override
from ..stopping import StopRequested
from .processes import in_processes
from .report import beyond_spread, markdown_table
from .runner import mean_sd

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
    seed: int = 0  # the first seed
    seeds: int = 1  # seeds per method: several give mean and spread
    jobs: int = 1  # runs trained at once, one process each (two on two cores: one core per run)
    threads: int = 1
    device: str = "auto"
    feature_net: str | None = None  # evaluate's --feature-net (default: the FID Inception network)
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every method's run (train.*, data.*)

    def validate(self) -> None:
        if len(self.data) != 2:
            raise ConfigError("compare needs --data A_DIR B_DIR (translate A into B)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"compare knows the methods {', '.join(METHODS)}, not {', '.join(unknown)}")
        if self.minutes <= 0 or self.holdout < 2:
            raise ConfigError("compare needs --minutes above 0 and --holdout of at least 2")
        if self.seeds < 1 or self.jobs < 1:
            raise ConfigError("compare needs --seeds and --jobs of at least 1")
        if len(set(self.methods)) < len(self.methods):
            raise ConfigError("compare got a method twice in --methods; name each once")
        for item in self.overrides:
            if "=" not in item:
                raise ConfigError(f"--set wants KEY=VALUE, got {item!r}")


def run_config(s: CompareSettings, method: str, seed: int) -> RunConfig:
    cfg = RunConfig(method=method, out=str(run_dir(s, method, seed)))
    d, t = cfg.data, cfg.train
    d.size, d.holdout = s.size, s.holdout
    if method == "adversarial":
        d.source, d.shape, d.texture = "folders", s.data[0], s.data[1]
    else:
        d.source, d.domains = "domains", list(s.data)
    t.budget, t.max_minutes, t.seed, t.threads, t.device = NEVER, s.minutes, seed, s.threads, s.device
    t.sample_every = t.checkpoint_every = 0
    t.log_every, t.monitor_every, t.keep_checkpoints = 500, 0, 1
    for key, value in METHOD_SETTINGS[method].items():
        apply_override(cfg, key, str(value))
    for item in s.overrides:
        key, value = item.split("=", 1)
        apply_override(cfg, key.strip(), value.strip())
    return cfg.validate()


def run_dir(s: CompareSettings, method: str, seed: int) -> Path:
    return Path(s.out) / "runs" / method / f"seed{seed}"


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


def train_and_score(s: CompareSettings, method: str, seed: int, log=print) -> dict:
    """One method with one seed: train for s.minutes, then score its held-out translations."""
    from ..train import Trainer

    cfg = run_config(s, method, seed)
    log(f"[{method}, seed {seed}] {s.minutes:g} minutes of training at {s.size} px -> {cfg.out}")
    trainer = Trainer(cfg, overwrite=True)
    torch.manual_seed(seed)
    done = trainer.run()
    if done["stopped_by"]:  # Ctrl-C or SIGTERM: the comparison ends here (a shortened run would not be fair)
        raise StopRequested(done["stopped_by"], f"stopped on request: {cfg.out} at {done['images_seen']:,} images")
    to = None if cfg.data.source == "folders" else "B"
    eval_dir = Path(s.out) / "eval" / method / f"seed{seed}"
    metrics = evaluate_run(Path(cfg.out), eval_dir, 1, s.kid_subset_size, to, s.feature_net)
    stochastic = bool(trainer.method.z_dim)
    if stochastic:  # diversity from several latents per input, scored apart so FID sees one output each
        many = evaluate_run(Path(cfg.out), eval_dir.with_name(f"seed{seed}-z"), s.samples, s.kid_subset_size,
                            to, s.feature_net)
        metrics["diversity_pixel"] = many.get("diversity_pixel")
        metrics["diversity_feature"] = many.get("diversity_feature")
    counts = trainer.method.parameter_counts()
    return {"method": method, "seed": seed, "images": done["images_seen"], "minutes": done["train_seconds"] / 60,
            "images_per_s": done["images_seen"] / max(done["train_seconds"], 1e-9),
            "parameters": sum(counts.values()), "stochastic": stochastic, **metrics}


def run(s: CompareSettings, log=print) -> Path:
    s.validate()
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    # Seed-major order: with two jobs, runs of different methods share the machine at any moment.
    todo = [(m, seed) for seed in range(s.seed, s.seed + s.seeds) for m in s.methods]
    results: list[dict] = []

    def keep(r: dict) -> None:
        results.append(r)
        results.sort(key=lambda r: (s.methods.index(r["method"]), r["seed"]))
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    if s.jobs <= 1:
        for m, seed in todo:
            keep(train_and_score(s, m, seed, log))
    else:  # results saved as each run ends; a failed run (or a stop) ends the job now, not after the queued runs
        in_processes(train_and_score, [(s, m, seed) for m, seed in todo], s.jobs, on_result=keep)
    side_by_side(s, {m: run_dir(s, m, s.seed) for m in s.methods}, out / "samples.png")
    write_summary(out, s, results)
    return out


def _num(v, digits=4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def _spread(values: list[float], digits: int = 4, count: bool = False) -> str:
    """'m' for one seed, 'm ± sd' for several (the table's header says how many); counts with separators."""
    if not values:
        return "n/a"
    m, sd = mean_sd(values)
    mean, spread = (f"{m:,.0f}", f"{sd:,.0f}") if count else (f"{m:.{digits}g}", f"{sd:.2g}")
    return mean if len(values) == 1 else f"{mean} ± {spread}"


def _kid(r: dict) -> str:
    return "n/a" if r.get("kid") is None else f"{r['kid']:.4f} ± {r['kid_std']:.4f}"


def write_summary(out: Path, s: CompareSettings, results: list[dict]) -> str:
    by = {m: [r for r in results if r["method"] == m] for m in s.methods}
    by = {m: rs for m, rs in by.items() if rs}

    def values(m: str, key: str) -> list[float]:
        return [float(r[key]) for r in by[m] if r.get(key) is not None]

    rows = []
    for m, rs in by.items():
        div = _spread(values(m, "diversity_pixel"), 3) if rs[0]["stochastic"] else "0 (deterministic)"
        rows.append([m, str(len(rs)), _spread(values(m, "minutes"), 3), _spread(values(m, "images"), count=True),
                     _spread(values(m, "images_per_s"), 3), f"{rs[0]['parameters'] / 1e6:.2f}M",
                     _spread(values(m, "fid")), _spread(values(m, "kid"), 3),
                     _spread(values(m, "structure_ssim"), 3), div])
    header = ["method", "seeds", "minutes", "images", "img/s", "parameters", "FID", "KID", "structure SSIM",
              f"diversity ({s.samples} z)"]
    per_seed = [[r["method"], str(r["seed"]), f"{r['images']:,}", _num(r["fid"]),
                 _kid(r), _num(r.get("structure_ssim"), 3),
                 _num(r.get("diversity_pixel"), 3) if r["stochastic"] else "0"] for r in results]
    settings = "; ".join(f"{m}: " + ", ".join(f"{k}={v}" for k, v in METHOD_SETTINGS[m].items())
                         for m in s.methods)
    scored = [m for m in by if values(m, "fid")]
    if scored:
        best = min(scored, key=lambda m: mean_sd(values(m, "fid"))[0])
        verdict = (f"Lowest mean FID at this budget: {best}, {_spread(values(best, 'fid'))}"
                   + "".join(f"; {m} {_spread(values(m, 'fid'))}{beyond_spread(values(best, 'fid'), values(m, 'fid'))}"
                             for m in scored if m != best) + ".")
    else:
        verdict = "No FID: the feature network could not be loaded, or no score was finite (see eval/)."
    seeds = f"seed {s.seed}" if s.seeds == 1 else f"seeds {s.seed}-{s.seed + s.seeds - 1}"
    spread = "; mean ± sd over seeds" if s.seeds > 1 else ""
    parts = [f"# {NAME}: equal training time, {s.data[0]} -> {s.data[1]}", "",
             f"Every method trained for {s.minutes:g} minutes ({s.threads} thread(s) per run, {s.jobs} run(s) at "
             f"once, device {s.device}) at {s.size} px, {seeds}, then translated the {s.holdout} held-out A "
             f"images (never trained on); FID and KID (subsets of {min(s.kid_subset_size, s.holdout)}) against "
             f"the {s.holdout} held-out B images, one output per input; structure SSIM: SSIM of the Sobel edge "
             "maps of input and output; diversity: mean absolute pixel difference between "
             f"{s.samples} outputs of one input (different z). FID on {s.holdout} images is biased upwards and "
             f"comparable only between these runs{spread}.", "",
             markdown_table(header, rows), "",
             f"Settings that differ from each method's defaults: {settings}.", "",
             verdict, "",
             "Every run:", "", markdown_table(["method", "seed", "images", "FID", "KID", "structure SSIM",
                                               "diversity"], per_seed), "",
             f"![held-out inputs and each method's translation (seed {s.seed})](samples.png)", ""]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text

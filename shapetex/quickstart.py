"""`shapetex quickstart`: the main job on the built-in data, end to end, in a few minutes on a laptop CPU.

Trains the streamlined adversarial translator from plain shapes (the shape set) to striped shapes (the
texture set), then scores held-out translations against three baselines: the input itself (keeps the
silhouette, has no stripes), a random texture-set image (has stripes, wrong silhouette) and the untrained
generator.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from .api import Translator
from .config import RunConfig
from .data.builtin import builtin_images
from .data.images import uint8_to_float
from .metrics.shapes import shape_scores
from .metrics.stripes import z_spread
from .sampling import labelled_grid
from .train import Trainer

EVAL_IMAGES = 128
Z_SAMPLES = 4  # outputs per input for the z-spread column
Z_SPREAD_GOAL = 15.0  # degrees; four angles drawn uniformly from the half-circle average 37
COHERENCE_GOAL = 0.5  # real stripes 0.98, plain fills with noise < 0.5


def quickstart_config(out: str, budget: int | None = None, size: int | None = None, seed: int = 0) -> RunConfig:
    """The measured choices are in docs/quickstart_tuning.md (benchmarks/tune_quickstart.py): at 6,000
    images batch 4 (1,500 steps) beat batch 16 (375 steps) on both scores."""
    cfg = RunConfig(method="adversarial", out=out)
    cfg.data.size = 32 if size is None else size
    cfg.data.builtin_count = 2000
    cfg.train.batch = 4
    cfg.train.seed = seed
    cfg.train.budget = 6_000 if budget is None else budget  # 0 is refused, not taken as "the default"
    cfg.train.log_every = 1_000
    cfg.train.sample_every = 2_000
    cfg.train.checkpoint_every = 3_000
    # Narrow networks: the built-in shapes need little capacity, and the CPU run stays in minutes. The
    # decoder's sinusoid input (zero strength at the start) was part of the best measured run.
    cfg.model = {"g_channel_max": 64, "d_channel_max": 64, "r1_gamma": 0.1, "fourier_features": 32}
    return cfg.validate()


def _row(x: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    """Silhouette and texture of the first output per input, and the spread over all (N x K x 3 x H x W)."""
    return {**shape_scores(x, outputs[:, 0]), **z_spread(outputs)}


@torch.no_grad()
def score_run(run_dir: str | Path, untrained=None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Scores of the trained run and of the three baselines on held-out built-in shapes."""
    t = Translator.load(run_dir, device="cpu")
    size, n, k = t.size, EVAL_IMAGES, Z_SAMPLES
    x = uint8_to_float(builtin_images("shape-holdout", n, size, seed=seed + 1))
    # the random-texture baseline: K different texture-set images per input, as a translator drawing
    # the texture set's own variety would give
    random_texture = uint8_to_float(builtin_images("texture-holdout", n * k, size, seed=seed + 2))
    trained = _row(x, t.translate_tensor(x, k, seed))
    # the same noise inputs for the K samples: what z alone changes (the column above counts noise too)
    trained["angle_spread_z"] = z_spread(t.translate_tensor(x, k, seed, noise="fixed"))["angle_spread"]
    rows = {"translator (trained)": trained,
            "identity (the input)": _row(x, x[:, None].expand(n, k, *x.shape[1:])),
            "random texture-set image": _row(x, random_texture.reshape(n, k, *x.shape[1:]))}
    if untrained is not None:  # G at initialisation, before any training step
        g = torch.Generator().manual_seed(seed)
        outs = [untrained(x, torch.randn(n, t.method.z_dim, generator=g)).float().clamp(-1, 1) for _ in range(k)]
        rows["untrained generator"] = _row(x, torch.stack(outs, 1))
    for r in rows.values():  # baselines without noise inputs (at initialisation G's noise strengths are 0)
        r.setdefault("angle_spread_z", r["angle_spread"])
    return rows


@torch.no_grad()
def save_results_picture(t: Translator, path: Path, size: int, seed: int) -> Path:
    """8 held-out inputs under 4 z, then 2 of them under 8 z; upscaled to at least 128 px per tile."""
    x = uint8_to_float(builtin_images("shape-holdout", 8, size, seed=seed + 1))
    four = t.translate_tensor(x, 4, seed)
    eight = t.translate_tensor(x[:2], 8, seed + 1)
    sections = [(["input"] + [f"z{i + 1}" for i in range(4)], [x] + list(four.unbind(1))),
                (["input"] + [f"z{i + 1}" for i in range(8)], [x[:2]] + list(eight.unbind(1)))]
    return labelled_grid(sections, path, scale=max(1, 128 // size))


def verdict(rows: dict[str, dict[str, float]]) -> tuple[bool, bool, str]:
    """(translates: texture and silhouette clearly above the baselines, z changes the stripes, the words)."""
    ours = rows["translator (trained)"]
    tex_ok = ours["texture"] > rows["identity (the input)"]["texture"] + 0.3
    others = [v["silhouette"] for k, v in rows.items() if k in ("random texture-set image", "untrained generator")]
    sil_ok = ours["silhouette"] > max(others) + 0.15
    parts = [
        f"texture {'clearly above' if tex_ok else 'NOT clearly above'} the identity mapping "
        f"({ours['texture']:.2f} vs {rows['identity (the input)']['texture']:.2f})",
        f"silhouette {'clearly above' if sil_ok else 'NOT clearly above'} the random texture image and the "
        f"untrained generator ({ours['silhouette']:.2f} vs best baseline {max(others):.2f})",
    ]
    # z: the stripes' angle must change with z, and be stripes (noise has a spread of angles too)
    z_ok = ours["angle_spread_z"] >= Z_SPREAD_GOAL and ours["stripe_coherence"] >= COHERENCE_GOAL
    parts.append(f"z {'changes' if z_ok else 'does NOT clearly change'} the stripes (angle spread from z alone "
                 f"{ours['angle_spread_z']:.1f} degrees, goal >= {Z_SPREAD_GOAL:.0f}; with the noise inputs "
                 f"{ours['angle_spread']:.1f}; at coherence "
                 f"{ours['stripe_coherence']:.2f}, goal >= {COHERENCE_GOAL})")
    return tex_ok and sil_ok, z_ok, "; ".join(parts)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [f"| output | silhouette IoU (shape kept) | texture score (stripes) | stripe-angle spread over "
             f"{Z_SAMPLES} samples (degrees) | of it, z alone (noise fixed) | stripe coherence | pixel diversity "
             "over samples |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['silhouette']:.3f} | {r['texture']:.3f} | {r['angle_spread']:.1f} | "
                     f"{r['angle_spread_z']:.1f} | {r['stripe_coherence']:.2f} | {r['pixel_diversity']:.3f} |")
    return "\n".join(lines)


def quickstart(out: str = "runs/quickstart", budget: int | None = None, size: int | None = None,
               seed: int = 0) -> int:
    cfg = quickstart_config(out, budget, size, seed)
    print("shapetex quickstart: training the adversarial translator on the built-in shapes -> striped shapes")
    trainer = Trainer(cfg, overwrite=True)  # the quickstart's own folder: each quickstart trains afresh
    untrained = copy.deepcopy(trainer.method.G).cpu().eval()  # the run's own initial weights
    result = trainer.run()
    rows = score_run(cfg.out, untrained, cfg.train.seed)
    ok, z_ok, why = verdict(rows)
    run = Path(cfg.out)
    t = Translator.load(run, device="cpu")
    save_results_picture(t, run / "results.png", cfg.data.size, cfg.train.seed)
    summary = {"scores": rows, "passed": ok, "z_changes_stripes": z_ok, "verdict": why,
               "images_seen": result["images_seen"],
               "images_per_s": result["last"].get("images_per_s")}
    (run / "quickstart.json").write_text(json.dumps(summary, indent=2))
    table = format_table(rows)
    (run / "quickstart.md").write_text(f"# shapetex quickstart\n\n{table}\n\n{why}\n\n![results](results.png)\n")
    print()
    print(table)
    print()
    print(f"Result: {why}.")
    print(f"Outputs are in {run}/:")
    print("  results.png      held-out plain shapes (left column) and 4 translations with different z, then two")
    print("                   of them under 8 z: the same silhouettes, striped like the texture set")
    print("  samples/         grids over training; checkpoints/ weights (safetensors); metrics.jsonl losses")
    print(f"  quickstart.md    this table. Translate your own image: shapetex translate --checkpoint {run} "
          "--input IMAGE --samples 4")
    return 0 if ok else 1

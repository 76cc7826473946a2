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
from .metrics.shapes import shape_scores
from .sampling import save_sample_grid
from .train import Trainer

EVAL_IMAGES = 128


def quickstart_config(out: str, budget: int | None = None, size: int | None = None) -> RunConfig:
    cfg = RunConfig(method="adversarial", out=out)
    cfg.data.size = 32 if size is None else size
    cfg.data.builtin_count = 2000
    cfg.train.batch = 16
    cfg.train.budget = 14_000 if budget is None else budget  # 0 is refused, not taken as "the default"
    cfg.train.log_every = 1_000
    cfg.train.sample_every = 2_000
    cfg.train.checkpoint_every = 5_000
    # Narrow networks: the built-in shapes need little capacity, and the CPU run stays in minutes.
    cfg.model = {"g_channel_max": 64, "d_channel_max": 64, "r1_gamma": 0.1}
    return cfg.validate()


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


@torch.no_grad()
def score_run(run_dir: str | Path, untrained=None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Scores of the trained run and of the three baselines on held-out built-in shapes."""
    t = Translator.load(run_dir, device="cpu")
    size = t.size
    x = _as_float(builtin_images("shape-holdout", EVAL_IMAGES, size, seed=seed + 1))
    random_texture = _as_float(builtin_images("texture-holdout", EVAL_IMAGES, size, seed=seed + 2))
    rows = {"translator (trained)": shape_scores(x, t.translate_tensor(x, 1, seed)[:, 0]),
            "identity (the input)": shape_scores(x, x),
            "random texture-set image": shape_scores(x, random_texture)}
    if untrained is not None:  # G at initialisation, before any training step
        z = torch.randn(x.shape[0], t.method.z_dim, generator=torch.Generator().manual_seed(seed))
        rows["untrained generator"] = shape_scores(x, untrained(x, z).float().clamp(-1, 1))
    return rows


def verdict(rows: dict[str, dict[str, float]]) -> tuple[bool, str]:
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
    return tex_ok and sil_ok, "; ".join(parts)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| output | silhouette IoU (shape kept) | texture score (stripes) |", "| --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['silhouette']:.3f} | {r['texture']:.3f} |")
    return "\n".join(lines)


def quickstart(out: str = "runs/quickstart", budget: int | None = None, size: int | None = None) -> int:
    cfg = quickstart_config(out, budget, size)
    print("shapetex quickstart: training the adversarial translator on the built-in shapes -> striped shapes")
    trainer = Trainer(cfg)
    untrained = copy.deepcopy(trainer.method.G).cpu().eval()  # the run's own initial weights
    result = trainer.run()
    rows = score_run(cfg.out, untrained, cfg.train.seed)
    ok, why = verdict(rows)
    run = Path(cfg.out)
    t = Translator.load(run, device="cpu")
    holdout = {"shape": builtin_images("shape-holdout", 8, cfg.data.size, seed=cfg.train.seed + 1)}
    save_sample_grid(t.method, holdout, run / "results.png", samples=4, seed=cfg.train.seed)
    summary = {"scores": rows, "passed": ok, "verdict": why, "images_seen": result["images_seen"],
               "images_per_s": result["last"].get("images_per_s")}
    (run / "quickstart.json").write_text(json.dumps(summary, indent=2))
    table = format_table(rows)
    (run / "quickstart.md").write_text(f"# shapetex quickstart\n\n{table}\n\n{why}\n\n![results](results.png)\n")
    print()
    print(table)
    print()
    print(f"Result: {why}.")
    print(f"Outputs are in {run}/:")
    print("  results.png      held-out plain shapes (left column) and 4 translations with different z: the same")
    print("                   silhouettes should now be striped like the texture set")
    print("  samples/         grids over training; checkpoints/ weights (safetensors); metrics.jsonl losses")
    print(f"  quickstart.md    this table. Translate your own image: shapetex translate --checkpoint {run} "
          "--input IMAGE --samples 4")
    return 0 if ok else 1

"""Measure one quickstart setting: train the quickstart's run with overrides, print and log its scores.

    python benchmarks/tune_quickstart.py --name fourier32 --set model.fourier_features=32 --threads 1

Appends one JSON line (settings, wall time, the quickstart table's rows) to --log, so the choices in
`shapetex.quickstart.quickstart_config` can be traced to measured runs (docs/quickstart_tuning.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from shapetex.config import apply_override
from shapetex.quickstart import format_table, quickstart_config, score_run
from shapetex.train import Trainer


def table(log: str) -> str:
    """The logged runs as one markdown table (the translator's row of each)."""
    lines = ["| run | settings | seed | train s | silhouette | texture | angle spread (deg) | of it, z alone | "
             "coherence | pixel diversity |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for line in Path(log).read_text().splitlines():
        r = json.loads(line)
        t = r["rows"]["translator (trained)"]
        z_alone = f"{t['angle_spread_z']:.1f}" if "angle_spread_z" in t else "-"  # runs logged before the column
        lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(defaults)'} | {r['seed']} | {r['train_s']:.0f} | "
                     f"{t['silhouette']:.3f} | {t['texture']:.3f} | {t['angle_spread']:.1f} | {z_alone} | "
                     f"{t.get('stripe_coherence', float('nan')):.2f} | {t['pixel_diversity']:.3f} |")
    return "\n".join(lines)


SEED_COLUMNS = ("silhouette", "texture", "angle_spread", "angle_spread_z", "pixel_diversity")


def _mean_sd(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5  # sample sd, as the experiments use
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def seed_table(log: str) -> str:
    """One row per distinct settings: the translator's scores as mean ± sample sd over the logged seeds."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for line in Path(log).read_text().splitlines():
        r = json.loads(line)
        groups.setdefault(tuple(r["overrides"]), []).append(r)
    lines = ["| settings | seeds | silhouette | texture | angle spread (deg) | of it, z alone | pixel diversity |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for overrides, runs in groups.items():
        rows = [r["rows"]["translator (trained)"] for r in runs]
        cells = [_mean_sd([t[c] for t in rows if c in t], 1 if "spread" in c else 3) for c in SEED_COLUMNS]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        lines.append(f"| {' '.join(overrides) or '(defaults)'} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", action="store_true", help="print the logged runs of --log as a table and stop")
    p.add_argument("--by-settings", action="store_true", help="with --table: one row per distinct settings, "
                   "mean ± sd over the logged seeds")
    p.add_argument("--rescore", action="store_true", help="score every logged run's folder again with the "
                   "current scoring (untrained-generator row kept) and rewrite --log")
    p.add_argument("--name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/tune")
    p.add_argument("--log", default="runs/tune/results.jsonl")
    a = p.parse_args()
    if a.table:
        print(seed_table(a.log) if a.by_settings else table(a.log))
        return
    if a.rescore:
        records = [json.loads(line) for line in Path(a.log).read_text().splitlines()]
        for r in records:
            folder = Path(a.out) / r["name"]
            if (folder / "checkpoints").exists():
                untrained = r["rows"].get("untrained generator")
                r["rows"] = score_run(folder, None, r["seed"])
                if untrained:
                    r["rows"]["untrained generator"] = untrained
        Path(a.log).write_text("".join(json.dumps(r) + "\n" for r in records))
        print(table(a.log))
        return
    if not a.name:
        p.error("--name is required to train")
    cfg = quickstart_config(str(Path(a.out) / a.name))
    cfg.train.threads, cfg.train.seed = a.threads, a.seed
    for item in a.overrides:
        key, _, value = item.partition("=")
        apply_override(cfg, key, value)
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    trainer = Trainer(cfg, overwrite=True)  # a tuning run of the same name trains afresh
    untrained = copy.deepcopy(trainer.method.G).cpu().eval()
    trainer.run()
    train_s = time.perf_counter() - start
    rows = score_run(cfg.out, untrained, cfg.train.seed)
    total_s = time.perf_counter() - start
    print(format_table(rows))
    print(f"{a.name}: train {train_s:.0f} s, total {total_s:.0f} s")
    record = {"name": a.name, "overrides": a.overrides, "seed": a.seed, "threads": a.threads,
              "train_s": round(train_s, 1), "total_s": round(total_s, 1), "rows": rows}
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    with open(a.log, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

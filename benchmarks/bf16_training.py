"""Train the same short runs in fp32 and in bf16, several seeds each, and score them side by side.

    python benchmarks/bf16_training.py cyclegan --dataroot ../shared/data/horse2zebra --size 64 --budget 600
    python benchmarks/bf16_training.py cut --dataroot ../shared/data/horse2zebra --size 64 --budget 600
    python benchmarks/bf16_training.py --table runs/bf16-training/cyclegan/results.csv

Each run is `shapetex train` on one thread (two runs at a time with --jobs 2) with the last --holdout images of
each set held out; it is then scored by `shapetex evaluate --holdout` twice, with fp32 and with bf16
translation, so one table answers both questions: does bf16 *training* change the scores (rows by training
precision), and does bf16 *translation* of the same weights change FID/KID (the two evaluation columns).
The quickstart's runs are compared with benchmarks/tune_quickstart.py (--set train.precision=bf16).
Writes OUT/METHOD/results.csv and prints mean ± sd per training precision with the training wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCORES = ("fid", "kid", "structure_ssim")


def train_and_score(method: str, precision: str, seed: int, a: argparse.Namespace) -> dict:
    run = Path(a.out) / method / f"{precision}-s{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    train = ["shapetex", "train", "--method", method, "--dataroot", a.dataroot, "--size", str(a.size),
             "--budget", str(a.budget), "--seed", str(seed), "--precision", precision, "--out", str(run),
             "--overwrite", "--set", f"data.holdout={a.holdout}", "--set", f"train.threads={a.threads}",
             "--set", "train.sample_every=0", *sum((["--set", s] for s in a.overrides), [])]
    start = time.perf_counter()
    subprocess.run(train, env=env, check=True, stdout=subprocess.DEVNULL)
    row = {"method": method, "train_precision": precision, "seed": seed,
           "train_s": round(time.perf_counter() - start, 1)}
    for ev in ("fp32", "bf16"):
        out = run / f"eval-{ev}"
        subprocess.run(["shapetex", "evaluate", "--checkpoint", str(run), "--holdout", "--samples", "1",
                        "--precision", ev, "--out", str(out), "--quiet"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        metrics = json.loads((out / "metrics.json").read_text())
        for key in SCORES:
            row[f"{key}_{ev}_eval"] = metrics.get(key)
    print(json.dumps(row), flush=True)
    return row


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {sd:.2g}"


def table(rows: list[dict]) -> str:
    cols = ["train_s"] + [f"{k}_{ev}_eval" for k in SCORES for ev in ("fp32", "bf16")]
    lines = ["| method | training precision | seeds | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 3) + "|"]
    for key in sorted({(r["method"], r["train_precision"]) for r in rows}):
        group = [r for r in rows if (r["method"], r["train_precision"]) == key]
        cells = [mean_sd([float(r[c]) if r[c] not in (None, "") else None for r in group]) for c in cols]
        lines.append(f"| {key[0]} | {key[1]} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method", nargs="?", help="a method of `shapetex train` (cyclegan, cut, ...)")
    p.add_argument("--dataroot", help="a CycleGAN-style folder with trainA/ and trainB/")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--budget", type=int, default=600, help="training images per run")
    p.add_argument("--holdout", type=int, default=100, help="images of each set held out and scored")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs/bf16-training")
    p.add_argument("--table", metavar="CSV", help="print the table of a results.csv and stop")
    a = p.parse_args()
    if a.table:
        print(table(list(csv.DictReader(open(a.table)))))
        return
    if not (a.method and a.dataroot):
        p.error("a method and --dataroot are needed to train")
    calls = [(a.method, prec, seed, a) for seed in a.seeds for prec in a.precisions]
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda c: train_and_score(*c), calls))
    path = Path(a.out) / a.method / "results.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"# {a.method}, {a.size} px, {a.budget} images, seeds {a.seeds}; {' '.join(sys.argv[1:])}")
    print(table(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

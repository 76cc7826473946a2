"""What bf16 translation changes against fp32, for trained runs of any method, on their held-out images.

    python benchmarks/bf16_difference.py runs/quickstart runs/h2z-cyclegan runs/facades-pix2pix [--inputs 100]

For each run: its held-out inputs (the built-in task's held-out shapes, or the images its data.holdout kept out
of training), resized to the run's training size and translated with the same z and noise in fp32 and in bf16
autocast. Prints one table row per run: max and mean absolute difference of the outputs and their PSNR against
fp32 (outputs in [-1, 1]), the time of each precision on this machine, and, for a built-in run, the task's
scores in both precisions.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from shapetex.api import Translator
from shapetex.data.builtin import builtin_images
from shapetex.data.holdout_files import write_holdout
from shapetex.data.images import list_images, load_rgb, to_chw_tensor, uint8_to_float
from shapetex.metrics.builtin_scores import TASK_SCORES

sys.path.insert(0, str(Path(__file__).parent))
from speed import cpu_name  # noqa: E402


def held_out_inputs(t: Translator, count: int, seed: int) -> torch.Tensor:
    cfg = t.config
    if cfg.data.source == "builtin":
        return uint8_to_float(builtin_images("shape-holdout", count, t.size, seed + 1, cfg.data.builtin_task))
    with tempfile.TemporaryDirectory() as tmp:
        files = list_images(write_holdout(cfg, tmp).source)[:count]
        images = [uint8_to_float(to_chw_tensor(load_rgb(f)))[None] for f in files]
        return torch.cat([F.interpolate(x, size=(t.size, t.size), mode="bilinear", antialias=True,
                                        align_corners=False) for x in images])


def compare(run: str, count: int, samples: int, seed: int) -> dict:
    outs, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        t = Translator.load(run, device="cpu", precision=precision)
        x = held_out_inputs(t, count, seed)
        t.translate_tensor(x[:1], 1, seed)  # warm-up: first-call overheads are not the precision's
        start = time.perf_counter()
        outs[precision] = t.translate_tensor(x, samples, seed)
        seconds[precision] = time.perf_counter() - start
    diff = (outs["bf16"] - outs["fp32"]).abs()
    row = {"run": run, "method": t.config.method, "size": t.size, "inputs": len(x), "samples": samples,
           "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
           "psnr_db": 10 * math.log10(4 / float((diff**2).mean())),  # peak-to-peak 2 in [-1, 1]
           "fp32_s": seconds["fp32"], "bf16_s": seconds["bf16"]}
    if t.config.data.source == "builtin":
        task = t.config.data.builtin_task
        for precision, y in outs.items():
            row[f"scores_{precision}"] = {k: round(v, 4) for k, v in TASK_SCORES[task].row(x, y).items()}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--inputs", type=int, default=128, help="held-out inputs per run at most")
    p.add_argument("--samples", type=int, default=4, help="z per input")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"# bf16 vs fp32 translation, {cpu_name()}, {torch.get_num_threads()} threads\n")
    print("| run | method | size | inputs x z | max abs | mean abs | PSNR vs fp32 | fp32 s | bf16 s | bf16 speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    scores = []
    for run in a.runs:
        r = compare(run, a.inputs, a.samples, a.seed)
        print(f"| {Path(run).name} | {r['method']} | {r['size']} | {r['inputs']} x {r['samples']} | "
              f"{r['max_abs']:.4f} | {r['mean_abs']:.5f} | {r['psnr_db']:.1f} dB | {r['fp32_s']:.2f} | "
              f"{r['bf16_s']:.2f} | {r['fp32_s'] / r['bf16_s']:.2f}x |", flush=True)
        if "scores_fp32" in r:
            scores.append((Path(run).name, r["scores_fp32"], r["scores_bf16"]))
    for name, fp32, bf16 in scores:
        print(f"\n{name}: task scores fp32 {fp32}\n{' ' * len(name)}  task scores bf16 {bf16}")


if __name__ == "__main__":
    main()

"""What bf16 translation changes against fp32, on a built-in run's held-out shapes.

    python benchmarks/bf16_difference.py runs/quickstart [--inputs 128 --samples 4]

Prints the max and mean absolute difference of the outputs, their PSNR against fp32 (range [-1, 1]), the time of
each precision on this machine, and the task's scores in both."""

from __future__ import annotations

import argparse
import math
import time

import torch

from shapetex.api import Translator
from shapetex.data.builtin import builtin_images
from shapetex.data.images import uint8_to_float
from shapetex.metrics.builtin_scores import TASK_SCORES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--inputs", type=int, default=128)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    outs, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        t = Translator.load(a.run, device="cpu", precision=precision)
        task = t.config.data.builtin_task
        x = uint8_to_float(builtin_images("shape-holdout", a.inputs, t.size, a.seed + 1, task))
        start = time.perf_counter()
        outs[precision] = t.translate_tensor(x, a.samples, a.seed)
        seconds[precision] = time.perf_counter() - start
    diff = (outs["bf16"] - outs["fp32"]).abs()
    psnr = 10 * math.log10(4 / float((diff**2).mean()))  # peak-to-peak 2 in [-1, 1]
    print(f"max abs {diff.max():.4f}, mean abs {diff.mean():.5f}, PSNR {psnr:.1f} dB; "
          f"fp32 {seconds['fp32']:.2f} s, bf16 {seconds['bf16']:.2f} s ({torch.get_num_threads()} threads)")
    for precision, y in outs.items():
        print(precision, {k: round(v, 4) for k, v in TASK_SCORES[task].row(x, y).items()})


if __name__ == "__main__":
    main()

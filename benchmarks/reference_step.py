"""The reference implementations' own training step, timed on this machine: the figures speed.py divides by.

    git clone https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix REF_CG
    git clone https://github.com/taesungp/contrastive-unpaired-translation REF_CUT
    python benchmarks/reference_step.py cyclegan --repo REF_CG --json ref.json
    python benchmarks/reference_step.py pix2pix --repo REF_CG --json ref.json
    python benchmarks/reference_step.py cut --repo REF_CUT --json ref.json
    python benchmarks/speed.py --reference-json ref.json --rows cyclegan-r9-128,pix2pix-unet128,cut-r9-128

The model is built by the reference's own classes, with its own option parser (options/train_options.py) and the
model's own `modify_commandline_options`, as its train.py would at `--load_size 128 --crop_size 128 --gpu_ids -1`
(pix2pix with `--netG unet_128`, since unet_256 needs 256 px). Each step gets new random 128 px images through the
model's `set_input`; only `optimize_parameters()` is timed, after warm-up steps. One model per process, so the
peak resident memory (ru_maxrss) is that model's. Nothing of the reference is copied into this repository: it
runs from the clone given by --repo.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import resource
import statistics
import sys
import time
import types
from pathlib import Path

MODELS = {  # name -> (module, class, the reference's --model, extra arguments)
    "cyclegan": ("models.cycle_gan_model", "CycleGANModel", "cycle_gan", []),
    "pix2pix": ("models.pix2pix_model", "Pix2PixModel", "pix2pix", ["--netG", "unet_128"]),
    "cut": ("models.cut_model", "CUTModel", "cut", ["--CUT_mode", "CUT"]),
}


def _package(name: str, folder: Path) -> None:
    """Make `folder` importable as package `name` when the clone has no __init__.py there (CUT's options/)."""
    if name not in sys.modules and not (folder / "__init__.py").exists():
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module


def build(name: str, repo: Path, size: int):
    """(model, opt): the reference's model with the options its train.py would parse."""
    sys.path.insert(0, str(repo))
    for pkg in ("models", "options", "util", "data"):
        _package(pkg, repo / pkg)
    module, cls, model_flag, extra = MODELS[name]
    Model = getattr(importlib.import_module(module), cls)
    from options.train_options import TrainOptions

    argv = ["--dataroot", "unused", "--model", model_flag, "--load_size", str(size), "--crop_size", str(size),
            "--gpu_ids", "-1", *extra]
    options = TrainOptions()
    parser = options.initialize(argparse.ArgumentParser())
    saved, sys.argv = sys.argv, ["train.py", *argv]  # some option setters read sys.argv themselves
    try:
        parser = Model.modify_commandline_options(parser, True)
    finally:
        sys.argv = saved
    opt = parser.parse_args(argv)
    opt.isTrain, opt.gpu_ids = True, []  # what BaseOptions.parse does for --gpu_ids -1
    return Model(opt), opt


def random_batch(size: int, gen):
    import torch

    a, b = (torch.rand(1, 3, size, size, generator=gen) * 2 - 1 for _ in range(2))
    return {"A": a, "B": b, "A_paths": ["a.png"], "B_paths": ["b.png"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--repo", required=True, type=Path, help="a clone of the reference implementation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--json", help="merge {model: {s_per_iter, peak_mb, ...}} into this file (--reference-json)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    with contextlib.redirect_stdout(sys.stderr):  # the reference prints; stdout carries the JSON only
        model, opt = build(args.model, args.repo.resolve(), args.size)
        shown = ("netG", "netD", "norm", "normG", "normD", "gan_mode", "pool_size", "lambda_L1", "lambda_identity",
                 "no_dropout", "init_type", "init_gain", "lr", "beta1", "nce_layers", "lambda_NCE")
        print("[reference_step] " + " ".join(f"{k}={getattr(opt, k)}" for k in shown if hasattr(opt, k)))
        if args.model == "cut":  # CUT's train.py: F is built from the first batch, then setup
            model.data_dependent_initialize(random_batch(args.size, gen))
        model.setup(opt)
        times, first = [], None
        for i in range(args.warmup + args.steps):
            model.set_input(random_batch(args.size, gen))
            start = time.perf_counter()
            model.optimize_parameters()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
            first = first or model.get_current_losses()
    if not all(math.isfinite(v) for v in first.values()):
        raise SystemExit(f"{args.model}: the first step's losses are not finite: {first}")
    result = {args.model: {"s_per_iter": statistics.mean(times), "median_s": statistics.median(times),
                           "min_s": min(times), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           "threads": torch.get_num_threads(), "steps": args.steps, "torch": torch.__version__,
                           "netG": opt.netG, "size": args.size}}
    print(json.dumps(result))
    if args.json:
        path = Path(args.json)
        merged = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**merged, **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

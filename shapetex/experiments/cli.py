"""`shapetex experiment ae-vs-gan|bottleneck|dataset-size`: run one of the paper's experiments."""

from __future__ import annotations

import argparse

from ..cli import register_command

EXPERIMENTS = ("ae-vs-gan", "bottleneck", "dataset-size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", choices=EXPERIMENTS,
                   help="ae-vs-gan: autoencoder vs GAN with identical sets vs translating GAN (Fig. 4); "
                        "bottleneck: 16x16 vs 8x8 encoder output (Figs. 9-12); dataset-size: sets cut to several "
                        "sizes")
    p.add_argument("--data", nargs="+", default=["builtin"], metavar="DATA",
                   help="builtin (default), or two folders: SHAPE_DIR TEXTURE_DIR")
    p.add_argument("--size", type=int, default=32, help="resolution (default 32)")
    p.add_argument("--budget", type=int, help="training images per run (default: 4000; bottleneck 5000)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant; several give mean and spread (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--every", type=int, default=1000, help="K: training images between measurements (default 1000)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-images", type=int, default=64, help="held-out shape images measured (default 64)")
    p.add_argument("--samples", type=int, default=4, help="latents per input for diversity (default 4)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                   help="dataset-size: images per set, 0 for all (default 16 128 0)")
    p.add_argument("--builtin-count", type=int, default=4000, help="images per built-in set (default 4000)")
    p.add_argument("--out", help="output folder (default runs/experiments/<experiment>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for every run, e.g. --set model.g_channel_max=128 (repeatable)")


def settings_from_args(args: argparse.Namespace):
    from . import ae_vs_gan, bottleneck, dataset_size
    from .runner import ExperimentSettings

    default_budget = {"ae-vs-gan": ae_vs_gan.DEFAULT_BUDGET, "bottleneck": bottleneck.DEFAULT_BUDGET,
                      "dataset-size": dataset_size.DEFAULT_BUDGET}[args.experiment]
    data = ["builtin"] if args.data == ["builtin"] else list(args.data)
    return ExperimentSettings(
        data=data, out=args.out or f"runs/experiments/{args.experiment}", size=args.size,
        budget=args.budget or default_budget, seeds=args.seeds, seed0=args.seed, every=args.every, batch=args.batch,
        eval_images=args.eval_images, samples=args.samples, builtin_count=args.builtin_count, device=args.device,
        threads=args.threads, overrides=list(args.overrides))


def run(args: argparse.Namespace) -> int:
    from . import ae_vs_gan, bottleneck, dataset_size

    s = settings_from_args(args)
    if args.sizes is not None and args.experiment != "dataset-size":
        raise ValueError("--sizes is for the dataset-size experiment")
    if args.experiment == "ae-vs-gan":
        out = ae_vs_gan.run(s)
    elif args.experiment == "bottleneck":
        out = bottleneck.run(s)
    else:
        out = dataset_size.run(s, sizes=args.sizes if args.sizes is not None else dataset_size.DEFAULT_SIZES)
    print()
    print((out / "summary.md").read_text().split("\n![")[0].rstrip())
    print(f"\nresults in {out}/: summary.md, results.csv, plots and grids (PNG), runs/ (the trained runs)")
    return 0


register_command("experiment", "run one of the paper's experiments and report whether its claim held",
                 add_arguments, run)

"""`shapetex experiment ae-vs-gan|bottleneck|dataset-size`: run one of the paper's experiments."""

from __future__ import annotations

import argparse

from ..config import ConfigError
from ..methods.adversarial import PAPER_SIZE
from .presets import SCALES

EXPERIMENTS = ("ae-vs-gan", "bottleneck", "dataset-size", "paper", "compare")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", choices=EXPERIMENTS,
                   help="ae-vs-gan: autoencoder vs GAN with identical sets vs translating GAN (Fig. 4); "
                        "bottleneck: 16x16 vs 8x8 encoder output (Figs. 9-12); dataset-size: sets cut to several "
                        "sizes; paper: all three, sharing runs, one report.md; compare: the streamlined "
                        "translator vs CycleGAN vs AsymmetricGAN at equal training time (--data A_DIR B_DIR)")
    p.add_argument("--data", nargs="+", default=["builtin"], metavar="DATA",
                   help="builtin (default), or two folders: SHAPE_DIR TEXTURE_DIR")
    p.add_argument("--scale", choices=SCALES, default="cpu",
                   help="cpu (default): scale-true at --size, the paper's bottleneck shares and StyleGAN2's relative "
                        "discriminator widths; paper: the literal 512 px setting, for GPUs; custom: the bottleneck "
                        "as given by --set model.bottleneck_res, narrow networks")
    p.add_argument("--size", type=int, help="resolution (default 32; 512 with --scale paper; compare: 64)")
    p.add_argument("--budget", type=int, help="training images per run at most (default: 4000; bottleneck 5000; "
                                              f"paper {PAPER_BUDGET})")
    p.add_argument("--seeds", type=int,
                   help="seeds per variant (compare: per method); several give mean and spread (default 1; paper 3)")
    p.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--every", type=int, help="K: training images between measurements (default 1000; paper 500)")
    p.add_argument("--plateau", action=argparse.BooleanOptionalAction, default=True,
                   help="stop a run once its training-image recon MSE and its content score stopped improving "
                        "(default on; --no-plateau trains every run to the budget)")
    p.add_argument("--window", type=int, default=3, help="plateau rule: measurements per window (default 3)")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="plateau rule: the smallest relative improvement of the window mean that counts (default 0.05)")
    p.add_argument("--min-images", type=int, default=0, help="plateau rule: never stop before this many images")
    p.add_argument("--jobs", type=int,
                   help="runs trained at once, one process each (default 1; paper 2; two on two cores)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-images", type=int, default=64, help="held-out shape images measured (default 64)")
    p.add_argument("--samples", type=int, default=4, help="latents per input for diversity (default 4)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                   help="dataset-size: images per set, 0 for all (default 16 128 0)")
    p.add_argument("--builtin-count", type=int, default=4000, help="images per built-in set (default 4000)")
    p.add_argument("--out", help="output folder (default runs/experiments/<experiment>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's)")
    p.add_argument("--keep-results", metavar="DIR",
                   help="at the end, also copy the report and each finished run's measurements, settings and "
                        "metrics (no weights: small enough to commit) to DIR; `--resume --out DIR` rebuilds the "
                        "report from them on any machine without training")
    p.add_argument("--resume", action="store_true",
                   help="read back the runs that finished earlier under the same settings (in --out) instead of "
                        "training them again; only the others train")
    p.add_argument("--fid", action=argparse.BooleanOptionalAction, default=True,
                   help="on photos, FID/KID of each translating run's final outputs against its texture folder "
                        "(default on; needs the FID Inception network)")
    g = p.add_argument_group("compare")
    g.add_argument("--minutes", type=float, default=20.0, help="training time per method (default 20)")
    g.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="default: adversarial cyclegan asymmetric")
    g.add_argument("--holdout", type=int, default=100,
                   help="the last N images of each folder, kept out of training and scored on (default 100)")
    g.add_argument("--feature-net", help="score with this TorchScript feature network instead of FID's Inception "
                                         "(compare, and the FID/KID of the other experiments on photos)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for every run, e.g. --set model.g_channel_max=128 (repeatable)")


PAPER_BUDGET, PAPER_SEEDS, PAPER_EVERY, PAPER_JOBS = 2000, 3, 250, 2  # sized for 90 minutes on a 2-core CPU


def settings_from_args(args: argparse.Namespace):
    from . import ae_vs_gan, bottleneck, dataset_size
    from .runner import ExperimentSettings

    paper = args.experiment == "paper"
    default_budget = {"ae-vs-gan": ae_vs_gan.DEFAULT_BUDGET, "bottleneck": bottleneck.DEFAULT_BUDGET,
                      "dataset-size": dataset_size.DEFAULT_BUDGET, "paper": PAPER_BUDGET}[args.experiment]
    data = ["builtin"] if args.data == ["builtin"] else list(args.data)
    size = args.size or (PAPER_SIZE if args.scale == "paper" else 32)
    return ExperimentSettings(
        data=data, out=args.out or f"runs/experiments/{args.experiment}", scale=args.scale, size=size,
        budget=args.budget or default_budget, seeds=args.seeds or (PAPER_SEEDS if paper else 1), seed0=args.seed,
        every=args.every or (PAPER_EVERY if paper else 1000), batch=args.batch, plateau=args.plateau,
        window=args.window, tolerance=args.tolerance, min_images=args.min_images,
        eval_images=args.eval_images, samples=args.samples, builtin_count=args.builtin_count,
        jobs=args.jobs or (PAPER_JOBS if paper else 1), device=args.device, threads=args.threads,
        fid=args.fid, feature_net=args.feature_net, overrides=list(args.overrides), resume=args.resume)


def compare_settings(args: argparse.Namespace):
    from .compare import METHODS, CompareSettings

    return CompareSettings(
        data=list(args.data), out=args.out or "runs/experiments/compare", size=args.size or 64,
        minutes=args.minutes, methods=list(args.methods or METHODS), holdout=args.holdout, samples=args.samples,
        seed=args.seed, seeds=1 if args.seeds is None else args.seeds,
        jobs=1 if args.jobs is None else args.jobs, threads=args.threads or 1, device=args.device,
        feature_net=args.feature_net,
        overrides=list(args.overrides))


def run(args: argparse.Namespace) -> int:
    from . import ae_vs_gan, bottleneck, compare, dataset_size, paper

    if args.experiment == "compare":
        if args.resume:
            raise ConfigError("--resume is for ae-vs-gan, bottleneck, dataset-size and paper; compare trains its "
                              "methods for a set time and has no finished runs to read back")
        out = compare.run(compare_settings(args))
        print()
        print((out / "summary.md").read_text().split("\n![")[0].rstrip())
        print(f"\nresults in {out}/: summary.md, results.json, samples.png, eval/ (metrics per run), runs/")
        _keep(out, args.keep_results)
        return 0
    s = settings_from_args(args)
    if args.sizes is not None and args.experiment not in ("dataset-size", "paper"):
        raise ConfigError("--sizes is for the dataset-size and paper experiments")
    sizes = args.sizes if args.sizes is not None else dataset_size.DEFAULT_SIZES
    if args.experiment == "paper":
        out = paper.run(s, sizes=sizes)
        print()
        print((out / "report.md").read_text().split("\n\n## ")[0].rstrip())
        print(f"\nresults in {out}/: report.md, one folder per experiment, runs/ (the trained runs)")
        _keep(out, args.keep_results)
        return 0
    if args.experiment == "ae-vs-gan":
        out = ae_vs_gan.run(s)
    elif args.experiment == "bottleneck":
        out = bottleneck.run(s)
    else:
        out = dataset_size.run(s, sizes=sizes)
    print()
    print((out / "summary.md").read_text().split("\n![")[0].rstrip())
    print(f"\nresults in {out}/: summary.md, results.csv, plots and grids (PNG), runs/ (the trained runs)")
    _keep(out, args.keep_results)
    return 0


def _keep(out, dest: str | None) -> None:
    if dest:
        from .keep import keep_results

        files = keep_results(out, dest)
        size = sum(f.stat().st_size for f in files)
        print(f"kept {len(files)} files ({size / 1e3:.0f} KB) in {dest}/: rebuild with --resume --out {dest}")

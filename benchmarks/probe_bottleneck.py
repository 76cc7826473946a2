"""One tracked run of the streamlined translator, for choosing experiment settings (docs/experiments.md).

    python benchmarks/probe_bottleneck.py NAME [--data builtin | SHAPE_DIR TEXTURE_DIR] [--size 32]
        [--variant default] [--method adversarial] [--budget 2000] [--batch 16]
        [--set model.r1_gamma=1.0 --set model.bottleneck_res=4 ...]
    python benchmarks/probe_bottleneck.py --features RUN_DIR [--data ...] [--size 64]

Trains with the experiments' scale preset and the given overrides, measures 64 held-out shape images every 500
images (silhouette IoU on built-in data, structure SSIM on photos; diversity, input_match, the outputs' spread
across inputs, recon MSE) and prints each measurement; the run goes to runs/probe/NAME and its rows to
runs/probe/NAME.json. `--method autoencoder` trains the same generator with the MSE loss instead, a check that
the architecture can pass the input at all. `--features RUN_DIR` trains nothing: it prints how much a trained
run's encoder output varies across 32 held-out inputs and how it correlates with their luminance, per channel
(an encoder that stopped carrying its input varies little across inputs and correlates weakly)."""

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from shapetex.data.images import as_float_images
from shapetex.experiments.runner import ExperimentSettings, Variant, held_out_shapes
from shapetex.experiments.tracker import Tracker, train_tracked, training_shapes


def encoder_report(run_dir: str, s: ExperimentSettings) -> None:
    from shapetex.api import Translator

    G = Translator.load(run_dir, device="cpu").method.translator_net()
    x = as_float_images(held_out_shapes(s)[:32])
    with torch.no_grad():
        f = G.encoder(x)
    lum = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), f.shape[-1])[:, 0].flatten(1)
    lum = lum - lum.mean(1, keepdim=True)
    print(f"encoder output {tuple(f.shape[1:])}: sd across inputs {f.std(0).mean():.4f}, "
          f"sd across positions {f.std((2, 3)).mean():.4f}")
    for c in range(f.shape[1]):
        a = f[:, c].flatten(1)
        a = a - a.mean(1, keepdim=True)
        r = ((a * lum).sum(1) / (a.norm(dim=1) * lum.norm(dim=1) + 1e-8)).mean()
        print(f"  channel {c}: correlation with the input's luminance {r:+.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", nargs="?")
    p.add_argument("--method", default="adversarial", choices=["adversarial", "autoencoder"])
    p.add_argument("--features", metavar="RUN_DIR")
    p.add_argument("--data", nargs="+", default=["builtin"])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--variant", default="default", choices=["default", "low"])
    p.add_argument("--budget", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    a = p.parse_args()
    s = ExperimentSettings(data=a.data, size=a.size, budget=a.budget, batch=a.batch, threads=1, every=a.every,
                           overrides=a.overrides)
    s.validate()
    if a.features:
        return encoder_report(a.features, s)
    if not a.name:
        p.error("give a NAME for the run, or --features RUN_DIR")
    out = Path("runs/probe")
    cfg = Variant(a.name, method=a.method, bottleneck=a.variant).config(s, out / a.name, 0)
    print(cfg.model, flush=True)
    tracker = Tracker(held_out_shapes(s), 4, s.preservation, grid=8, train_inputs=training_shapes(cfg, 64))
    train_tracked(cfg, tracker, a.every, log=lambda m: print(m, flush=True))
    (out / f"{a.name}.json").write_text(json.dumps(tracker.rows))


if __name__ == "__main__":
    main()

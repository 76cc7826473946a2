"""One tracked run of the streamlined translator, for choosing experiment settings (docs/experiments.md).

    python benchmarks/probe_bottleneck.py NAME [--data builtin | SHAPE_DIR TEXTURE_DIR] [--size 32]
        [--variant default] [--budget 2000] [--batch 16] [--set model.r1_gamma=1.0 --set model.bottleneck_res=4 ...]

Trains with the experiments' scale preset and the given overrides, measures 64 held-out shape images every 500
images (silhouette IoU on built-in data, structure SSIM on photos; diversity, input_match, the outputs' spread
across inputs, recon MSE) and prints each measurement; the run goes to runs/probe/NAME and its rows to
runs/probe/NAME.json."""

import argparse
import json
from pathlib import Path

from shapetex.experiments.runner import (
    ExperimentSettings,
    Tracker,
    Variant,
    held_out_shapes,
    train_tracked,
    training_shapes,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name")
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
    out = Path("runs/probe")
    cfg = Variant(a.name, bottleneck=a.variant).config(s, out / a.name, 0)
    print(cfg.model, flush=True)
    s.validate()
    tracker = Tracker(held_out_shapes(s), 4, s.preservation, grid=8, train_inputs=training_shapes(cfg, 64))
    train_tracked(cfg, tracker, a.every, log=lambda m: print(m, flush=True))
    (out / f"{a.name}.json").write_text(json.dumps(tracker.rows))


if __name__ == "__main__":
    main()

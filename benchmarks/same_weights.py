"""Do two source trees train bit-identical networks? A refactor's check, not a benchmark.

    PYTHONPATH=/tmp/base python benchmarks/same_weights.py train /tmp/sw-base      # the tree before
    PYTHONPATH=.         python benchmarks/same_weights.py train /tmp/sw-new       # the tree after
    python benchmarks/same_weights.py compare /tmp/sw-base /tmp/sw-new

`train` runs a few tiny steps of every method and data mode through the real Trainer (tiny networks, 16-32 px
images written by this script) and leaves one run folder per case; `compare` checks that both trees wrote the
same weights, optimizer state and losses (bit for bit), the same resolved settings and summary.md. It uses only
`RunConfig` and `Trainer`, the API both trees share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CYCLE_TINY = {"t_width": 4, "t_blocks": 2, "r_blocks": 1, "d_width": 4, "d_layers": 2, "sample_rows": 2}
ADV_TINY = {"g_channel_max": 32, "d_channel_max": 32, "z_dim": 16, "w_dim": 32, "mapping_layers": 1}
CUT_TINY = {"width": 4, "blocks": 2, "d_width": 4, "d_layers": 2, "num_patches": 8, "nce_units": 8}


def write_images(folder: Path, n: int, seed: int, size: int = 16) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return str(folder)


def cases(root: Path) -> dict[str, dict]:
    """name -> (method, data settings, model settings, train settings)."""
    data = root / "data"
    two = [write_images(data / "a", 8, 0), write_images(data / "b", 8, 1)]
    three = two + [write_images(data / "c", 8, 2)]
    pairs = data / "pairs"
    write_images(pairs / "A", 8, 3, 32)
    write_images(pairs / "B", 8, 4, 32)
    builtin = {"source": "builtin", "size": 32, "builtin_count": 16}
    domains = {"source": "domains", "domains": two, "size": 16, "holdout": 2}
    paired = {"source": "paired", "paired": str(pairs), "size": 32, "holdout": 2}
    steps = {"batch": 2, "budget": 8}
    return {
        "adversarial": dict(method="adversarial", data=builtin, model=ADV_TINY, train={"batch": 4, "budget": 12}),
        "autoencoder": dict(method="autoencoder", data=builtin, model=ADV_TINY, train={"batch": 4, "budget": 8}),
        "cyclegan": dict(method="cyclegan", data=domains, model={**CYCLE_TINY, "pool_size": 3}, train=steps),
        "asymmetric": dict(method="asymmetric", data=domains, model={**CYCLE_TINY, "share": "encoder"}, train=steps),
        "asymmetric-multi": dict(method="asymmetric", data={**domains, "domains": three},
                                 model={**CYCLE_TINY, "gan_loss": "wgan-gp", "g_every": 2},
                                 train={"batch": 3, "budget": 12}),
        "cyclegan-multi": dict(method="cyclegan", data={**domains, "domains": three}, model=CYCLE_TINY,
                               train={"batch": 3, "budget": 9}),
        "asymmetric-paired": dict(method="asymmetric", data={**paired, "size": 16},
                                  model={**CYCLE_TINY, "pixel_weight": 10.0}, train=steps),
        "pix2pix": dict(method="pix2pix", data=paired, model={"g_channels": 8, "d_channels": 8},
                        train={"batch": 4, "budget": 10}),  # not a multiple of the batch: pix2pix's own schedule
        "cut": dict(method="cut", data=domains, model=CUT_TINY, train=steps),
        "fastcut": dict(method="fastcut", data=domains, model=CUT_TINY, train=steps),
    }


def train(root: Path) -> None:
    import torch

    from shapetex.config import RunConfig
    from shapetex.train import Trainer

    torch.set_num_threads(1)
    for name, case in cases(root).items():
        cfg = RunConfig(method=case["method"], out=str(root / "runs" / name))
        for key, value in case["data"].items():
            setattr(cfg.data, key, value)
        for key, value in {"log_every": 2, "monitor_every": 4, "sample_every": 0, "checkpoint_every": 0,
                           "threads": 1, **case["train"]}.items():
            setattr(cfg.train, key, value)
        cfg.model = dict(case["model"])
        Trainer(cfg, overwrite=True).run()
        print(f"trained {name}", flush=True)


def compare(a: Path, b: Path) -> int:
    from safetensors.torch import load_file

    bad = 0
    for run in sorted((a / "runs").iterdir()):
        other = b / "runs" / run.name
        ckpt_a = sorted((run / "checkpoints").iterdir())[-1]
        ckpt_b = sorted((other / "checkpoints").iterdir())[-1]
        problems = []
        for file in ("weights.safetensors", "optim.safetensors"):
            ta, tb = load_file(str(ckpt_a / file)), load_file(str(ckpt_b / file))
            if set(ta) != set(tb):
                problems.append(f"{file}: keys differ ({sorted(set(ta) ^ set(tb))[:4]})")
            problems += [f"{file}: {k} differs" for k in sorted(ta) if k in tb and not ta[k].equal(tb[k])][:3]
        ma, mb = (json.loads((r / "config.json").read_text())["model"] for r in (run, other))
        if any(ma[k] != mb[k] for k in set(ma) & set(mb)):
            problems.append(f"settings differ: {sorted(k for k in set(ma) & set(mb) if ma[k] != mb[k])}")
        added = sorted(set(ma) ^ set(mb))  # a setting only one tree has: reported, not a difference
        rows = [[{k: v for k, v in json.loads(line).items() if k != "images_per_s"}
                 for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (run, other)]
        if rows[0] != rows[1]:
            problems.append("metrics.jsonl differs")
        if (run / "summary.md").read_text() != (other / "summary.md").read_text():
            problems.append("summary.md differs")
        n = len(load_file(str(ckpt_a / "weights.safetensors")))
        same = f"identical ({n} tensors, {len(rows[0])} log rows, settings, summary)"
        print(f"{run.name}: " + ("; ".join(problems) if problems else same) +
              (f" (settings in one tree only: {', '.join(added)})" if added else ""))
        bad += bool(problems)
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train").add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = p.parse_args()
    if args.cmd == "train":
        train(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())

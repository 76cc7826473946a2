"""Run folders written before the settings were resolved into typed dataclasses by `build_method` still load,
translate and resume bit-exactly. Each case trains a real tiny run, stops it halfway, puts back the `model`
section exactly as the code of commit 7d2e23c wrote it (copied below from one of its runs: no `d_arch`, d_norm
resolved to a word), resumes it from the command line and must end where an unbroken run ends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from shapetex.api import Translator
from shapetex.checkpoint import find_checkpoint, list_checkpoints
from shapetex.cli import main
from shapetex.config import RunConfig
from shapetex.train import Trainer

CYCLE = {"t_width": 4, "t_blocks": 2, "r_blocks": 1, "d_width": 4, "d_layers": 2, "sample_rows": 2}
_CYCLE_OLD = {"multi_domain": False, "t_blocks": 2, "r_blocks": 1, "t_width": 4, "r_width": 4, "share": "none",
              "tie": False, "downsampling": 2, "padding": "reflect", "d_layers": 2, "d_width": 4,
              "d_norm": "instance", "gan_loss": "lsgan", "gp_weight": 10.0, "g_every": 1, "cycle_loss": "channel",
              "cycle_weight": 10.0, "ssim_weight": 1.0, "identity_weight": 0.5, "cls_weight": 1.0, "pool_size": 50,
              "lr": 0.0002, "beta1": 0.5, "beta2": 0.999, "decay_fraction": 0.5, "init_std": 0.02,
              "pixel_weight": 100.0, "sample_rows": 2}
CASES = {  # name: (method, data, model settings given, the model section the old code saved for them)
    "cyclegan": ("cyclegan", "two", {**CYCLE, "pool_size": 3},
                 {**_CYCLE_OLD, "tie": True, "cycle_loss": "l1", "ssim_weight": 0.0, "pool_size": 3}),
    "asymmetric-multi": ("asymmetric", "three", {**CYCLE, "gan_loss": "wgan-gp", "g_every": 2},
                         {**_CYCLE_OLD, "multi_domain": True, "padding": "zeros", "d_norm": "none",
                          "gan_loss": "wgan-gp", "g_every": 2}),
    "asymmetric-paired": ("asymmetric", "paired", {**CYCLE, "pixel_weight": 10.0},
                          {**_CYCLE_OLD, "pixel_weight": 10.0}),
    "pix2pix": ("pix2pix", "paired32", {"g_channels": 8, "d_channels": 8},
                {"depth": 5, "g_channels": 8, "d_channels": 8, "d_layers": 3, "norm": "batch", "dropout": 0.5,
                 "dropout_layers": None, "test_dropout": True, "test_batch_stats": True, "loss": "cgan+l1",
                 "lambda_l1": 100.0, "gan_mode": "vanilla", "lr": 0.0002, "beta1": 0.5, "beta2": 0.999,
                 "decay_fraction": 0.5}),
}
NEW_KEYS = {"d_arch"}  # settings added since: absent from old folders, their defaults are the old behaviour


def images(folder: Path, n: int, seed: int, size: int = 16) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def config(tmp_path: Path, name: str, out: str) -> RunConfig:
    method, data, model, _ = CASES[name]
    cfg = RunConfig(method=method, out=str(tmp_path / out), model=dict(model))
    d, t = cfg.data, cfg.train
    if data.startswith("paired"):
        size = 32 if data == "paired32" else 16
        images(tmp_path / "pairs" / "A", 6, 0, size)
        images(tmp_path / "pairs" / "B", 6, 1, size)
        d.source, d.paired, d.size = "paired", str(tmp_path / "pairs"), size
    else:
        names = ["a", "b", "c"][:3 if data == "three" else 2]
        d.source, d.domains, d.size = "domains", [images(tmp_path / n, 6, i) for i, n in enumerate(names)], 16
    d.holdout = 2
    t.budget, t.batch, t.threads, t.log_every, t.monitor_every = 6 * (3 if data == "three" else 2), \
        3 if data == "three" else 2, 1, 2, 0
    t.sample_every, t.checkpoint_every = 0, 0
    return cfg


def as_old_folder(run: Path, old_model: dict) -> None:
    """Put back the model section the old code wrote, in the run's config.json and every checkpoint's."""
    for path in [run / "config.json"] + [c / "config.json" for c in list_checkpoints(run)]:
        saved = json.loads(path.read_text())
        # the copy above is what the old code resolved for these settings: only the new keys differ
        assert {k: v for k, v in saved["model"].items() if k not in NEW_KEYS} == old_model
        saved["model"] = old_model
        path.write_text(json.dumps(saved, indent=2) + "\n")
        manifest = path.parent / "complete.json"
        if manifest.exists():  # a checkpoint lists its files' sizes: keep it complete
            listed = json.loads(manifest.read_text())
            listed["files"]["config.json"] = path.stat().st_size
            manifest.write_text(json.dumps(listed, indent=1))


@pytest.mark.parametrize("name", list(CASES))
def test_an_old_run_folder_loads_translates_and_resumes(tmp_path, name, capsys):
    straight = config(tmp_path, name, "straight")
    Trainer(straight).run()
    broken = config(tmp_path, name, "old")
    Trainer(broken).run(stop_after_images=broken.train.budget // 2)
    as_old_folder(Path(broken.out), CASES[name][3])

    t = Translator.load(broken.out)  # the old layout loads, and translates
    x = torch.rand(1, 3, t.size, t.size) * 2 - 1
    assert torch.isfinite(t.translate_tensor(x, seed=0)).all()
    assert main(["train", "--resume", broken.out]) == 0  # the command-line resume of an old folder
    capsys.readouterr()
    a = load_file(str(find_checkpoint(straight.out) / "weights.safetensors"))
    b = load_file(str(find_checkpoint(broken.out) / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resume is not exact"
    resumed = json.loads((Path(broken.out) / "config.json").read_text())["model"]
    assert {k: v for k, v in resumed.items() if k not in NEW_KEYS} == CASES[name][3]

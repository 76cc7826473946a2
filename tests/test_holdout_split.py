"""A run's validation split written as folders, and `shapetex evaluate --holdout` scoring on it."""

import json

import numpy as np
import pytest
import torch
from helpers import StatsFeatures, save_torchscript
from PIL import Image

from shapetex.checkpoint import save_checkpoint
from shapetex.cli import main
from shapetex.config import DataConfig, RunConfig, TrainConfig
from shapetex.data.domains import domain_sets
from shapetex.data.holdout_files import write_holdout
from shapetex.data.images import DataError, list_images
from shapetex.data.paired import paired_sets
from shapetex.engine import Engine
from shapetex.methods import build_method


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _ab_folder(root, n, side=16):
    """AB files i.png: left half red 10*i, right half a random blue texture (lossless PNG)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        left = np.zeros((side, side, 3), np.uint8)
        left[..., 0] = 10 * i
        right = np.zeros((side, side, 3), np.uint8)
        right[..., 2] = rng.integers(0, 256, (side, side))
        _png(root / f"{i}.png", np.concatenate([left, right], axis=1))
    return root


def _as_tensor(files):
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])


def test_paired_split_is_the_run_held_out_pairs_with_direction(tmp_path):
    root = _ab_folder(tmp_path / "ab", n=6)
    cfg = RunConfig(method="pix2pix", data=DataConfig(source="paired", paired=str(root), size=16, holdout=2,
                                                      direction="BtoA"))
    split = write_holdout(cfg, tmp_path / "split")
    assert split.paired and split.count == 2
    inputs, targets = list_images(split.source), list_images(split.target)
    assert [f.stem for f in inputs] == ["4", "5"] == [f.stem for f in targets]
    _, held = paired_sets(cfg.data, seed=0)  # what training held out, at the training size
    assert torch.equal(_as_tensor(inputs), held["input"])  # BtoA: the blue (right) half is the input
    assert torch.equal(_as_tensor(targets), held["target"])
    assert _as_tensor(targets)[:, 0].float().mean((1, 2)).tolist() == [40.0, 50.0]


@pytest.mark.parametrize("to, source_dom", [("B", 0), ("A", 1), (None, 0)])
def test_two_domain_split_copies_the_last_files_of_each_folder(tmp_path, to, source_dom):
    rng = np.random.default_rng(1)
    folders = []
    for d, n in (("a", 5), ("b", 7)):
        for i in range(n):
            _png(tmp_path / d / f"{d}{i:02d}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
        folders.append(str(tmp_path / d))
    cfg = RunConfig(method="cyclegan", data=DataConfig(source="domains", domains=folders, size=12, holdout=3))
    split = write_holdout(cfg, tmp_path / "split", to)
    assert not split.paired
    _, held = domain_sets(cfg.data)
    assert torch.equal(_as_tensor(list_images(split.source)), held[source_dom])
    assert torch.equal(_as_tensor(list_images(split.target)), held[1 - source_dom])
    with pytest.raises(DataError, match="A or B"):
        write_holdout(cfg, tmp_path / "x", "C")


def test_a_run_without_holdout_has_no_split(tmp_path):
    root = _ab_folder(tmp_path / "ab", n=3)
    cfg = RunConfig(method="pix2pix", data=DataConfig(source="paired", paired=str(root), size=16, holdout=0))
    with pytest.raises(DataError, match="held no images"):
        write_holdout(cfg, tmp_path / "split")


def test_evaluate_holdout_scores_pix2pix_on_its_validation_pairs(tmp_path):
    net_path = save_torchscript(StatsFeatures(), tmp_path / "features.pt")
    root = _ab_folder(tmp_path / "ab", n=7)
    cfg = RunConfig(method="pix2pix", out=str(tmp_path / "run"),
                    data=DataConfig(source="paired", paired=str(root), size=16, holdout=3), train=TrainConfig(batch=1),
                    model={"g_channels": 8, "d_channels": 8})
    method = build_method(cfg, Engine())
    (tmp_path / "run").mkdir()
    cfg.save(tmp_path / "run" / "config.json")
    save_checkpoint(tmp_path / "run", method.networks(), {}, {"images_seen": 0})
    out = tmp_path / "eval"
    assert main(["evaluate", "--quiet", "--checkpoint", str(tmp_path / "run"), "--holdout", "--samples", "1",
                 "--feature-net", str(net_path), "--no-cache", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["inputs"], m["paired_count"], m["real_count"]) == (3, 3, 3)
    assert 0 < m["l1"] < 2 and np.isfinite(m["psnr"]) and -1 <= m["ssim"] <= 1
    assert main(["evaluate", "--holdout", "--fake", str(out), "--real", str(out)]) == 2  # needs a run

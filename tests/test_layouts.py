"""The reference's dataset folders: --dataroot with trainA/ trainB/ testA/ testB/ holds out testA/ and testB/
(monitors, grids, `evaluate --holdout`); --paired DIR with train/ val/ test/ trains on train/ and holds out val/
(else test/), saying so in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import StatsFeatures, save_torchscript
from PIL import Image

from shapetex import cli
from shapetex.checkpoint import save_checkpoint
from shapetex.data import build_data
from shapetex.data.holdout_files import write_holdout
from shapetex.data.images import list_images
from shapetex.engine import Engine
from shapetex.methods import build_method

SIZE = 16


def level_folder(folder, levels, channel=0):
    """Solid images whose `channel` holds each level: the level names the image after any resize."""
    folder.mkdir(parents=True)
    for i, level in enumerate(levels):
        img = np.zeros((SIZE + 4, SIZE + 4, 3), np.uint8)
        img[..., channel] = level
        Image.fromarray(img).save(folder / f"{i:02d}.png")


def ab_folder(folder, levels):
    """AB pairs: left half red `level`, right half green `level`."""
    folder.mkdir(parents=True)
    for i, level in enumerate(levels):
        img = np.zeros((SIZE, 2 * SIZE, 3), np.uint8)
        img[:, :SIZE, 0] = level
        img[:, SIZE:, 1] = level
        Image.fromarray(img).save(folder / f"{i:02d}.png")


def levels(batch, channel=0):
    return sorted(batch[:, channel].float().mean((1, 2)).round().int().tolist())


def config(*argv):
    return cli.config_from_args(cli.build_parser().parse_args(["train", *argv]))


def cyclegan_root(tmp_path):
    root = tmp_path / "h2z"
    level_folder(root / "trainA", [10, 20, 30, 40])
    level_folder(root / "trainB", [50, 60, 70])
    level_folder(root / "testA", [110, 120])
    level_folder(root / "testB", [150, 160, 170])
    return root


def test_dataroot_holds_out_test_a_and_test_b(tmp_path, capsys):
    root = cyclegan_root(tmp_path)
    cfg = config("--method", "cyclegan", "--dataroot", str(root), "--size", str(SIZE))
    assert capsys.readouterr().out.strip() == f"{root}: training on trainA/ and trainB/, holding out testA/ and testB/"
    assert cfg.data.holdout_folders == [str(root / "testA"), str(root / "testB")]
    source, held = build_data(cfg.data, "domains", global_batch=2, seed=0, holdout_count=16)
    assert levels(held["A"]) == [110, 120] and levels(held["B"]) == [150, 160, 170]
    seen_a, seen_b = set(), set()
    for step in range(6):
        b = source.batch(step)
        seen_a.update(levels(b["A"]))
        seen_b.update(levels(b["B"]))
    assert seen_a == {10, 20, 30, 40} and seen_b == {50, 60, 70}  # all of train, nothing of test
    # the same folders are what `evaluate --holdout` scores on, translated in either direction
    split = write_holdout(cfg, tmp_path / "split", "B")
    assert (split.source, split.target, split.count) == (root / "testA", root / "testB", 2)
    assert write_holdout(cfg, tmp_path / "split", "A").source == root / "testB"
    # without testA/ and testB/ nothing is held out, and the line says how to
    plain = tmp_path / "plain"
    level_folder(plain / "trainA", [1, 2])
    level_folder(plain / "trainB", [3, 4])
    assert config("--dataroot", str(plain)).data.holdout_folders == []
    assert "data.holdout=N" in capsys.readouterr().out


def test_dataroot_holdout_and_a_holdout_count_conflict_in_one_line(tmp_path, capsys):
    root = cyclegan_root(tmp_path)
    argv = ["train", "--method", "cyclegan", "--dataroot", str(root), "--set", "data.holdout=2",
            "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.holdout=0" in err and "data.holdout_folders=" in err
    # --set data.holdout_folders= (empty) holds out the last images of trainA/ and trainB/ instead
    cfg = config("--dataroot", str(root), "--set", "data.holdout=1", "--set", "data.holdout_folders=")
    _, held = build_data(cfg.data, "domains", global_batch=2, seed=0)
    assert levels(held["A"]) == [40] and levels(held["B"]) == [70]


def test_evaluate_holdout_scores_a_dataroot_run_on_test_a_and_test_b(tmp_path):
    net_path = save_torchscript(StatsFeatures(), tmp_path / "features.pt")
    root = cyclegan_root(tmp_path)
    cfg = config("--method", "cyclegan", "--dataroot", str(root), "--size", str(SIZE), "--out", str(tmp_path / "run"),
                 "--set", "model.t_width=4", "--set", "model.t_blocks=1", "--set", "model.d_width=4")
    method = build_method(cfg, Engine())
    (tmp_path / "run").mkdir()
    cfg.save(tmp_path / "run" / "config.json")
    save_checkpoint(tmp_path / "run", method.networks(), {}, {"images_seen": 0})
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--quiet", "--checkpoint", str(tmp_path / "run"), "--holdout", "--to", "B",
                     "--samples", "1", "--feature-net", str(net_path), "--no-cache", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["inputs"], m["real_count"]) == (2, 3)  # testA translated, compared with testB


@pytest.mark.parametrize("held", ["val", "test", None])
def test_paired_train_val_test_trains_on_train_and_holds_out_val_else_test(tmp_path, capsys, held):
    root = tmp_path / "facades"
    ab_folder(root / "train", [10, 20, 30, 40, 50])
    if held == "val":
        ab_folder(root / "val", [110, 120])
    if held is not None:
        ab_folder(root / "test", [210, 220, 230])
    cfg = config("--method", "pix2pix", "--paired", str(root), "--size", str(SIZE))
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and cfg.data.paired == str(root / "train")
    source, holdout = build_data(cfg.data, "paired", global_batch=5, seed=0, holdout_count=16)
    assert len(source.pairs) == 5 and levels(source.batch(0)["input"]) == [10, 20, 30, 40, 50]
    if held is None:
        assert cfg.data.holdout_folders == [] and "no val/ or test/" in line
        return
    want = {"val": [110, 120], "test": [210, 220, 230]}[held]
    assert cfg.data.holdout_folders == [str(root / held)]
    assert line == f"{root}: training on train/, holding out {held}/" + (", test/ left alone" if held == "val" else "")
    assert levels(holdout["input"]) == want and levels(holdout["target"], channel=1) == want
    split = write_holdout(cfg, tmp_path / "split")
    assert split.paired and split.count == len(want) and len(list_images(split.target)) == len(want)
    # the reference's --dataroot on a pix2pix folder means the same
    assert config("--dataroot", str(root)).data.paired == str(root / "train")


def test_a_pair_folder_without_train_is_used_as_it_is(tmp_path, capsys):
    ab_folder(tmp_path / "pairs", [10, 20])
    cfg = config("--paired", str(tmp_path / "pairs"))
    assert cfg.data.paired == str(tmp_path / "pairs") and cfg.data.holdout_folders == []
    assert capsys.readouterr().out == ""

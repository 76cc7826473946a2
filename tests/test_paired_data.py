"""Paired data: AB splitting, A/B name matching (missing partners reported), direction, jitter crops shared
by both halves, holdout split, and batches as a pure function of the step."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from shapetex.config import DataConfig
from shapetex.data import DataError, build_data
from shapetex.data.paired import PairedSource, PairSet, pair_items, paired_sets, split_ab


def solid(h, w, colour):
    return np.broadcast_to(np.asarray(colour, np.uint8), (h, w, 3)).copy()


def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_ab_folder(root, n=5, side=16):
    """AB files i.png: left half red level 10*i, right half blue level 10*i (PNG: lossless)."""
    for i in range(n):
        img = np.concatenate([solid(side, side, (10 * i, 0, 0)), solid(side, side, (0, 0, 10 * i))], axis=1)
        write(root / f"{i}.png", img)
    return root


def test_split_ab_halves():
    img = np.zeros((4, 7, 3), np.uint8)
    img[:, :3] = 50
    img[:, 3:6] = 200
    img[:, 6] = 99  # the odd last column belongs to neither half
    a, b = split_ab(img)
    assert a.shape == b.shape == (4, 3, 3)
    assert (a == 50).all() and (b == 200).all()


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_ab_layout_and_direction(tmp_path, direction):
    root = make_ab_folder(tmp_path / "ab")
    cfg = DataConfig(source="paired", paired=str(root), direction=direction, size=16, load_size=18, holdout=0)
    pairs, _ = paired_sets(cfg, seed=0)
    assert len(pairs) == 5
    x, y = pairs.get([3])
    assert x.shape == y.shape == (1, 3, 18, 18)
    red, blue = (0, 30), (2, 30)  # (channel, level) of pair 3's halves
    want_x, want_y = (red, blue) if direction == "AtoB" else (blue, red)
    assert int(x[0, want_x[0]].float().mean().round()) == want_x[1]
    assert int(y[0, want_y[0]].float().mean().round()) == want_y[1]
    assert int(x[0, want_y[0]].max()) == 0  # the other half's colour never leaks in


def test_name_matching_reports_missing_partners(tmp_path, caplog):
    root = tmp_path / "pairs"
    for name, level in [("cat", 10), ("dog", 20), ("sub/eel", 30), ("owl", 40)]:
        write(root / "A" / f"{name}.png", solid(12, 12, (level, 0, 0)))
    for name, level in [("cat", 10), ("dog", 20), ("sub/eel", 30), ("yak", 50), ("zebu", 60)]:
        write(root / "B" / f"{name}.jpg", solid(12, 12, (0, level, 0)))  # other suffix: matched by stem
    with caplog.at_level(logging.WARNING):
        items, missing = pair_items(root)
    assert [k for k, _, _ in items] == ["cat", "dog", "sub/eel"]
    text = caplog.text
    for name in ("owl", "yak", "zebu"):
        assert name in text and name in missing
    assert "3 files without a partner" in text
    assert "1 only in A/" in missing and "2 only in B/" in missing
    # each input is paired with its own target (same level), and the report survives into the source
    cfg = DataConfig(source="paired", paired=str(root), size=12, holdout=0)
    source, _ = build_data(cfg, "paired", global_batch=3, seed=0)
    assert "without a partner" in source.report()
    b = source.batch(0)
    levels_x = b["input"][:, 0].float().mean(dim=(1, 2))
    levels_y = b["target"][:, 1].float().mean(dim=(1, 2))
    assert torch.allclose(levels_x, levels_y, atol=2)  # JPEG targets: within a level or two
    assert sorted(levels_x.round().int().tolist()) == [10, 20, 30]


def test_no_pairs_at_all_is_an_error(tmp_path):
    write(tmp_path / "p" / "A" / "one.png", solid(8, 8, (1, 2, 3)))
    write(tmp_path / "p" / "B" / "two.png", solid(8, 8, (1, 2, 3)))
    with pytest.raises(DataError, match="partner"):
        pair_items(tmp_path / "p")
    with pytest.raises(DataError, match="paired data"):
        paired_sets(DataConfig(source="folders", size=8), seed=0)


def test_jitter_crop_is_shared_by_both_halves_and_a_function_of_the_step(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):  # A and B identical noise: any misaligned crop would make them differ
        noise = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        write(tmp_path / "p" / "A" / f"{i}.png", noise)
        write(tmp_path / "p" / "B" / f"{i}.png", noise)
    cfg = DataConfig(source="paired", paired=str(tmp_path / "p"), size=16, load_size=18, holdout=0)
    source, _ = build_data(cfg, "paired", global_batch=4, seed=3)
    assert source.pairs.geometry.load == (18, 18)
    crops = set()
    for step in range(6):
        b = source.batch(step)
        assert b["input"].shape == (4, 3, 16, 16)
        assert torch.equal(b["input"], b["target"])
        crops.update(map(tuple, (source.crops.fractions(step) * 3).int().tolist()))
    assert len(crops) > 3  # crops do move
    again, _ = build_data(cfg, "paired", global_batch=4, seed=3)
    assert torch.equal(again.batch(5)["input"], source.batch(5)["input"])  # pure function of (seed, step)
    # two processes together see exactly the one-process batch, crops included
    r0 = PairedSource(source.pairs, 4, seed=3, rank=0, world=2).batch(2)["input"]
    r1 = PairedSource(source.pairs, 4, seed=3, rank=1, world=2).batch(2)["input"]
    whole = source.batch(2)["input"]
    assert torch.equal(whole[0::2], r0) and torch.equal(whole[1::2], r1)


def test_holdout_is_the_last_pairs_and_left_out_of_training(tmp_path):
    root = make_ab_folder(tmp_path / "ab", n=6)  # files 0..5 sort as 0,1,2,3,4,5
    cfg = DataConfig(source="paired", paired=str(root), size=16, holdout=2)
    source, held = build_data(cfg, "paired", global_batch=2, seed=0)
    assert held["input"].shape == (2, 3, 16, 16) and held["target"].dtype == torch.uint8
    assert held["input"][:, 0].float().mean(dim=(1, 2)).round().int().tolist() == [40, 50]
    assert len(source.pairs) == 4
    seen = set()
    for step in range(8):
        seen.update(source.batch(step)["input"][:, 0].float().mean(dim=(1, 2)).round().int().tolist())
    assert seen == {0, 10, 20, 30}
    with pytest.raises(DataError, match="hold out"):
        paired_sets(DataConfig(source="paired", paired=str(root), size=16, holdout=6), seed=0)


def test_per_batch_decoding_matches_preloaded(tmp_path):
    root = make_ab_folder(tmp_path / "ab", n=4)
    items, _ = pair_items(root)
    pre = PairSet(items, 18, "BtoA", preload=True)
    lazy = PairSet(items, 18, "BtoA", preload=False)
    for got, want in zip(lazy.get([2, 0]), pre.get([2, 0])):
        assert torch.equal(got, want)


def test_builtin_pairs_are_plain_to_striped():
    cfg = DataConfig(source="builtin", size=16, builtin_count=8, holdout=0)
    source, held = build_data(cfg, "paired", global_batch=4, seed=0)
    b = source.batch(0)
    assert b["input"].shape == b["target"].shape == (4, 3, 16, 16)
    assert not torch.equal(b["input"], b["target"])
    assert held["input"].shape[0] == 8 and held["target"].shape == held["input"].shape

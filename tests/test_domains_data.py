"""Domain data: two-domain and multi-domain batches from one folder per domain."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from shapetex.cli import add_train_arguments, config_from_args
from shapetex.config import DataConfig
from shapetex.data import DataError, build_data

SIZE = 8


def colour(domain: int, index: int) -> tuple[int, int, int]:
    """A colour that names its image: red encodes the domain, green the index."""
    return 30 + 60 * domain, 10 + 12 * index, 128


def decode(img: torch.Tensor) -> tuple[int, int]:
    r, g = int(img[0, 0, 0]), int(img[1, 0, 0])
    return (r - 30) // 60, (g - 10) // 12


def make_domains(root, counts: list[int]) -> list[str]:
    folders = []
    for d, n in enumerate(counts):
        folder = root / f"dom{d}"
        folder.mkdir()
        for i in range(n):
            Image.fromarray(np.full((SIZE, SIZE, 3), colour(d, i), dtype=np.uint8)).save(folder / f"{i:03d}.png")
        folders.append(str(folder))
    return folders


def test_three_domains_give_labelled_batches(tmp_path):
    counts = [5, 7, 9]
    cfg = DataConfig(source="domains", domains=make_domains(tmp_path, counts), size=SIZE, holdout=2)
    source, holdout = build_data(cfg, "domains", global_batch=6, seed=3)
    seen = {d: set() for d in range(3)}
    for step in range(40):
        b = source.batch(step)
        assert set(b) == {"image", "domain", "target"}
        assert b["image"].dtype == torch.uint8 and b["image"].shape == (6, 3, SIZE, SIZE)
        assert b["domain"].dtype == torch.int64 and b["target"].dtype == torch.int64
        assert bool((b["target"] != b["domain"]).all()) and int(b["target"].max()) < 3
        for img, d in zip(b["image"], b["domain"]):
            dom, idx = decode(img)
            assert dom == int(d)  # the label belongs to the image
            seen[dom].add(idx)
    # every training image is used, held-out ones (the last 2 of each folder) never are
    for d, n in enumerate(counts):
        assert seen[d] == set(range(n - 2))
    assert sorted(holdout) == ["0", "1", "2"]
    for d, n in enumerate(counts):
        assert [decode(img) for img in holdout[str(d)]] == [(d, n - 2), (d, n - 1)]
    # a pure function of the step: a rebuilt source gives the same batch
    again, _ = build_data(cfg, "domains", global_batch=6, seed=3)
    assert all(torch.equal(again.batch(17)[k], source.batch(17)[k]) for k in ("image", "domain", "target"))
    # another seed, other batches
    other, _ = build_data(cfg, "domains", global_batch=6, seed=4)
    assert not torch.equal(other.batch(17)["domain"], source.batch(17)["domain"])


def test_domain_labels_shard_across_processes(tmp_path):
    cfg = DataConfig(source="domains", domains=make_domains(tmp_path, [4, 4, 4]), size=SIZE)
    whole, _ = build_data(cfg, "domains", global_batch=4, seed=0)
    parts = [build_data(cfg, "domains", global_batch=4, seed=0, rank=r, world=2)[0] for r in (0, 1)]
    for step in (0, 5):
        labels = torch.empty(4, dtype=torch.long)
        for r, p in enumerate(parts):
            b = p.batch(step)
            assert b["image"].shape[0] == 2
            labels[r::2] = b["domain"]
            assert [decode(img)[0] for img in b["image"]] == b["domain"].tolist()
        assert torch.equal(labels, whole.batch(step)["domain"])


def test_domain_streams_are_independent(tmp_path):
    """Each domain's image order comes from its own seeded stream: adding a third domain does not change
    the order in which domain 0's images come (only which positions take them)."""
    folders = make_domains(tmp_path, [6, 6, 6])
    two, _ = build_data(DataConfig(source="domains", domains=folders[:2], size=SIZE), "domain_labels", 4, seed=1)
    three, _ = build_data(DataConfig(source="domains", domains=folders, size=SIZE), "domain_labels", 4, seed=1)
    assert torch.equal(two.streams[0].permutation(0), three.streams[0].permutation(0))
    assert not torch.equal(three.streams[0].permutation(0), three.streams[1].permutation(0))


def test_two_domains_give_a_and_b(tmp_path):
    folders = make_domains(tmp_path, [5, 3])
    cfg = DataConfig(source="domains", domains=folders, size=SIZE)
    source, holdout = build_data(cfg, "domains", global_batch=4, seed=0)
    b = source.batch(0)
    assert set(b) == {"A", "B"} and b["A"].shape == (4, 3, SIZE, SIZE) and b["A"].dtype == torch.uint8
    assert {decode(x)[0] for x in b["A"]} == {0} and {decode(x)[0] for x in b["B"]} == {1}
    # holdout 0: the first training images stand in for sample grids
    assert set(holdout) == {"A", "B"} and len(holdout["A"]) == 5 and len(holdout["B"]) == 3
    # the two streams are seeded independently: same-sized domains still come in different orders
    (tmp_path / "same").mkdir()
    same = make_domains(tmp_path / "same", [6, 6])
    src2, _ = build_data(DataConfig(source="domains", domains=same, size=SIZE), "domains", 6, seed=0)
    b2 = src2.batch(0)
    assert [decode(x)[1] for x in b2["A"]] != [decode(x)[1] for x in b2["B"]]


def test_dataroot_flag_and_errors(tmp_path):
    root = tmp_path / "h2z"
    root.mkdir()
    for name in ("trainA", "trainB"):
        (root / name).mkdir()
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / name / "0.png")
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    cfg = config_from_args(p.parse_args(["--method", "cyclegan", "--dataroot", str(root), "--size", str(SIZE)]))
    assert cfg.data.source == "domains" and [d[-6:] for d in cfg.data.domains] == ["trainA", "trainB"]
    source, _ = build_data(cfg.data, "domains", 2, seed=0)
    assert source.batch(0)["B"].shape == (2, 3, SIZE, SIZE)
    with pytest.raises(DataError, match="at least two"):
        build_data(DataConfig(source="domains", domains=[str(root / "trainA")], size=SIZE), "domains", 2, 0)
    with pytest.raises(DataError, match="hold out"):
        build_data(DataConfig(source="domains", domains=cfg.data.domains, size=SIZE, holdout=1), "domains", 2, 0)

"""The reference's data conventions: load size + random crop (its 286 -> 256 jitter), crop-only training on
patches of full-size images, non-square crops; batches stay a pure function of (seed, step), resume is exact.
Images are random noise written as PNG, so a crop can only match the one window it was cut from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from shapetex.api import Translator
from shapetex.checkpoint import find_checkpoint, save_checkpoint
from shapetex.config import ConfigError, DataConfig, RunConfig
from shapetex.data import build_data
from shapetex.data.domains import MultiDomainSource
from shapetex.data.images import load_rgb, resize_center_crop, scale_to_width, to_chw_tensor
from shapetex.data.stream import UnpairedSource
from shapetex.engine import Engine
from shapetex.methods import build_method
from shapetex.train import Trainer

TINY_CYCLE = dict(t_width=4, t_blocks=1, d_width=4, d_layers=2, sample_rows=2, pool_size=2)


def noise_folder(folder, sizes, seed=0):
    """One random-noise PNG per (height, width) in `sizes`; returns the folder as text."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return str(folder)


def window_of(crop: torch.Tensor, image: torch.Tensor) -> tuple[int, int] | None:
    """(top, left) where `crop` lies in `image` (3 x H x W each), or None."""
    h, w = crop.shape[-2:]
    for top in range(image.shape[-2] - h + 1):
        for left in range(image.shape[-1] - w + 1):
            if torch.equal(image[:, top: top + h, left: left + w], crop):
                return top, left
    return None


def files_of(folder):
    return sorted(Path(folder).iterdir())


def test_resize_and_crop_gives_crops_of_the_resized_image_that_move_with_the_step(tmp_path):
    a = noise_folder(tmp_path / "a", [(24, 30)] * 6, seed=1)
    b = noise_folder(tmp_path / "b", [(26, 26)] * 5, seed=2)
    cfg = DataConfig(source="domains", domains=[a, b], size=16, load_size=20)
    source, held = build_data(cfg, "domains", global_batch=4, seed=3)
    resized = {name: [to_chw_tensor(resize_center_crop(load_rgb(f), (20, 20))) for f in files_of(folder)]
               for name, folder in (("A", a), ("B", b))}
    offsets = set()
    for step in range(5):
        batch = source.batch(step)
        for name, idx in (("A", source.a_idx), ("B", source.b_idx)):
            assert batch[name].shape == (4, 3, 16, 16)
            for img, i in zip(batch[name], idx.indices(step), strict=True):
                where = window_of(img, resized[name][i])
                assert where is not None, "not a crop of the image resized to the load size"
                offsets.add(where)
    assert len(offsets) > 4  # crops move between images and steps
    again, _ = build_data(cfg, "domains", global_batch=4, seed=3)
    other, _ = build_data(cfg, "domains", global_batch=4, seed=4)
    for step in (0, 3):
        assert torch.equal(again.batch(step)["A"], source.batch(step)["A"])  # a pure function of (seed, step)
    assert not torch.equal(source.batch(1)["A"], source.batch(2)["A"])
    assert not torch.equal(other.batch(0)["B"], source.batch(0)["B"])
    # held-out images are not jittered: resized straight to the crop size (the first images, holdout 0)
    want = torch.stack([to_chw_tensor(resize_center_crop(load_rgb(f), 16)) for f in files_of(a)])
    assert torch.equal(held["A"], want)


def test_crops_are_the_same_across_processes_and_decoding_paths(tmp_path):
    shape = noise_folder(tmp_path / "s", [(22, 22)] * 7)
    texture = noise_folder(tmp_path / "t", [(22, 22)] * 7, seed=5)
    cfg = DataConfig(source="folders", shape=shape, texture=texture, size=16, load_size=19)
    whole, _ = build_data(cfg, "unpaired", global_batch=4, seed=0)
    lazy, _ = build_data(DataConfig(**{**cfg.__dict__, "preload_limit_mb": 0}), "unpaired", 4, seed=0)
    ranks = [UnpairedSource(whole.shape, whole.texture, 4, 0, rank, 2, whole.geometry) for rank in (0, 1)]
    for step in range(3):
        full = whole.batch(step)
        assert torch.equal(lazy.batch(step)["shape"], full["shape"])  # decoded per batch: the same crops
        for rank, src in enumerate(ranks):
            assert torch.equal(src.batch(step)["texture"], full["texture"][rank::2])


def test_paired_crops_keep_input_and_target_aligned(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    for i in range(5):  # B is the negative of A: an aligned crop of the pair stays the negative
        a = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / "A" / f"{i}.png")
        Image.fromarray(255 - a).save(tmp_path / "B" / f"{i}.png")

    def negatives(x, y):  # resizing may round a level differently on the two sides: 1 of slack
        return int((x.int() + y.int() - 255).abs().max()) <= 1
    for mode, load in (("resize_and_crop", 21), ("crop", None)):
        cfg = DataConfig(source="paired", paired=str(tmp_path), size=16, preprocess=mode, load_size=load)
        source, held = build_data(cfg, "paired", global_batch=3, seed=1)
        tops = set()
        for step in range(4):
            b = source.batch(step)
            assert b["input"].shape == (3, 3, 16, 16)
            assert negatives(b["input"], b["target"]), mode
            tops.update(map(tuple, source.crops.fractions(step).mul(4).int().tolist()))
        assert len(tops) > 1
        assert negatives(held["input"], held["target"])


def test_crop_mode_trains_on_patches_of_the_images_at_their_own_size(tmp_path):
    sizes = [(30, 22), (40, 40), (12, 20), (16, 16), (21, 18)]  # (12, 20) is smaller than the crop
    a = noise_folder(tmp_path / "a", sizes)
    b = noise_folder(tmp_path / "b", [(20, 20)] * 3, seed=9)
    cfg = DataConfig(source="domains", domains=[a, b], size=16, preprocess="crop", holdout=2)
    source, held = build_data(cfg, "domains", global_batch=4, seed=0)
    originals = [to_chw_tensor(load_rgb(f)) for f in files_of(a)]
    originals[2] = to_chw_tensor(resize_center_crop(load_rgb(files_of(a)[2]), (16, 27)))  # enlarged to cover
    seen, offsets = set(), set()
    for step in range(6):
        for img, i in zip(source.batch(step)["A"], source.a_idx.indices(step), strict=True):
            where = window_of(img, originals[i])
            assert where is not None, f"image {i}: not a window of the image at its own size"
            seen.add(i)
            offsets.add((i, where))
    assert seen == {0, 1, 2}  # the last two are held out
    assert len(offsets) > 5
    # held-out images: the central crop at their own scale, not resized
    assert torch.equal(held["A"][0], originals[3]) and torch.equal(held["A"][1], originals[4][:, 2:18, 1:17])
    with pytest.raises(ConfigError, match="does not resize"):
        RunConfig(data=DataConfig(preprocess="crop", load_size=20)).validate()


def test_scale_width_and_crop_keeps_the_aspect_ratio(tmp_path):
    a = noise_folder(tmp_path / "a", [(45, 30), (15, 30), (30, 60)])
    cfg = DataConfig(source="domains", domains=[a, a], size=16, preprocess="scale_width_and_crop", load_size=20)
    source, held = build_data(cfg, "domains", global_batch=3, seed=0)
    # width 20, height kept in proportion but never below the crop's (the reference's __scale_width)
    scaled = [to_chw_tensor(scale_to_width(load_rgb(f), 20, 16)) for f in files_of(a)]
    assert [tuple(x.shape[-2:]) for x in scaled] == [(30, 20), (16, 20), (16, 20)]
    offsets = set()
    for step in range(4):
        for img, i in zip(source.batch(step)["A"], source.a_idx.indices(step), strict=True):
            where = window_of(img, scaled[i])
            assert where is not None
            offsets.add((i, where))
    assert len(offsets) > 3
    # held out: scaled to the crop width, the centre kept
    first = to_chw_tensor(scale_to_width(load_rgb(files_of(a)[0]), 16, 16))  # 24 x 16
    assert torch.equal(held["A"][0], first[:, 4:20])


def test_a_crop_mode_run_translates_whole_images_at_their_own_size(tmp_path):
    cfg = RunConfig(method="cyclegan", out=str(tmp_path / "run"), model=TINY_CYCLE,
                    data=DataConfig(source="domains", domains=["A", "B"], size=16, preprocess="crop"))
    method = build_method(cfg, Engine())
    (tmp_path / "run").mkdir()
    cfg.save(tmp_path / "run" / "config.json")
    save_checkpoint(tmp_path / "run", method.networks(), {}, {"images_seen": 0})
    t = Translator.load(tmp_path / "run", device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    default, native, resized = t(img)[0], t(img, native=True)[0], t(img, native=False)[0]
    assert default.shape == img.shape
    assert np.array_equal(default, native) and not np.array_equal(default, resized)


def test_non_square_crops_train_and_keep_the_aspect(tmp_path):
    a = noise_folder(tmp_path / "a", [(30, 40)] * 4)
    b = noise_folder(tmp_path / "b", [(20, 36)] * 4, seed=4)
    data = DataConfig(source="domains", domains=[a, b], size=16, width=24, load_size=20, holdout=1)
    source, held = build_data(data, "domains", global_batch=2, seed=0)
    resized = [to_chw_tensor(resize_center_crop(load_rgb(f), (20, 30))) for f in files_of(a)]  # 24 * 20 / 16
    for step in range(3):
        batch = source.batch(step)
        assert batch["A"].shape == batch["B"].shape == (2, 3, 16, 24)
        for img, i in zip(batch["A"], source.a_idx.indices(step), strict=True):
            assert window_of(img, resized[i]) is not None
    assert held["A"].shape == (1, 3, 16, 24)
    cfg = RunConfig(method="cyclegan", out=str(tmp_path / "run"), data=data, model=TINY_CYCLE)
    t = cfg.train
    t.budget, t.batch, t.threads, t.log_every, t.monitor_every, t.sample_every, t.checkpoint_every = 4, 2, 1, 2, 0, 0, 0
    assert Trainer(cfg).run()["images_seen"] == 4
    with pytest.raises(ValueError, match="square"):
        build_method(RunConfig(method="adversarial", data=data))


def test_multi_domain_crops_are_crops_of_each_domain_and_keyed_by_position(tmp_path):
    domains = [noise_folder(tmp_path / f"d{d}", [(20, 20)] * 4, seed=d) for d in range(3)]
    cfg = DataConfig(source="domains", domains=domains, size=16, load_size=18)
    source, _ = build_data(cfg, "domain_labels", global_batch=4, seed=2)
    resized = [[to_chw_tensor(resize_center_crop(load_rgb(f), 18)) for f in files_of(d)] for d in domains]
    ranks = [MultiDomainSource(source.sets, 4, 2, rank, 2, source.geometry) for rank in (0, 1)]
    offsets = set()
    for step in range(4):
        b = source.batch(step)
        assert b["image"].shape == (4, 3, 16, 16)
        for img, d in zip(b["image"], b["domain"].tolist(), strict=True):
            where = [window_of(img, full) for full in resized[d]]
            assert any(w is not None for w in where), "not a crop of an image of its domain"
            offsets.update(w for w in where if w is not None)
        for rank, src in enumerate(ranks):  # each process draws the crops of its positions of the global batch
            assert torch.equal(src.crops.fractions(step), source.crops.fractions(step)[rank::2])
    assert len(offsets) > 3


def test_cached_images_are_kept_per_load_size(tmp_path):
    a = noise_folder(tmp_path / "a", [(24, 24)] * 3)
    spill = str(tmp_path / "spill")
    shapes = []
    for load in (20, None, 20):
        cfg = DataConfig(source="domains", domains=[a, a], size=16, load_size=load, preload_limit_mb=0,
                         cache_dir=spill)
        source, _ = build_data(cfg, "domains", global_batch=2, seed=0)
        shapes.append(tuple(source.a.get([0]).shape[-2:]))
    assert shapes == [(20, 20), (16, 16), (20, 20)]  # one disk cache, one entry per way of storing the images


def test_methods_default_to_the_reference_jitter(tmp_path):
    a = noise_folder(tmp_path / "a", [(40, 40)] * 2)
    for method, load in (("cyclegan", 36), ("pix2pix", 36), ("cut", 36), ("adversarial", 32)):
        cfg = RunConfig(method=method, out=str(tmp_path / method), model=TINY_CYCLE if method == "cyclegan" else {})
        cfg.data = DataConfig(source="paired" if method == "pix2pix" else "domains", paired=a, domains=[a, a],
                              size=32)
        if method == "adversarial":
            cfg.data.source, cfg.data.shape, cfg.data.texture = "folders", a, a
        tr = Trainer(cfg)
        assert tr.data.load_size == load, method  # round(32 * 286 / 256) = 36; the paper's method: no jitter
        assert cfg.data.load_size is None  # config.json keeps "the method's": a later --size scales it


def test_resume_is_exact_with_the_jitter_on(tmp_path):
    a = noise_folder(tmp_path / "a", [(24, 28)] * 5)
    b = noise_folder(tmp_path / "b", [(26, 24)] * 5, seed=3)

    def config(out):
        cfg = RunConfig(method="cyclegan", out=str(tmp_path / out), model=TINY_CYCLE,
                        data=DataConfig(source="domains", domains=[a, b], size=16, load_size=20, flip=False))
        t = cfg.train
        t.budget, t.batch, t.threads, t.log_every, t.monitor_every = 8, 2, 1, 2, 0
        t.sample_every, t.checkpoint_every = 0, 4
        return cfg

    full = Trainer(config("full"))
    assert full.source.a_crops.active
    full.run()
    Trainer(config("part")).run(stop_after_images=4)
    resumed = Trainer(config("part"), resume=True)
    assert resumed.images_seen == 4
    resumed.run()
    want, got = (load_file(str(find_checkpoint(tmp_path / r) / "weights.safetensors")) for r in ("full", "part"))
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)

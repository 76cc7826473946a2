import numpy as np
import pytest
import torch
from PIL import Image

from shapetex.config import DataConfig
from shapetex.data import DataError, build_data, unpaired_sets
from shapetex.data.builtin import builtin_images
from shapetex.data.folders import folder_image_set
from shapetex.data.images import list_images, load_rgb
from shapetex.data.sets import FileImageSet
from shapetex.data.stream import IndexStream
from shapetex.metrics.shapes import foreground_mask


def _write_images(folder, n, size=(40, 30), mode="RGB", start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(n):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(folder / f"img{start + i:03d}.png")


def test_builtin_sets_are_seeded_and_unpaired():
    a = builtin_images("shape", 8, 32, seed=1)
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, builtin_images("shape", 8, 32, seed=1))
    assert not torch.equal(a, builtin_images("shape", 8, 32, seed=2))
    # shape and texture sets are independent draws, not the same silhouettes
    shape_masks = foreground_mask(a.float() / 127.5 - 1)
    texture_masks = foreground_mask(builtin_images("texture", 8, 32, seed=1).float() / 127.5 - 1)
    assert shape_masks.any() and texture_masks.any()
    overlap = (shape_masks & texture_masks).sum() / (shape_masks | texture_masks).sum()
    assert overlap < 0.6


def test_the_stripes_task_renders_as_the_built_in_data_did_before_the_colours_task():
    """Old runs (config.json without data.builtin_task) and the documented striped runs rest on these images."""
    import hashlib

    digest = lambda t: hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]  # noqa: E731
    assert digest(builtin_images("texture", 8, 32, seed=1, task="stripes")) == "73c8a7a6041013bd"
    assert digest(builtin_images("shape", 8, 32, seed=1, task="stripes")) == "dff9f77657103008"


def test_the_colours_task_keeps_the_silhouettes_and_changes_only_the_fill():
    from shapetex.data.builtin import translated_version
    from shapetex.metrics.shapes import silhouette_iou

    f = lambda t: t.float() / 127.5 - 1  # noqa: E731
    shapes = f(builtin_images("shape", 6, 32, seed=2))
    # the same silhouettes (only anti-aliased edge pixels, blended with another fill, may differ)
    for other in (translated_version("shape", 6, 32, seed=2), builtin_images("shape", 6, 32, seed=2, task="stripes")):
        iou = silhouette_iou(shapes, f(other))
        assert iou.mean() > 0.95 and iou.min() > 0.9
    assert not torch.equal(shapes, f(translated_version("shape", 6, 32, seed=2)))


def test_a_built_in_task_is_chosen_by_name_and_old_run_folders_keep_the_stripes(tmp_path):
    import json

    from shapetex.cli import build_parser, config_from_args
    from shapetex.config import ConfigError, RunConfig

    args = build_parser("train").parse_args(["train", "--data", "builtin:stripes", "--size", "32"])
    assert config_from_args(args).data.builtin_task == "stripes"
    args = build_parser("train").parse_args(["train", "--data", "builtin", "--size", "32"])
    assert config_from_args(args).data.builtin_task == "colours"
    with pytest.raises(ConfigError, match="builtin_task"):
        DataConfig(builtin_task="spots").validate()
    old = RunConfig().to_dict()
    del old["data"]["builtin_task"]  # a run written before the task existed trained on stripes
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert RunConfig.load(tmp_path / "config.json").data.builtin_task == "stripes"
    (tmp_path / "settings.yaml").write_text("data:\n  source: builtin\n")  # a user's settings: the default
    assert RunConfig.load(tmp_path / "settings.yaml").data.builtin_task == "colours"


def test_missing_and_empty_folders_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "empty")
    cfg = DataConfig(source="folders", shape=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="texture"):
        unpaired_sets(cfg, 0)


def test_corrupt_and_odd_images_are_skipped_with_a_count(tmp_path):
    _write_images(tmp_path / "a", 3)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not a jpeg at all")
    Image.new("RGBA", (20, 50), (255, 0, 0, 128)).save(tmp_path / "a" / "rgba.png")
    Image.new("L", (33, 17), 77).save(tmp_path / "a" / "gray.png")
    Image.new("P", (25, 25)).save(tmp_path / "a" / "palette.gif")
    s = folder_image_set(tmp_path / "a", 16)
    assert len(s) == 6 and len(s.skipped) == 1 and "broken.jpg" in s.skipped[0]
    assert "1 unreadable skipped" in s.report()
    assert s.get([0, 5]).shape == (2, 3, 16, 16)


def test_decoding_per_batch_skips_bad_files_and_matches_preloaded(tmp_path):
    _write_images(tmp_path / "a", 4)
    (tmp_path / "a" / "img001.png").write_bytes(b"\x89PNG broken")
    lazy = folder_image_set(tmp_path / "a", 16, preload_limit_mb=0)
    assert isinstance(lazy, FileImageSet)
    batch = lazy.get([0, 1, 2])
    assert batch.shape == (3, 3, 16, 16) and len(lazy.skipped) == 1
    eager = folder_image_set(tmp_path / "a", 16)
    assert torch.equal(batch[0], eager.get([0])[0])


def test_grayscale_16bit_and_rgba_decode_to_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    deep = load_rgb(tmp_path / "deep.png")
    assert deep.shape == (8, 8, 3) and deep.dtype == np.uint8
    assert (load_rgb(tmp_path / "clear.png") == 255).all()  # transparency over white


@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_sample_once_per_epoch_across_ranks(world):
    n, batch = 10, 6
    by_epoch: dict[int, list[int]] = {}
    for r in range(world):
        stream = IndexStream(n, batch, seed=3, rank=r, world=world)
        for step in range(5):  # 30 positions: 3 epochs
            for j, idx in enumerate(stream.indices(step)):
                pos = step * batch + r + j * world
                by_epoch.setdefault(pos // n, []).append(idx)
    assert sorted(by_epoch) == [0, 1, 2]
    for indices in by_epoch.values():
        assert sorted(indices) == list(range(n))
    # and the union over ranks is the single-process order, so resuming with another world size is exact
    single = IndexStream(n, batch, seed=3)
    assert sorted(single.indices(2)) == sorted(i for r in range(world)
                                              for i in IndexStream(n, batch, 3, r, world).indices(2))


def test_batch_must_split_evenly_across_ranks():
    with pytest.raises(ValueError, match="divisible"):
        IndexStream(10, 4, seed=0, rank=0, world=3)


def test_batches_are_a_pure_function_of_the_step(tmp_path):
    cfg = DataConfig(source="builtin", size=16, builtin_count=20)
    a, hold_a = build_data(cfg, "unpaired", 4, seed=0)
    b, _ = build_data(cfg, "unpaired", 4, seed=0)
    for step in (7, 0, 3):
        assert torch.equal(a.batch(step)["shape"], b.batch(step)["shape"])
    assert hold_a["shape"].shape[0] > 0 and hold_a["texture"].shape[1:] == (3, 16, 16)


def test_folder_holdout_is_not_trained_on(tmp_path):
    _write_images(tmp_path / "s", 10)
    _write_images(tmp_path / "t", 6, start=100)
    cfg = DataConfig(source="folders", shape=str(tmp_path / "s"), texture=str(tmp_path / "t"), size=16, holdout=2)
    shape, texture, held = unpaired_sets(cfg, 0)
    assert len(shape) == 8 and len(texture) == 4
    assert held["shape"].shape[0] == 2
    train_imgs = shape.get(list(range(8)))
    for h in held["shape"]:
        assert not any(torch.equal(h, t) for t in train_imgs)

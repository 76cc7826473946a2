"""Data at scale: big folders are indexed, not loaded; the decoded cache is bounded and spills to disk;
WebDataset tar shards are indexed from their headers and split across ranks and loader workers."""

from __future__ import annotations

import io
import os
import tarfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shapetex.data.cache import DecodedCache
from shapetex.data.folders import folder_image_set
from shapetex.data.images import DataError
from shapetex.data.sets import FileImageSet, TensorImageSet, split_holdout, subset
from shapetex.data.shards import ShardImageSet, expand_braces, find_shards, shard_image_set, split_member, tar_members
from shapetex.data.stream import Prefetcher, UnpairedSource


def id_image(i: int, side: int = 8) -> np.ndarray:
    """A tiny image that carries its own index: red = i % 256, green = i // 256."""
    return np.broadcast_to(np.array([i % 256, i // 256, 77], np.uint8), (side, side, 3)).copy()


def id_of(img: torch.Tensor) -> int:
    return int(img[0, 0, 0]) + 256 * int(img[1, 0, 0])


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def write_folder(root: Path, n: int, per_dir: int = 500) -> Path:
    data = [png_bytes(id_image(i)) for i in range(min(n, 256))]  # PNG encoding is the slow part: reuse
    for i in range(n):
        d = root / f"part{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"{i:06d}.png").write_bytes(data[i % len(data)])
    return root


def write_shards(root: Path, n: int, per_shard: int, extra=None, fmt=tarfile.GNU_FORMAT) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(0, n, per_shard):
        path = root / f"data-{s // per_shard:06d}.tar"
        with tarfile.open(path, "w", format=fmt) as tf:
            for i in range(s, min(n, s + per_shard)):
                for name, payload in ((f"{i:06d}.png", png_bytes(id_image(i))), (f"{i:06d}.cls", b"%d" % (i % 3))):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
            for name, payload in (extra or {}).get(s // per_shard, []):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        paths.append(path)
    return paths


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- big folders -------------------------------------------------------------------------------------
def index_and_measure(root: Path, n: int, size: int = 64) -> None:
    decoded_mb = n * 3 * size * size / 2**20
    rss0 = rss_mb()
    t0 = time.perf_counter()
    images = folder_image_set(root, size, preload_limit_mb=1, cache_mb=1)
    seconds = time.perf_counter() - t0
    rss = rss_mb() - rss0
    tracemalloc.start()
    folder_image_set(root, size, preload_limit_mb=1, cache_mb=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n{n} images: indexed in {seconds:.2f} s ({seconds / n * 1e6:.0f} us/image); Python heap peak "
          f"{peak / 2**20:.1f} MB ({peak / n:.0f} B/image), RSS +{rss:.1f} MB; decoded they would take "
          f"{decoded_mb:.0f} MB")
    assert isinstance(images, FileImageSet) and len(images) == n
    assert peak < decoded_mb * 2**20 / 20 and peak / n < 2000  # an index, not the pixels
    assert seconds / n < 5e-3  # ~30 us/image measured; generous for a loaded machine

    # per-batch decoding through the bounded cache: at most cache_mb stay in memory
    source = UnpairedSource(images, images, global_batch=64, seed=0)
    for step in range(4):
        batch = source.batch(step)
        assert batch["shape"].shape == (64, 3, size, size)
    cache = images.cache
    per_image = 3 * size * size
    assert cache.bytes <= 2**20 and len(cache) == 2**20 // per_image
    print(f"after 4 steps of 64 shape + 64 texture images: {images.report()}")


def test_a_folder_of_20000_images_is_indexed_not_loaded(tmp_path):  # ~10 s, most of it writing the files
    index_and_measure(write_folder(tmp_path / "big", 20000), 20000)


# ---- the decoded cache -------------------------------------------------------------------------------
def test_memory_cache_is_a_bounded_lru():
    img = lambda v: torch.full((3, 16, 16), v, dtype=torch.uint8)  # 768 bytes
    cache = DecodedCache(max_mb=3 * 768 / 2**20)
    decoded = []
    fetch = lambda k: cache.fetch(k, lambda: decoded.append(k) or img(k))
    for k in (1, 2, 3):
        fetch(k)
    fetch(1)  # 1 becomes the most recent: 2 is now the oldest
    fetch(4)  # evicts 2
    assert len(cache) == 3 and cache.bytes == 3 * 768
    fetch(1), fetch(3), fetch(4)
    assert decoded == [1, 2, 3, 4] and cache.hits_memory == 4
    fetch(2)
    assert decoded == [1, 2, 3, 4, 2]
    assert DecodedCache(0).fetch("x", lambda: img(9)).sum() > 0 and len(DecodedCache(0)) == 0


def test_disk_spill_is_shared_and_follows_edits(tmp_path):
    files = []
    for i in range(6):
        f = tmp_path / "imgs" / f"{i}.png"
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(id_image(i, 12)).save(f)
        files.append(f)
    spill = tmp_path / "spill"
    first = FileImageSet(files, 16, "a", DecodedCache(0, spill))  # memory off: only the disk level
    want = first.get(range(6))
    assert first.cache.misses == 6 and len(list(spill.rglob("*.npy"))) == 6
    # another process (a fresh cache, as a loader worker or another rank has) reads the decoded copies
    second = FileImageSet(files, 16, "b", DecodedCache(1, spill))
    assert torch.equal(second.get(range(6)), want)
    assert (second.cache.hits_disk, second.cache.misses) == (6, 0)
    assert torch.equal(second.get([2]), want[2:3]) and second.cache.hits_memory == 1
    # an edited file is decoded afresh, not served stale
    Image.fromarray(id_image(200, 12)).save(files[3])
    st = os.stat(files[3])
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = FileImageSet(files, 16, "c", DecodedCache(1, spill))
    assert id_of(third.get([3])[0]) == 200 and third.cache.misses == 1
    # another training size is another entry; the decoded copy equals a direct decode
    assert third.get([0]).shape[-1] == 16 and FileImageSet(files, 8, "d", DecodedCache(0, spill)).cache.misses == 0
    assert torch.equal(FileImageSet(files, 16, "plain").get(range(6))[[0, 1, 2, 4, 5]], want[[0, 1, 2, 4, 5]])


def test_subsets_and_holdout_keep_the_cache(tmp_path):
    files = write_folder(tmp_path / "f", 20, per_dir=20)
    images = folder_image_set(files, 8, preload_limit_mb=0, cache_mb=1, cache_dir=str(tmp_path / "spill"))
    train, held = split_holdout(images, 4)
    small = subset(train, 10)
    assert isinstance(small, FileImageSet) and small.cache is images.cache and len(small) == 10
    assert [id_of(x) for x in held] == [16, 17, 18, 19]


# ---- tar shards --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_headers_are_read_like_tarfile_does(tmp_path, fmt):
    path = tmp_path / "x.tar"
    long_dir = "d" * 60 + "/" + "e" * 60
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, size in (("a.png", 5), (f"{long_dir}/0001.seg.png", 700), ("empty.txt", 0), ("b.cls", 1000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(bytes(range(256)) * 4))
        d = tarfile.TarInfo("folder")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        if fmt != tarfile.USTAR_FORMAT:
            info = tarfile.TarInfo("f" * 150 + ".jpg")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    with tarfile.open(path) as tf:
        want = [(m.name, m.offset_data, m.size) for m in tf if m.isfile()]
    assert list(tar_members(path)) == want and len(want) >= 4
    assert split_member(f"{long_dir}/0001.seg.png") == (f"{long_dir}/0001", "seg.png")
    (tmp_path / "junk.tar").write_bytes(os.urandom(2048))
    with pytest.raises(DataError, match="not a tar"):
        list(tar_members(tmp_path / "junk.tar"))


def test_shards_index_to_the_right_images(tmp_path):
    extra = {1: [("bad.png", b"not an image"), ("orphan.cls", b"1")]}
    write_shards(tmp_path / "shards", 25, per_shard=10, extra=extra)
    images = folder_image_set(tmp_path / "shards", 8, preload_limit_mb=0)
    assert isinstance(images, ShardImageSet) and len(images) == 26  # 25 + the undecodable one
    got = images.get(range(26))
    ids = [id_of(x) for x in got]
    assert ids[:20] == list(range(20))  # shard 0 then shard 1 (the bad member, in shard 1, is replaced)
    assert ids[21:] == list(range(20, 25)) and ids[20] == 20
    assert len(images.skipped) == 1 and "data-000001.tar:bad" in images.skipped[0]
    assert "1 unreadable skipped" in images.report()
    # the same set through a brace pattern, a single shard, and preloaded
    spec = str(tmp_path / "shards" / "data-{000000..000002}.tar")
    assert expand_braces("x-{08..10}-{a,b}.tar") == ["x-08-a.tar", "x-08-b.tar", "x-09-a.tar", "x-09-b.tar",
                                                     "x-10-a.tar", "x-10-b.tar"]
    eager = folder_image_set(spec, 8)
    assert isinstance(eager, TensorImageSet) and len(eager) == 25 and len(eager.skipped) == 1
    assert [id_of(x) for x in eager.images] == list(range(25))
    one = shard_image_set(tmp_path / "shards" / "data-000002.tar", 16)
    assert len(one) == 5 and one.get([0]).shape == (1, 3, 16, 16) and id_of(one.get([4])[0]) == 24
    with pytest.raises(DataError, match="1 of the 4 shards"):
        find_shards(str(tmp_path / "shards" / "data-{000000..000003}.tar"))
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "data-0.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="compressed"):
        find_shards(tmp_path / "gz")


def test_shards_every_sample_once_per_epoch_across_2_ranks_and_2_workers(tmp_path):
    n, batch = 36, 12  # 3 steps per epoch
    write_shards(tmp_path / "shards", n, per_shard=7)
    seen: dict[int, list[int]] = {}
    by_step: dict[tuple[int, int], list[int]] = {}
    for rank in range(2):
        images = folder_image_set(tmp_path / "shards", 8, preload_limit_mb=0)
        source = UnpairedSource(images, images, batch, seed=5, rank=rank, world=2)
        loader = Prefetcher(source, start_step=0, workers=2)  # worker w builds steps w, w + 2, ...
        for step in range(6):  # two epochs
            got = loader.next()["shape"]
            assert got.shape[0] == batch // 2
            assert torch.equal(got, source.batch(step)["shape"])  # workers deliver in step order
            by_step[rank, step] = [id_of(x) for x in got]
            seen.setdefault(step // 3, []).extend(by_step[rank, step])
    for epoch, ids in seen.items():
        assert sorted(ids) == list(range(n)), f"epoch {epoch}"
    assert seen[0] != seen[1]  # a new order each epoch
    # resuming mid-epoch in one process gives the union of the ranks' batches
    single = UnpairedSource(images, images, batch, seed=5)
    assert sorted(id_of(x) for x in Prefetcher(single, 4, workers=0).next()["shape"]) == \
        sorted(by_step[0, 4] + by_step[1, 4])


def test_train_command_accepts_shard_folders(tmp_path, capsys):
    from shapetex.cli import main

    write_shards(tmp_path / "shapes", 24, per_shard=10)
    write_shards(tmp_path / "textures", 20, per_shard=20)
    out = tmp_path / "run"
    textures = str(tmp_path / "textures" / "data-{000000..000000}.tar")
    code = main(["train", "--shape", str(tmp_path / "shapes"), "--texture", textures,
                 "--size", "16", "--batch", "4", "--budget", "8", "--out", str(out),
                 "--set", "data.preload_limit_mb=0", "--set", "data.workers=2",
                 "--set", f"data.cache_dir={tmp_path / 'c'}", "--set", "train.sample_every=0",
                 "--set", "train.monitor_every=0", "--set", "train.threads=1",
                 "--set", "model.g_channel_max=16", "--set", "model.d_channel_max=16", "--set", "model.z_dim=8",
                 "--set", "model.w_dim=16", "--set", "model.mapping_layers=1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "shape set shape:" in text and "24 images" in text and "20 images" in text
    assert (out / "checkpoints").is_dir()
    assert len(list((tmp_path / "c").rglob("*.npy"))) > 0  # loader workers filled the shared disk cache

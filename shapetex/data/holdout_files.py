"""A run's validation split as folders: the images its `data.holdout` kept out of training, written so that
`shapetex evaluate` (or any other tool) can score on them.

Which images a run held out is a pure function of its config: its held-out folders (`data.holdout_folders`:
--dataroot's testA/ and testB/, used where they are, or --paired's val/ or test/ pairs, every one of them), else
the last `holdout` pairs of a paired folder (sorted by name), or the last `holdout` files of every domain / shape /
texture folder (in `list_images` order), as the data builders split them. Paired inputs and targets are
written at their original resolution (the halves of an AB image, swapped for BtoA); folder images are copied as
they are; the built-in set's held-out images are rendered at the training size.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from .images import DataError, list_images, load_rgb, save_uint8
from .paired import pair_items, split_ab


@dataclass
class HoldoutFolders:
    source: Path  # inputs to translate
    target: Path  # real images of the target domain (FID/KID reference)
    paired: bool  # target[i] is source[i]'s ground truth (same file name)
    count: int


def _copy_last(folder: str, count: int, dest: Path) -> int:
    files = list_images(folder)
    if count >= len(files):
        raise DataError(f"{folder}: cannot hold out {count} of {len(files)} images")
    dest.mkdir(parents=True, exist_ok=True)
    for f in files[len(files) - count:]:
        rel = f.relative_to(Path(folder))
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / rel)
    return count


def _write_pairs(cfg: RunConfig, dest: Path) -> HoldoutFolders:
    if cfg.data.holdout_folders:  # a val/ or test/ folder: all of its pairs
        held, _ = pair_items(cfg.data.holdout_folders[0])
    else:
        n = cfg.data.holdout
        items, _ = pair_items(cfg.data.paired)
        if n >= len(items):
            raise DataError(f"{cfg.data.paired}: cannot hold out {n} of {len(items)} pairs")
        held = items[len(items) - n:]
    src, tgt = dest / "input", dest / "target"
    for key, a_file, b_file in held:
        if b_file is None:
            a, b = split_ab(load_rgb(a_file))
        else:
            a, b = load_rgb(a_file), load_rgb(b_file)
        if cfg.data.direction == "BtoA":
            a, b = b, a
        save_uint8(a, src / f"{key}.png")
        save_uint8(b, tgt / f"{key}.png")
    return HoldoutFolders(src, tgt, True, len(held))


def _write_builtin(cfg: RunConfig, dest: Path, paired: bool) -> HoldoutFolders:
    from .builtin import builtin_images, translated_version

    n, size, seed, task = max(cfg.data.holdout, 16), cfg.data.size, cfg.train.seed, cfg.data.builtin_task
    shape = builtin_images("shape-holdout", n, size, seed, task)
    other = (translated_version if paired else builtin_images)("shape-holdout" if paired else "texture-holdout",
                                                               n, size, seed, task)
    if paired and cfg.data.direction == "BtoA":
        shape, other = other, shape
    src, tgt = dest / "input", dest / "target"
    for i in range(n):
        save_uint8(shape[i], src / f"{i:05d}.png")
        save_uint8(other[i], tgt / f"{i:05d}.png")
    return HoldoutFolders(src, tgt, paired, n)


def write_holdout(cfg: RunConfig, dest: str | Path, to: str | None = None) -> HoldoutFolders:
    """Write `cfg`'s held-out images under `dest` as an input folder and a target folder.

    `to` picks the direction for two domains ("A" or "B", default B: translate held-out A images, compare
    with held-out B images)."""
    dest, data = Path(dest), cfg.data
    if data.source == "builtin":
        return _write_builtin(cfg, dest, paired=cfg.method == "pix2pix" or data.paired is not None)
    if data.holdout <= 0 and not data.holdout_folders:
        raise DataError("this run held no images out of training (data.holdout = 0): there is no validation split "
                        "to score on; give --source and --target instead")
    if data.source == "paired":
        return _write_pairs(cfg, dest)
    if data.source == "folders":
        folders = [data.shape, data.texture]
    elif data.source == "domains":
        folders = list(data.domains)
        if len(folders) != 2:
            raise DataError(f"a run with {len(folders)} domains: pick the folders with --source and --target "
                            "(held-out images are the last data.holdout files of each)")
    else:
        raise DataError(f"no held-out split for data source {data.source!r}")
    target = {"A": 0, "B": 1, None: 1}.get(to, None)
    if target is None:
        raise DataError(f"--to must be A or B for a two-domain run, not {to!r}")
    if data.holdout_folders:  # testA/ and testB/: scored where they are
        held = [Path(f) for f in data.holdout_folders]
        return HoldoutFolders(held[1 - target], held[target], False, len(list_images(held[1 - target])))
    src, tgt = dest / "input", dest / "target"
    _copy_last(folders[1 - target], data.holdout, src)
    _copy_last(folders[target], data.holdout, tgt)
    return HoldoutFolders(src, tgt, False, data.holdout)

"""The reference's dataset folders, told apart by what they hold: CycleGAN's trainA/ trainB/ (with testA/ testB/
as the held-out split) and pix2pix's train/ val/ test/ (train/ trained on, val/, else test/, held out). Each
finding comes with the one line that says what was chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Layout:
    source: str  # "domains" or "paired": DataConfig.source
    train: list[str]  # the training folders: two domains, or one folder of pairs
    held: list[str] = field(default_factory=list)  # DataConfig.holdout_folders (empty: none found)
    note: str = ""  # what was chosen, for the user


def paired_layout(root: str | Path) -> Layout:
    """--paired DIR: DIR/train when DIR holds train/ (val/, else test/, held out); else DIR itself."""
    root = Path(root)
    if not (root / "train").is_dir() or ((root / "A").is_dir() and (root / "B").is_dir()):
        return Layout("paired", [str(root)])
    held = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if held is None:
        note = f"{root}: training on train/ (no val/ or test/ to hold out; data.holdout=N holds out its last N pairs)"
        return Layout("paired", [str(root / "train")], note=note)
    left = ", test/ left alone" if held.name == "val" and (root / "test").is_dir() else ""
    return Layout("paired", [str(root / "train")], [str(held)],
                  f"{root}: training on train/, holding out {held.name}/{left}")


def dataroot_layout(root: str | Path) -> Layout:
    """--dataroot DIR: trainA/ and trainB/ (testA/ and testB/ held out when both exist); a pix2pix folder
    (train/, no trainA/) is paired data, as the reference's --dataroot takes it."""
    root = Path(root)
    if not (root / "trainA").is_dir() and (root / "train").is_dir():
        return paired_layout(root)
    train = [str(root / "trainA"), str(root / "trainB")]
    if (root / "testA").is_dir() and (root / "testB").is_dir():
        return Layout("domains", train, [str(root / "testA"), str(root / "testB")],
                      f"{root}: training on trainA/ and trainB/, holding out testA/ and testB/")
    return Layout("domains", train, note=f"{root}: training on trainA/ and trainB/ (no testA/ and testB/ to hold "
                                         "out; data.holdout=N holds out the last N of each)")

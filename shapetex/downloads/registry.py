"""The standard datasets and pretrained models of pytorch-CycleGAN-and-pix2pix and CUT, by the names their download
scripts take, and where each lands in the cache. Imports only the standard library (and platformdirs when the
cache folder is asked for): `find_checkpoint` consults it to take a model's name for a run folder.

Names are unique within a family (cyclegan, pix2pix, cut); a bare name stands for `family/name` when one family
has it (horse2zebra), and names that two families publish (facades, maps, sat2map, ...) need the family.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.images import DataError

# the reference's server, as its download scripts name it (plain http: its https certificate has been refused by
# wget before, and CUT's script passes --no-check-certificate)
SERVER = "http://efrosgans.eecs.berkeley.edu"
# a mirror with the same paths (a lab's copy, or a local server in the tests): replaces SERVER in every URL
MIRROR_ENV = "SHAPETEX_DOWNLOAD_MIRROR"
# the cache folder (default: the platform's user cache folder, e.g. ~/.cache/shapetex on Linux)
CACHE_ENV = "SHAPETEX_CACHE"

# published sha256 of a file, by its path below SERVER: verified by pooch, a mismatch refused and removed. None
# are published today; a file without one is checked against the sha256 recorded at its first complete download
PUBLISHED_SHA256: dict[str, str] = {}

LICENSED = ("not on the reference's server (license): download it from https://cityscapes-dataset.com and prepare "
            "it with the reference's datasets/prepare_cityscapes_dataset.py")


class UnknownName(DataError):
    """A name no family publishes, or one that two do, given without its family."""


@dataclass(frozen=True)
class Entry:
    kind: str  # "dataset" | "model"
    family: str  # cyclegan | pix2pix | cut
    name: str
    path: str  # below SERVER: cyclegan/datasets/horse2zebra.zip
    what: str  # for --list: the layout a dataset unpacks to, the architecture of a model
    sha256: str | None = None  # published hash; None: recorded at the first complete download
    member: str | None = None  # a model inside an archive (CUT's): its path ends with this
    method: str | None = None  # the method `shapetex import` makes of it (None: told from the weights)
    direction: str = "AtoB"  # pix2pix: which half of the dataset's AB pairs it takes as input
    unavailable: str = ""  # why it cannot be downloaded, and the way

    @property
    def qualified(self) -> str:
        return f"{self.family}/{self.name}"

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, mirror: str | None = None) -> str:
        """The file's URL on `mirror` (else $SHAPETEX_DOWNLOAD_MIRROR, else the reference's server)."""
        base = mirror or os.environ.get(MIRROR_ENV) or SERVER
        return f"{base.rstrip('/')}/{self.path}"


def _entry(kind: str, family: str, name: str, path: str, what: str, **kw) -> Entry:
    return Entry(kind, family, name, path, what, sha256=PUBLISHED_SHA256.get(path), **kw)


_CYCLEGAN_SETS = ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                  "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower", "mini",
                  "mini_pix2pix", "mini_colorization", "grumpifycat", "ae_photos")
_PIX2PIX_SETS = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")
_CYCLEGAN_MODELS = ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite",
                    "horse2zebra", "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe",
                    "style_vangogh", "sat2map", "map2sat", "cityscapes_photo2label", "cityscapes_label2photo",
                    "facades_photo2label", "facades_label2photo", "iphone2dslr_flower")
# pix2pix models and the direction each takes on its dataset's AB images: facades' A is the photo (the
# reference's README tests facades_label2photo with --direction BtoA), maps' A the aerial photo, edges2shoes' A
# the edges, night2day's A the night scene. It matters only for paired data (evaluate --holdout); translate
# takes whatever image it is given
_PIX2PIX_MODELS = {"edges2shoes": "AtoB", "sat2map": "AtoB", "map2sat": "BtoA", "facades_label2photo": "BtoA",
                   "day2night": "BtoA"}
# CUT publishes its six models in one archive: checkpoints/<name>_pretrained/latest_net_G.pth
_CUT_MODELS = ("horse2zebra_cut", "horse2zebra_fastcut", "cityscapes_cut", "cityscapes_fastcut", "cat2dog_cut",
               "cat2dog_fastcut")


_MINI = {"mini": "a small unpaired sample (CycleGAN's tests)", "mini_pix2pix": "a small paired sample (tests)",
         "mini_colorization": "a small colorization sample (tests)", "ae_photos": "a few photos (the AE tests)"}


def _build() -> list[Entry]:
    out = []
    for n in _CYCLEGAN_SETS:
        out.append(_entry("dataset", "cyclegan", n, f"cyclegan/datasets/{n}.zip",
                          _MINI.get(n, "unpaired: trainA/ trainB/ testA/ testB/")))
    for n in _PIX2PIX_SETS:
        out.append(_entry("dataset", "pix2pix", n, f"pix2pix/datasets/{n}.tar.gz", "paired AB: train/ val/ [test/]",
                          unavailable=LICENSED if n == "cityscapes" else ""))
    for n in _CYCLEGAN_MODELS:
        out.append(_entry("model", "cyclegan", n, f"cyclegan/pretrained_models/{n}.pth",
                          "resnet_9blocks: a cyclegan run, A -> B"))
    for n, direction in _PIX2PIX_MODELS.items():
        out.append(_entry("model", "pix2pix", n, f"pix2pix/models-pytorch/{n}.pth",
                          f"unet_256: a pix2pix run ({direction} pairs)", direction=direction))
    for n in _CUT_MODELS:
        method = "fastcut" if n.endswith("fastcut") else "cut"
        out.append(_entry("model", "cut", n, "CUT/pretrained_models.tar",
                          f"resnet_9blocks, antialiased: a {method} run", member=f"{n}_pretrained/latest_net_G.pth",
                          method=method))
    return out


ENTRIES: list[Entry] = _build()


def entries(kind: str) -> list[Entry]:
    return [e for e in ENTRIES if e.kind == kind]


def short_name(entry: Entry) -> str:
    """The shortest name that finds `entry`: bare where only one family publishes it."""
    same = [e for e in entries(entry.kind) if e.name == entry.name]
    return entry.name if len(same) == 1 else entry.qualified


def candidates(kind: str, name: str) -> list[Entry]:
    """The entries `name` (bare or family/name) may mean."""
    family, _, bare = name.rpartition("/")
    return [e for e in entries(kind) if e.name == bare and (not family or e.family == family)]


def lookup(kind: str, name: str) -> Entry:
    """The entry of `name`; UnknownName (one line, with the way) when there is none or several."""
    found = candidates(kind, name)
    if len(found) == 1:
        return found[0]
    if found:
        ways = " or ".join(f"{e.qualified} ({e.what})" for e in found)
        raise UnknownName(f"{name} is published by {len(found)} projects: give {ways}")
    other = "model" if kind == "dataset" else "dataset"
    if candidates(other, name):
        raise UnknownName(f"{name} is a {other}, not a {kind}: shapetex download {other} {name}")
    import difflib

    names = sorted({short_name(e) for e in entries(kind)} | {e.name for e in entries(kind)})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    if close:
        raise UnknownName(f"no {kind} named {name!r}: did you mean {' or '.join(close)}? (`shapetex download "
                          "--list` shows every name)")
    known = ", ".join(sorted({short_name(e) for e in entries(kind)}))
    raise UnknownName(f"no {kind} named {name!r}: known {kind}s are {known} (`shapetex download --list` says more)")


# ---- where things land -------------------------------------------------------------------------------------
def cache_root() -> Path:
    """$SHAPETEX_CACHE, else the platform's user cache folder for shapetex (platformdirs, as pooch.os_cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("shapetex"))


def folder_of(entry: Entry, root: Path | None = None) -> Path:
    """ROOT/datasets/<family>/ or ROOT/models/<family>/: the downloaded file and what it becomes."""
    return (root or cache_root()) / f"{entry.kind}s" / entry.family


def target_of(entry: Entry, root: Path | None = None) -> Path:
    """The dataset folder, or the model's run folder."""
    return folder_of(entry, root) / entry.name


def download_of(entry: Entry, root: Path | None = None) -> Path:
    """The file fetched from the server (a dataset archive, a model's .pth, CUT's archive)."""
    return folder_of(entry, root) / entry.file_name


def downloaded_model(name: str, ready: Callable[[Path], bool]) -> Path | None:
    """The run folder a downloaded model `name` was imported into (in the cache), for `--checkpoint NAME`; `ready`
    tells whether a run folder holds a checkpoint (checkpoint.py passes it: this module imports none of it).
    None when `name` is no model's name; DataError when it is one that is not downloaded yet."""
    if not re.fullmatch(r"(\w+/)?\w+", name):  # a path, not a name
        return None
    found = candidates("model", name)
    if not found:
        return None
    here = [e for e in found if ready(target_of(e))]
    if len(here) == 1:
        return target_of(here[0])
    if here:  # two families' models of that name are both here
        lookup("model", name)  # raises: give the family
    fetch = " or ".join(f"`shapetex download model {short_name(e)}`" for e in found)
    raise DataError(f"{name} is a pretrained model not downloaded yet (no run folder in "
                    f"{folder_of(found[0]).parent}): fetch it with {fetch}")

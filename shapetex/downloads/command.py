"""`shapetex download`: a standard dataset or a pretrained model by name, into the cache.

    shapetex download --list
    shapetex download dataset horse2zebra          # -> CACHE/datasets/cyclegan/horse2zebra/trainA ... (--dataroot)
    shapetex download model horse2zebra            # -> a run folder: translate --checkpoint horse2zebra

A dataset lands in the layout `--dataroot` / `--paired` read; a model is imported on the spot (`shapetex import`)
into a run folder that `--checkpoint NAME` finds. The cache is $SHAPETEX_CACHE, else the platform's user cache
folder; `--dir DIR` puts things under DIR instead (and a file downloaded by hand is taken from there).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError
from .fetch import DownloadError, fetch, read_record, record_path
from .registry import (
    CACHE_ENV,
    MIRROR_ENV,
    Entry,
    cache_root,
    download_of,
    entries,
    folder_of,
    lookup,
    short_name,
    target_of,
)

Say = Callable[[str], None]


def is_model_ready(run: Path) -> bool:
    """Whether a model's run folder holds its checkpoint (an import killed midway leaves none)."""
    from ..checkpoint import list_checkpoints

    return bool(list_checkpoints(run))


def _verified(entry: Entry, dest: Path, how: str) -> str:
    if how == "published":
        return f"sha256 verified against the published one ({entry.file_name})"
    if how == "recorded":
        return f"sha256 matches the one recorded at its first download ({record_path(dest)})"
    return f"no published sha256: recorded {read_record(dest)[:16]}... in {record_path(dest)}; later downloads are " \
           "checked against it"


def _by_hand(entry: Entry, dest: Path, root: Path | None) -> str:
    if root:
        return f"save it as {dest} and run this again with --dir {root}"
    return f"save it as {dest} and run this again (or as DIR/{dest.relative_to(cache_root())}, with --dir DIR)"


def _fetch(entry: Entry, root: Path | None, mirror: str | None, progress: bool, say: Say) -> Path:
    dest = download_of(entry, root)
    if entry.unavailable:
        raise DownloadError(f"{entry.qualified}: {entry.unavailable}")
    if not dest.exists():
        say(f"downloading {entry.url(mirror)} -> {dest}")
    _, how = fetch(entry.url(mirror), dest, entry.sha256, progress=progress,
                   by_hand=_by_hand(entry, dest, root), say=say)
    say(_verified(entry, dest, how))
    return dest


def dataset_hint(target: Path) -> str:
    """The command that trains on a downloaded dataset folder, from what it holds."""
    if (target / "trainA").is_dir() and (target / "trainB").is_dir():
        return f"train on it: shapetex train --method cyclegan --dataroot {target}"
    if (target / "train").is_dir():
        return f"train on it: shapetex train --method pix2pix --paired {target} (--direction BtoA for B -> A)"
    subs = sorted(p.name + "/" for p in target.iterdir() if p.is_dir())[:8]
    held = " ".join(subs) if subs else "images"
    return f"{target} holds {held}: give its folders to --domains, --shape/--texture or --paired"


def get_dataset(name: str | Entry, root: Path | None = None, mirror: str | None = None, keep_archive: bool = False,
                force: bool = False, progress: bool = True, say: Say = print) -> Path:
    """Download and unpack a dataset; returns its folder (ROOT/datasets/<family>/<name>). One already there is
    left as it is unless `force` (then fetched again, and checked against the sha256 of the first download)."""
    from .unpack import unpack

    entry = name if isinstance(name, Entry) else lookup("dataset", name)
    target = target_of(entry, root)
    if target.is_dir() and not force:
        say(f"{entry.qualified}: already in {target} (--force downloads it again)")
    else:
        if force:
            download_of(entry, root).unlink(missing_ok=True)
        archive = _fetch(entry, root, mirror, progress, say)
        unpack(archive, target, progress=progress)
        if not keep_archive:  # the folder is what is used; the sha256 record stays for the next download
            archive.unlink()
        say(f"{entry.qualified}: unpacked to {target}")
    say(dataset_hint(target))
    return target


def get_model(name: str | Entry, root: Path | None = None, mirror: str | None = None, force: bool = False,
              progress: bool = True, say: Say = print) -> Path:
    """Download a pretrained model and import it as a run folder (ROOT/models/<family>/<name>); returns it."""
    from ..import_reference import ImportSettings, import_reference

    entry = name if isinstance(name, Entry) else lookup("model", name)
    target = target_of(entry, root)
    if is_model_ready(target) and not force:
        say(f"{entry.qualified}: already imported in {target} (--force downloads it again)")
    else:
        if force and not entry.member:
            download_of(entry, root).unlink(missing_ok=True)
        got = _fetch(entry, root, mirror, progress, say)
        pth, extra = got, {}
        if entry.member:  # one of several models in an archive (CUT's): its generator, and D and F where there
            from .unpack import extract_member, has_member

            pth = extract_member(got, entry.member, folder_of(entry, root) / f"{entry.name}.pth")
            for net, key in (("D", "netd_pth"), ("F", "netf_pth")):
                suffix = entry.member.replace("_net_G.pth", f"_net_{net}.pth")
                if has_member(got, suffix):
                    extra[key] = str(extract_member(got, suffix, folder_of(entry, root) / f"{entry.name}_{net}.pth"))
        settings = ImportSettings(pth=str(pth), out=str(target), method=entry.method, direction=entry.direction,
                                  overwrite=target.exists(), **extra)
        _, lines = import_reference(settings)
        for line in lines:
            say(line)
        say(f"{entry.qualified}: imported as the run folder {target}")
    ref = short_name(entry) if root is None else str(target)
    say(f"translate with it: shapetex translate --checkpoint {ref} --input IMAGE_OR_VIDEO --out OUT")
    return target


def _hash_state(entry: Entry, root: Path | None) -> str:
    if entry.unavailable:
        return "-"
    if entry.sha256:
        return "published"
    try:
        recorded = read_record(download_of(entry, root))
    except DownloadError:
        recorded = None
    return f"recorded {recorded[:10]}" if recorded else "first download"


def list_lines(root: Path | None = None) -> list[str]:
    """What `--list` prints: every name, what it is, how it is verified, and whether it is here."""
    shown_root = root or cache_root()
    lines = []
    for kind, how in (("dataset", "unpacked where --dataroot / --paired read it"),
                      ("model", "imported as a run folder: translate --checkpoint NAME")):
        lines.append(f"{kind}s: shapetex download {kind} NAME ({how}; into {shown_root / (kind + 's')})")
        lines.append(f"  {'NAME':<29} {'FROM':<9} {'WHAT':<44} {'SHA256':<19} HERE")
        for e in entries(kind):
            target = target_of(e, root)
            here = ("yes" if (is_model_ready(target) if kind == "model" else target.is_dir()) else "") \
                if not e.unavailable else "not hosted (license)"
            line = f"  {short_name(e):<29} {e.family:<9} {e.what:<44} {_hash_state(e, root):<19} {here}"
            lines.append(line.rstrip())
        lines.append("")
    lines.append("SHA256: published = checked against the registry's; first download = none is published: the "
                 "first complete download's is recorded beside the file; recorded = checked against that record")
    lines.append(f"server: {entries('dataset')[0].url().rsplit('/cyclegan/', 1)[0]} (${MIRROR_ENV} or --mirror for a "
                 f"copy with the same paths); cache: ${CACHE_ENV} or --dir")
    return lines


# ---- command line --------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=["dataset", "model"], help="what to download")
    p.add_argument("name", nargs="?", help="its name (horse2zebra, facades, style_monet, ...; see --list); "
                                           "pix2pix/NAME or cyclegan/NAME where both publish it")
    p.add_argument("--list", action="store_true", help="list the known names, how each is verified, and "
                                                       "which are here")
    p.add_argument("--dir", help=f"put it under DIR/datasets/ or DIR/models/ instead of the cache (${CACHE_ENV}, "
                                 "else the platform's user cache folder); a file downloaded by hand is taken from "
                                 "there")
    p.add_argument("--mirror", help=f"a server with the same paths as the reference's (default: ${MIRROR_ENV}, "
                                    "else the reference's own)")
    p.add_argument("--keep-archive", action="store_true", help="datasets: keep the .zip / .tar.gz after unpacking")
    p.add_argument("--force", action="store_true", help="download again even if it is here (checked against the "
                                                        "sha256 of the first download)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir) if args.dir else None
    if args.list:
        for line in list_lines(root):
            print(line)
        return 0
    if not args.kind or not args.name:
        raise ConfigError("give `dataset NAME` or `model NAME` (`shapetex download --list` shows the names)")
    progress = not args.no_progress
    if args.kind == "dataset":
        get_dataset(args.name, root, args.mirror, keep_archive=args.keep_archive, force=args.force,
                    progress=progress)
    else:
        get_model(args.name, root, args.mirror, force=args.force, progress=progress)
    return 0

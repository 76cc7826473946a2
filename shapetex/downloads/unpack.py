"""Archives (zip, tar, tar.gz) unpacked into the cache without trusting their member names: a member that would
land outside the target (an absolute path, `..`), a link or a device is refused before anything is written. A
dataset is unpacked into a temporary folder beside its target and renamed into place once whole, so a kill midway
never leaves a half dataset under its final name."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .fetch import DownloadError


def _safe(name: str, archive: Path) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DownloadError(f"{archive}: member {name!r} would be written outside its folder: refused (the "
                            "archive is not the published one; delete it and download again)")
    return p


@contextmanager
def _members(archive: Path) -> Iterator[list[tuple[PurePosixPath, bool, object]]]:
    """(path, is_dir, handle) of every member, after checking them all; opened for reading."""
    try:
        # by name first: a tar whose last member is a zip (a .pth is one) passes zipfile.is_zipfile
        is_zip = archive.suffix.lower() == ".zip" if archive.name.lower().endswith((".zip", ".tar", ".tar.gz",
                                                                                    ".tgz")) \
            else zipfile.is_zipfile(archive)
        if is_zip:
            with zipfile.ZipFile(archive) as z:
                yield [(_safe(i.filename, archive), i.is_dir(), (z, i)) for i in z.infolist()]
            return
        with tarfile.open(archive) as t:
            out = []
            for m in t.getmembers():
                if not (m.isfile() or m.isdir()):
                    raise DownloadError(f"{archive}: member {m.name!r} is a link or a device: refused (expected "
                                        "plain files and folders)")
                out.append((_safe(m.name, archive), m.isdir(), (t, m)))
            yield out
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DownloadError(f"{archive} is not a readable zip or tar archive ({e}): delete it and download "
                            "again") from None


def _write(handle, dest: Path) -> None:
    src, member = handle
    dest.parent.mkdir(parents=True, exist_ok=True)
    f = src.open(member) if isinstance(src, zipfile.ZipFile) else src.extractfile(member)
    with f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out, 1 << 20)


def unpack(archive: Path, target: Path, progress: bool = True) -> Path:
    """Unpack `archive` as the folder `target`: an archive holding one top folder (horse2zebra/trainA/...) has that
    folder become `target`; otherwise its members go inside `target`."""
    from tqdm import tqdm

    tmp = target.with_name(f".{target.name}.unpacking-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _members(archive) as members:
            members = [m for m in members if m[0].parts and m[0].parts[0] != "__MACOSX"]  # macOS zip metadata
            tops = {m[0].parts[0] for m in members}
            strip = len(tops) == 1 and any(len(m[0].parts) > 1 for m in members)
            files = [m for m in members if not m[1]]
            for path, _, handle in tqdm(files, unit="file", desc=f"unpacking {archive.name}", disable=not progress,
                                        dynamic_ncols=True):
                parts = path.parts[1:] if strip else path.parts
                if parts and not parts[-1].startswith("._"):  # macOS resource forks are no images
                    _write(handle, tmp.joinpath(*parts))
        if not tmp.exists():
            raise DownloadError(f"{archive} holds no files: delete it and download again")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract_member(archive: Path, suffix: str, dest: Path) -> Path:
    """The one member of `archive` whose path ends with `suffix`, written to `dest` (through a temporary name)."""
    from ..atomic import write_then_rename

    with _members(archive) as members:
        found = [m for m in members if not m[1] and str(m[0]).endswith(suffix)]
        if len(found) != 1:
            names = ", ".join(str(m[0]) for m in members if not m[1])[:300]
            raise DownloadError(f"{archive}: {'no' if not found else 'more than one'} member ends with {suffix} "
                                f"(it holds {names})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_then_rename(dest, lambda p: _write(found[0][2], p))
    return dest


def has_member(archive: Path, suffix: str) -> bool:
    with _members(archive) as members:
        return any(not m[1] and str(m[0]).endswith(suffix) for m in members)

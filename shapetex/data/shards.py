"""WebDataset-style tar shards as an indexed image set: random access by (shard, byte offset).

Layout (the WebDataset convention): plain, uncompressed .tar files (`data-000000.tar`, ...) whose members
are grouped into samples by key, the member's path up to the first dot of its file name:
`000123.jpg`, `000123.cls`, `000123.json` are one sample. The image of a sample is its first member
with an image extension (`.jpg`, `.png`, ...; `x.input.png` counts as `.png`); other members are ignored.

Instead of streaming the shards, we read every tar header once (a seek per member, no image data:
seconds for 100,000 members) and remember where each sample's image bytes lie. The set then behaves
exactly like a folder of files: the step-indexed IndexStream gives each rank its share of every global
batch, loader workers build whole batches, an epoch visits every sample exactly once across all ranks,
and resume is exact. Reads use `os.pread` on descriptors opened lazily in each process (safe after
fork; a spawned worker reopens them).

Compressed shards (.tar.gz, .tgz) cannot be read at an offset: unpack or recompress them as plain .tar.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .cache import DecodedCache
from .images import IMAGE_EXTENSIONS, DataError, load_rgb, to_chw_tensor
from .preprocess import Geometry
from .sets import FileImageSet

log = logging.getLogger(__name__)

MAX_OPEN_SHARDS = 64  # descriptors kept open per process
_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """`a-{000..002}.tar` -> a-000.tar, a-001.tar, a-002.tar (zero padding kept); `{x,y}` -> x, y.
    Several groups expand left to right, like the shell (and WebDataset's shard lists)."""
    m = _BRACE.search(pattern)
    if not m:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        if int(hi) < int(lo):
            raise DataError(f"empty shard range {{{body}}} in {pattern}")
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    head, tail = pattern[: m.start()], pattern[m.end():]
    return [s for opt in options for s in expand_braces(head + opt + tail)]


def is_shard_spec(spec: str | Path) -> bool:
    """A brace pattern, a .tar file, or a folder with .tar files at its top level."""
    text = str(spec)
    if "{" in text and ".tar" in text:
        return True
    p = Path(text)
    if p.is_file():
        return p.suffix == ".tar"
    if not p.is_dir():
        return False
    with os.scandir(p) as entries:
        return any(e.name.endswith(".tar") and e.is_file() for e in entries)


def find_shards(spec: str | Path) -> list[Path]:
    text = str(spec)
    p = Path(text)
    if "{" in text:
        shards = [Path(s) for s in expand_braces(text)]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise DataError(f"{len(missing)} of the {len(shards)} shards of {text} are missing: "
                            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    elif p.is_dir():
        shards = sorted(f for f in p.iterdir() if f.suffix == ".tar" and f.is_file())
        if not shards and any(f.name.endswith((".tar.gz", ".tgz")) for f in p.iterdir()):
            raise DataError(f"{p}: compressed shards cannot be read at an offset; store them as plain .tar")
    elif p.is_file():
        shards = [p]
    else:
        raise DataError(f"shards not found: {text}")
    if not shards:
        raise DataError(f"no .tar shards in {text}")
    for s in shards:
        if s.name.endswith((".tar.gz", ".tgz")):
            raise DataError(f"{s}: compressed shards cannot be read at an offset; store them as plain .tar")
    return shards


def split_member(name: str) -> tuple[str, str]:
    """WebDataset's grouping: 'dir/000123.seg.png' -> key 'dir/000123', extension 'seg.png'."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


def _is_image(ext: str) -> bool:
    return ("." + ext.rsplit(".", 1)[-1]) in IMAGE_EXTENSIONS


def _number(field: bytes) -> int:
    """A tar header number: octal text, or base-256 when the first byte has its high bit set."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax_records(payload: bytes) -> dict[str, str]:
    """`LENGTH KEY=VALUE\n` records; LENGTH counts the whole record, so it must move past its own digits."""
    out, pos = {}, 0
    while pos < len(payload):
        space = payload.find(b" ", pos)
        if space < 0:
            break
        length = int(payload[pos:space])
        # zero, negative, past the end or not ending its record: refuse (a length that does not advance loops)
        if length <= space - pos + 1 or pos + length > len(payload) or payload[pos + length - 1] != 0x0A:
            raise DataError(f"a damaged pax record (length {length}) at byte {pos} of the extended header")
        key, _, value = payload[space + 1: pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _check_size(path, size: int, data: int, end: int) -> None:
    """A member's size must lie inside the file: a negative one would step backwards (and loop for ever), a huge
    one would be read into memory."""
    if size < 0 or data + size > end:
        raise DataError(f"{path}: a damaged tar header at byte {data - 512}: member size {size} does not fit in the "
                        f"{end}-byte file (truncated or corrupt shard)")


def tar_members(path: str | Path):
    """(name, data offset, size) of every regular file of an uncompressed tar, read from the headers alone
    (one 512-byte read per member; ustar, GNU long names and pax paths/sizes understood)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos, long_name, pax = 0, None, {}
        while pos + 512 <= end:
            hdr = os.pread(fd, 512, pos)
            if hdr.count(0) == 512:  # the end-of-archive blocks
                break
            try:
                valid = _number(hdr[148:156]) == sum(hdr[:148]) + 256 + sum(hdr[156:])
            except ValueError:
                valid = False
            if not valid:
                raise DataError(f"{path}: not a tar file, or a damaged header at byte {pos}")
            size, kind = _number(hdr[124:136]), hdr[156:157]
            data = pos + 512
            _check_size(path, size, data, end)
            if kind in (b"L", b"x", b"g", b"K"):  # metadata for the next member
                payload = os.pread(fd, size, data)
                if kind == b"L":
                    long_name = payload.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif kind == b"x":
                    try:
                        pax = _pax_records(payload)
                    except ValueError as e:
                        raise DataError(f"{path}: {e} at byte {pos}") from e
            else:
                name = hdr[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if hdr[257:263] == b"ustar\0" and hdr[345] != 0:
                    name = hdr[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape") + "/" + name
                name = pax.get("path", long_name or name)
                size = int(pax.get("size", size))
                _check_size(path, size, data, end)
                if kind in (b"0", b"\0", b"7"):
                    yield name, data, size
                long_name, pax = None, {}
            pos = data + (size + 511) // 512 * 512
    finally:
        os.close(fd)


def index_shard(path: Path) -> tuple[list[str], list[int], list[int], int]:
    """(sample keys, image data offsets, image sizes, samples without an image) of one shard, in tar order."""
    keys, offsets, sizes = [], [], []
    seen: set[str] = set()
    others: set[str] = set()
    try:
        for name, offset, size in tar_members(path):
            key, ext = split_member(name)
            if not _is_image(ext):
                others.add(key)
            elif key not in seen:  # a second image for the key (0001.jpg and 0001.seg.png): keep the first
                seen.add(key)
                keys.append(key)
                offsets.append(offset)
                sizes.append(size)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read shard {path}: {e}") from e
    return keys, offsets, sizes, len(others - seen)


class ShardImageSet(FileImageSet):
    """Images stored in tar shards, decoded per request (through the cache, when given)."""

    def __init__(self, shards: list[Path], shard_of: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 keys: list[str], geometry: int | Geometry, name: str, cache: DecodedCache | None = None):
        super().__init__(keys, geometry, name, cache)
        self.shards = [Path(s) for s in shards]
        self.shard_of, self.offsets, self.sizes = shard_of, offsets, sizes
        self._versions: list[str] | None = None
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fds"] = OrderedDict()
        return state

    def __del__(self):
        self._close()

    def _close(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds = OrderedDict()

    def _fd(self, s: int) -> int:
        if self._pid != os.getpid():  # a forked loader worker: descriptors are fine to share with pread,
            self._fds, self._pid = OrderedDict(), os.getpid()  # but closing them is the parent's business
        fd = self._fds.get(s)
        if fd is None:
            fd = os.open(self.shards[s], os.O_RDONLY)
            self._fds[s] = fd
            while len(self._fds) > MAX_OPEN_SHARDS:
                os.close(self._fds.popitem(last=False)[1])
        else:
            self._fds.move_to_end(s)
        return fd

    def describe(self, j: int) -> str:
        return f"{self.shards[int(self.shard_of[j])].name}:{self.files[j]}"

    def read(self, j: int) -> bytes:
        """The raw bytes of sample j's image member."""
        size = int(self.sizes[j])
        try:
            data = os.pread(self._fd(int(self.shard_of[j])), size, int(self.offsets[j]))
        except OSError as e:
            raise DataError(f"cannot read {self.describe(j)}: {e}") from e
        if len(data) != size:
            raise DataError(f"{self.describe(j)}: shard is truncated")
        return data

    def key(self, j: int) -> str:
        return f"{self.geometry.key()}:{self.shards[int(self.shard_of[j])]}:{int(self.offsets[j])}"

    def version(self, j: int) -> str:
        if self._versions is None:
            self._versions = []
            for s in self.shards:
                try:
                    st = os.stat(s)
                    self._versions.append(f"{st.st_mtime_ns}:{st.st_size}")
                except OSError:
                    self._versions.append("missing")
        return self._versions[int(self.shard_of[j])]

    def decode(self, j: int) -> torch.Tensor:
        try:
            img = load_rgb(io.BytesIO(self.read(j)))
        except DataError as e:
            raise DataError(f"cannot decode {self.describe(j)}: {e.__cause__ or e}") from e
        return to_chw_tensor(self.geometry.prepare(img))

    def take(self, start: int, stop: int, name: str | None = None, geometry: Geometry | None = None
             ) -> ShardImageSet:
        sl = slice(start, stop)
        part = ShardImageSet(self.shards, self.shard_of[sl], self.offsets[sl], self.sizes[sl], self.files[sl],
                             geometry or self.geometry, name or self.name, self.cache)
        part.note_skipped(self.skipped)  # as FileImageSet.take: the report counts what was found unreadable
        return part


def shard_image_set(spec: str | Path, geometry: int | Geometry, name: str | None = None,
                    cache: DecodedCache | None = None) -> ShardImageSet:
    """Index the shards of `spec` (see `find_shards`) into a ShardImageSet: shards in name order (or
    pattern order), samples in tar order within a shard; the same order in every process."""
    shards = find_shards(spec)
    keys: list[str] = []
    shard_of, offsets, sizes = [], [], []
    no_image = 0
    for s, path in enumerate(shards):
        k, o, z, n = index_shard(path)
        keys.extend(k)
        offsets.extend(o)
        sizes.extend(z)
        shard_of.extend([s] * len(k))
        no_image += n
    if not keys:
        raise DataError(f"no image members ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the {len(shards)} shards "
                        f"of {spec}")
    if no_image:
        log.warning("%s: %d samples without an image member are left out", spec, no_image)
    return ShardImageSet(shards, np.asarray(shard_of, dtype=np.int32), np.asarray(offsets, dtype=np.int64),
                         np.asarray(sizes, dtype=np.int64), keys, geometry, name or str(spec), cache)

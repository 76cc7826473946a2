"""One file from a URL into the cache: pooch does the fetching, the verification and the temporary file (a file is
under its final name only once whole and verified); the downloader handed to it resumes a cut transfer with an
HTTP Range request, from a `.part` file kept across attempts and across runs, and shows a progress bar.

Verification: against a published sha256 where the registry has one; otherwise against the sha256 recorded
beside the file (`NAME.sha256`, sha256sum's format) at its first complete download. A mismatch is refused and the
file removed either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..data.images import DataError

CHUNK = 1 << 14  # a cut transfer loses the chunk being read: keep it small


class DownloadError(DataError):
    """A download that failed, with the URL and what to do."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def read_record(dest: Path) -> str | None:
    """The sha256 recorded at `dest`'s first complete download (None: none yet)."""
    path = record_path(dest)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").split()
    if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
        raise DownloadError(f"{path} is not a sha256 record (64 hex digits, then the file name): delete it to "
                            "record the next download's")
    return text[0]


def write_record(dest: Path, digest: str) -> None:
    from ..atomic import write_then_rename

    write_then_rename(record_path(dest), lambda p: p.write_text(f"{digest}  {dest.name}\n", encoding="utf-8"))


def _reason(e: BaseException) -> str:
    """The useful end of a requests error ("Connection refused", "Name or service not known")."""
    text = str(e)
    if "Connection broken" in text or "IncompleteRead" in text:
        return "the connection broke"
    m = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m[-1].strip()
    return " ".join(text.split())[:160] or type(e).__name__


class ResumableDownloader:
    """A pooch downloader (called as `downloader(url, output_file, pooch)`) that resumes: bytes received go to
    `part` (kept when the transfer is cut), the next attempt asks for the rest with `Range: bytes=N-` (and
    `If-Range`, so a file changed on the server starts afresh rather than being spliced), and the whole file is
    moved onto pooch's temporary file at the end. A cut transfer is resumed at once, up to `attempts` times in
    one call; a server that cannot be reached at all fails at once (offline)."""

    def __init__(self, part: Path, attempts: int = 4, progress: bool = True, timeout: float = 30.0,
                 by_hand: str = "", say=print):
        self.part = Path(part)
        self.say = say
        # where a file downloaded by hand goes, for the error lines
        self.by_hand = by_hand or f"save it as {self.part.with_suffix('')} and run this again"
        self.meta = self.part.with_name(self.part.name + ".json")  # the server's validator and the total size
        self.attempts = attempts
        self.progress = progress
        self.timeout = timeout
        self.resumed_from: list[int] = []  # where each resumed request started (for the command's line, tests)

    def __call__(self, url: str, output_file: str, pooch=None) -> None:
        import requests

        for attempt in range(1, self.attempts + 1):
            before = self._have()
            try:
                self._once(url)
                break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                got = self._have()
                if got == 0 and before == 0 and attempt == 1:  # nothing ever came: no network, or no server
                    raise self._unreachable(url, e) from None
                if attempt == self.attempts:
                    total = self._meta().get("total")
                    of = f" of {total:,}" if total else ""
                    raise DownloadError(f"{url}: the transfer was cut at {got:,}{of} bytes ({_reason(e)}); run the "
                                        f"same command again to resume from there") from None
                time.sleep(0.2 if got > before else 2.0)  # resume at once while it moves, else give it a moment
        os.replace(self.part, output_file)
        self.meta.unlink(missing_ok=True)

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _meta(self) -> dict:
        try:
            return json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _once(self, url: str) -> None:
        import requests
        from tqdm import tqdm

        have, meta = self._have(), self._meta()
        headers = {"Accept-Encoding": "identity"}  # byte offsets of the file itself, not of a compressed stream
        if have:
            if meta.get("url") != url:  # a part from another URL (a mirror): not resumable
                have = 0
            else:
                headers["Range"] = f"bytes={have}-"
                if meta.get("validator"):
                    headers["If-Range"] = meta["validator"]
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and have and meta.get("total") == have:
                return  # the part is already whole
            if r.status_code == 206:
                start = int(re.match(r"bytes (\d+)-", r.headers.get("Content-Range", "bytes 0-")).group(1))
                if start != have:
                    raise DownloadError(f"{url}: asked for bytes from {have:,}, the server sent from {start:,}")
                mode = "ab"
                self.resumed_from.append(have)
                self.say(f"resuming at {have:,} bytes ({self.part.name} kept what came before)")
            elif r.status_code == 200:
                have, mode = 0, "wb"  # no Range support, or the file changed (If-Range): from the start
            else:
                way = "the file may have moved" if r.status_code == 404 else "try again later"
                raise DownloadError(f"{url}: the server answered {r.status_code} {r.reason}: {way}; if you have the "
                                    f"file from elsewhere, {self.by_hand}")
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            validator = r.headers.get("ETag") or r.headers.get("Last-Modified")
            self.part.parent.mkdir(parents=True, exist_ok=True)
            self.meta.write_text(json.dumps({"url": url, "total": total, "validator": validator}), encoding="utf-8")
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=Path(urlsplit(url).path).name, disable=not self.progress, dynamic_ncols=True)
            with bar, open(self.part, mode) as f:
                for block in r.iter_content(CHUNK):
                    f.write(block)
                    bar.update(len(block))
        if total is not None and self._have() != total:  # the server closed early without an error
            raise requests.ConnectionError(f"connection closed after {self._have():,} of {total:,} bytes")

    def _unreachable(self, url: str, e: BaseException) -> DownloadError:
        host = urlsplit(url).netloc
        return DownloadError(f"cannot reach {host} for {url} ({_reason(e)}): retry when the network is back, or "
                             f"fetch that URL by hand (a browser, another machine), {self.by_hand}")


def fetch(url: str, dest: Path, sha256: str | None = None, progress: bool = True, attempts: int = 4,
          by_hand: str = "", say=print) -> tuple[Path, str]:
    """`url` as the file `dest`, whole and verified; returns it and how it was verified: "published" (against
    `sha256`), "recorded" (against the sha256 recorded at its first download) or "first" (recorded now). A file
    already at `dest` (an earlier download, or one put there by hand) is verified, not fetched again. `by_hand`:
    how to put a file there by hand, for the error lines; `say`: where progress lines go."""
    import pooch

    pooch.get_logger().setLevel("WARNING")  # the command says what happens itself
    dest = Path(dest)
    recorded = read_record(dest)
    expected = sha256 or recorded
    part = dest.with_name(dest.name + ".part")
    downloader = ResumableDownloader(part, attempts=attempts, progress=progress, by_hand=by_hand, say=say)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{expected}" if expected else None, fname=dest.name,
                       path=dest.parent, downloader=downloader)
    except ValueError as e:
        if isinstance(e, DownloadError) or "hash" not in str(e).lower():
            raise
        # pooch removed the download; a damaged earlier copy it was replacing goes too: nothing unverified stays
        dest.unlink(missing_ok=True)
        got = re.search(r"got ([0-9a-f]{64})|but got '?([0-9a-f]{64})", str(e))
        got_text = f" (got {next(g for g in got.groups() if g)[:16]}...)" if got else ""
        if sha256:
            why, way = "the published sha256", "retry; if it happens again the file on the server has changed"
        else:
            why = f"the sha256 recorded at its first download ({record_path(dest)})"
            way = f"if the file on the server changed on purpose, delete {record_path(dest)} and run this again"
        raise DownloadError(f"{url}: the download does not match {why}{got_text}: refused, and removed from "
                            f"{dest.parent}; {way}") from None
    if expected:
        return dest, "published" if sha256 else "recorded"
    write_record(dest, sha256_of(dest))
    return dest, "first"

"""A run's metrics.jsonl (`run.Run.metrics`): one JSON object per logged point. `read_rows` is its one reader:
it skips a line torn by a kill, and its options are the only reading rules (callers go through
`Run.metrics_rows`); a resume cuts the rows past its checkpoint, since training redoes those images. Also the
reader of a run's other JSON files (its settings, a checkpoint's state.json), which must hold one object."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection
from pathlib import Path

from .atomic import write_then_rename

log = logging.getLogger(__name__)


def read_rows(path: str | Path, *, having: Collection[str] = (), last_per_image: bool = False) -> list[dict]:
    """The rows of a metrics file. A line that is not a JSON object with a whole image count (a write cut short
    by a kill, or a crafted line) is skipped with a warning naming the file and line.

    By default every row, in file order: as logged. The trainer keeps a file's image counts increasing (a resume
    cuts the rows past its checkpoint before it trains those images again), so that is also the order of
    images seen.
    `having`: only the rows holding at least one of these keys (the monitors, logged on some rows only).
    `last_per_image`: one row per image count, the last one written, in order of images. A file written before
    resumes cut it holds a point trained again after a kill twice, and the later row is the one of the run that
    went on; curves and trends want each point once. Picked after `having`, so a point keeps its newest row
    that holds those keys."""
    rows = [row for _, row in _rows(Path(path))]
    if having:
        rows = [row for row in rows if any(key in row for key in having)]
    if last_per_image:
        latest = {row["images"]: row for row in rows}
        rows = [latest[images] for images in sorted(latest)]
    return rows


def _rows(path: Path) -> list[tuple[str, dict]]:
    """(line, row) of each good line of the file; the others are skipped with a warning."""
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row, problem = parse_row(line)
        if row is None:
            log.warning("%s line %d %s, skipped", path, number, problem)
            continue
        out.append((line, row))
    return out


def parse_row(line: str) -> tuple[dict | None, str]:
    """(the row, "") or (None, what is wrong with the line): not JSON, not an object, or an "images" that is
    not a whole number the trainer could have written (null, a list, 1e999)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"is not JSON (cut short by a kill?): {e}"
    except RecursionError:
        return None, "is nested too deeply to be a metrics row"
    if not isinstance(row, dict):
        return None, f"is {type(row).__name__}, not a metrics row (a JSON object)"
    images = row.get("images")
    if isinstance(images, float) and math.isfinite(images) and images.is_integer():
        row["images"] = images = int(images)
    if not isinstance(images, int) or isinstance(images, bool) or images < 0:
        return None, f"has images {images!r}, not a count of images"
    return row, ""


def read_json_object(path: Path, what: str, fix: str) -> dict:
    """The JSON object in `path` (`what` it should hold); anything else (bad JSON, nesting too deep, a list,
    null) is a DataError naming the file and saying `fix`."""
    from .data.images import DataError

    try:
        value = json.loads(path.read_text())
    except (ValueError, RecursionError) as e:  # RecursionError: nesting too deep for the parser
        raise DataError(f"{path} is not valid JSON ({' '.join(str(e).split())[:100]}): {fix}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} holds {type(value).__name__}, not {what} (a JSON object): {fix}")
    return value


def finite_or_none(row: dict) -> dict:
    """A non-finite number (a diverged loss, a score not measured) becomes None, so that strict JSON holds it as
    null and it reads back as missing, not 0."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def json_line(row: dict) -> str:
    return json.dumps(finite_or_none(row))


def truncate_after(path: str | Path, images: int) -> int:
    """Keep the rows up to `images` (and drop torn or malformed lines); returns how many rows were dropped. Atomic: the
    file is rewritten next to itself and renamed over."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line, row in _rows(path) if row["images"] <= images]
    if len(keep) == len(lines):
        return 0
    write_then_rename(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in keep)))
    return len(lines) - len(keep)

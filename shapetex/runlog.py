"""A run's metrics.jsonl: one JSON object per logged point. Reading skips a line torn by a kill; a resume cuts
the rows past its checkpoint, since training redoes those images."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from .atomic import write_then_rename

log = logging.getLogger(__name__)


def read_rows(path: str | Path) -> list[dict]:
    """The rows in file order. A line that is not JSON (a write cut short) is skipped with a warning naming
    the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            log.warning("%s line %d is not JSON (cut short by a kill?), skipped: %s", path, number, e)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def finite_or_none(row: dict) -> dict:
    """A non-finite number (a diverged loss, a score not measured) becomes None, so that strict JSON holds it as
    null and it reads back as missing, not 0."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def json_line(row: dict) -> str:
    return json.dumps(finite_or_none(row))


def truncate_after(path: str | Path, images: int) -> int:
    """Keep the rows up to `images` (and drop torn lines); returns how many rows were dropped. Atomic: the
    file is rewritten next to itself and renamed over."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    keep = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and int(row.get("images", 0)) <= images:
            keep.append(line)
    if len(keep) == len(lines):
        return 0
    write_then_rename(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in keep)))
    return len(lines) - len(keep)

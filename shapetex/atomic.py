"""Replace a file so that a reader, or a run killed part-way, sees the old file or the whole new one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_then_rename(path: str | Path, write: Callable[[Path], object]) -> Path:
    """write(tmp) beside `path`, then rename it over `path`; on an error the partial file is removed.
    The temporary name ends in `path`'s suffix, so numpy's savers do not append another."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

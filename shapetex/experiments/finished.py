"""A finished experiment run's measurements on disk, so that `--resume` reads the run back instead of training it
again. An experiment cut short (a session's end, a crash, Ctrl-C) keeps every run it completed, and one re-run
with more seeds trains only the new ones.

A run counts as finished when both files exist: they are written after its last measurement (and its FID),
the JSON last and by rename, so a run killed part-way leaves none. They are read back only when the run's
configuration and the experiment's measurement settings equal the ones saved; otherwise the run trains again.
Plain JSON and safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

META = "measurements.json"
TENSORS = "measurements.safetensors"


def _plain(value):
    """JSON-safe and comparable after a round trip (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def _row_out(row: dict) -> dict:
    """Strict JSON: a value not measured (NaN, e.g. input_match with too few inputs) is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _row_in(row: dict) -> dict:
    return {k: (float("nan") if v is None else v) for k, v in row.items()}


def forget(run_dir: Path) -> None:
    """Before a run trains: its old measurements no longer describe it."""
    for name in (META, TENSORS):
        (run_dir / name).unlink(missing_ok=True)


def save(run_dir: Path, key: dict, rows: list[dict], snapshots: list[tuple[int, torch.Tensor]],
         last_grid: torch.Tensor | None, stopped: str, seconds: float) -> None:
    tensors = {f"snapshot{i}": img.contiguous() for i, (_, img) in enumerate(snapshots)}
    if last_grid is not None:
        tensors["last_grid"] = last_grid.contiguous()
    save_file(tensors, str(run_dir / TENSORS))
    meta = {"key": _plain(key), "rows": [_row_out(r) for r in rows], "snapshot_images": [i for i, _ in snapshots],
            "stopped": stopped, "seconds": seconds}
    tmp = run_dir / (META + ".tmp")
    tmp.write_text(json.dumps(meta, allow_nan=False))
    os.replace(tmp, run_dir / META)


def load(run_dir: Path, key: dict) -> tuple[dict | None, str]:
    """(the saved measurements, "") or (None, why they cannot be used)."""
    if not (run_dir / META).is_file() or not (run_dir / TENSORS).is_file():
        return None, "not finished"
    try:
        meta = json.loads((run_dir / META).read_text())
        tensors = load_file(str(run_dir / TENSORS))
    except (OSError, ValueError) as err:
        return None, f"unreadable measurements ({err})"
    if meta.get("key") != _plain(key):
        return None, "measured under other settings"
    meta["rows"] = [_row_in(r) for r in meta["rows"]]
    meta["snapshots"] = [(n, tensors[f"snapshot{i}"]) for i, n in enumerate(meta["snapshot_images"])]
    meta["last_grid"] = tensors.get("last_grid")
    return meta, ""

"""A finished experiment run's measurements on disk, so that `--resume` reads the run back instead of training it
again. An experiment cut short (a session's end, a crash, Ctrl-C) keeps every run it completed, and one re-run
with more seeds trains only the new ones.

A run counts as finished when both files exist: they are written after its last measurement (and its FID),
the JSON last and by rename, so a run killed part-way leaves none. They are read back only when the saved key
(the run's configuration and what the experiment measures, see runner.measurement_key) equals the current one;
otherwise the run trains again. Plain JSON and safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import write_then_rename
from ..data.images import float_to_uint8, uint8_to_float
from ..run import MEASUREMENT_FILES
from ..runlog import finite_or_none

META, TENSORS = MEASUREMENT_FILES


@dataclass
class Finished:
    rows: list[dict]  # the tracker's rows; a value written as null (not measured) reads back as NaN
    snapshots: list[tuple[int, torch.Tensor]]  # (images, the grid's outputs for latent 0) per measurement
    last_grid: torch.Tensor | None  # the grid's rows of the last measurement's outputs, all latents
    stopped: str
    seconds: float


def _plain(value):
    """JSON-safe and comparable after a round trip (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def forget(run_dir: Path) -> None:
    """Before a run trains: its old measurements no longer describe it."""
    for name in MEASUREMENT_FILES:
        (run_dir / name).unlink(missing_ok=True)


def save(run_dir: Path, key: dict, done: Finished) -> None:
    # outputs as 8-bit images (what the grids show): a quarter of float32's size, so kept results stay small
    tensors = {f"snapshot{i}": float_to_uint8(img).contiguous() for i, (_, img) in enumerate(done.snapshots)}
    if done.last_grid is not None:
        tensors["last_grid"] = float_to_uint8(done.last_grid).contiguous()
    meta = {"key": _plain(key), "rows": [finite_or_none(r) for r in done.rows],
            "snapshot_images": [i for i, _ in done.snapshots], "stopped": done.stopped, "seconds": done.seconds}
    write_then_rename(run_dir / TENSORS, lambda path: save_file(tensors, str(path)))
    write_then_rename(run_dir / META, lambda path: path.write_text(json.dumps(meta, allow_nan=False)))  # last


def _as_float(t: torch.Tensor) -> torch.Tensor:
    """Saved outputs back in [-1, 1] (files written before 8-bit storage hold float32)."""
    return uint8_to_float(t) if t.dtype == torch.uint8 else t.clone()


def load(run_dir: Path, key: dict) -> tuple[Finished | None, str | None]:
    """(the saved measurements, None); (None, None) when the run did not finish; (None, why) when what it saved
    cannot be used."""
    if not (run_dir / META).is_file() or not (run_dir / TENSORS).is_file():
        return None, None
    try:
        meta = json.loads((run_dir / META).read_text())
        if meta.get("key") != _plain(key):
            return None, "measured under other settings"
        tensors = load_file(str(run_dir / TENSORS))
        snapshots = [(int(n), _as_float(tensors[f"snapshot{i}"])) for i, n in enumerate(meta["snapshot_images"])]
        last = _as_float(tensors["last_grid"]) if "last_grid" in tensors else None
        rows = [{k: float("nan") if v is None else v for k, v in r.items()} for r in meta["rows"]]
        return Finished(rows, snapshots, last, str(meta["stopped"]), float(meta["seconds"])), None
    except Exception as err:  # noqa: BLE001 - a torn or foreign file (safetensors raises its own type): train again
        return None, f"unreadable measurements ({type(err).__name__}: {err})"

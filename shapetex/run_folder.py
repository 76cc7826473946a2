"""Whether a run folder already holds a run, and clearing one on request: training twice into one folder
would overwrite the old config (its checkpoints then no longer load) and prune the new run's checkpoints."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .checkpoint import PREFIX
from .data.images import DataError

# a finished experiment run's measurements (experiments/finished.py), next to the run they describe
MEASUREMENT_FILES = ("measurements.json", "measurements.safetensors")
# what a training run writes into its folder (and --overwrite removes)
RUN_FILES = ("config.json", "metrics.jsonl", "summary.md", "parameters.json", *MEASUREMENT_FILES)
RUN_FOLDERS = ("checkpoints", "samples", "tb")


class RunFolderInUse(DataError):
    pass


def held_run(run_dir: Path) -> list[str]:
    """What in `run_dir` belongs to an earlier run (empty when nothing does)."""
    found = [name for name in ("config.json", "metrics.jsonl") if (run_dir / name).exists()]
    ckpts = run_dir / "checkpoints"
    if ckpts.is_dir():
        n = sum(1 for p in ckpts.iterdir() if p.name.startswith(PREFIX))
        if n:
            found.append(f"{n} checkpoint{'s' * (n != 1)}")
    return found


def refuse_if_held(run_dir: Path) -> None:
    found = held_run(run_dir)
    if found:
        raise RunFolderInUse(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with --resume {run_dir}, train into "
            f"a new folder with --out, or replace it with --overwrite")


def clear_run(run_dir: Path) -> None:
    """Remove an earlier run's files. Each folder is renamed aside before it is deleted, so a kill midway never
    leaves checkpoints that a later resume would take for the new run's."""
    for name in RUN_FOLDERS:
        folder = run_dir / name
        if folder.is_dir():
            doomed = run_dir / f".del-{name}-{os.getpid()}"
            os.replace(folder, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)

"""A run folder's layout in one place: `Run(path)` names each file and folder a training run writes, and reads
its settings and its metrics back. The names and formats are those every earlier version wrote, so old run
folders keep loading.

    <run>/config.json              the run's settings (`RunConfig.to_dict()`, model = the resolved settings)
    <run>/metrics.jsonl            one JSON object per logged point (the format: `runlog`)
    <run>/summary.md               what the method says about its monitors when the run ends
    <run>/parameters.json          parameters per network
    <run>/checkpoints/ckpt-*/      the checkpoints (their format: `checkpoint`; each holds its own copy of the
                                   settings, under the same name as the run's)
    <run>/samples/<images>.png     sample grids over training, images seen as 10 digits
    <run>/tb/                      TensorBoard events (`tb`)
    <run>/.shapetex.lock           held while a process trains into the folder (`run_folder.RunLock`)
    <run>/measurements.json, measurements.safetensors   a finished experiment run's measurements

Guarding a folder (its lock, refusing or clearing an earlier run) is `run_folder`'s; finding a complete
checkpoint is `checkpoint`'s (`list_checkpoints`, `find_checkpoint`), which takes the folder from here. This
module imports only `runlog`, so that `config` and `checkpoint` can take their file names from it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from . import runlog

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.md"
PARAMETERS = "parameters.json"
# a finished experiment run's measurements (experiments/finished.py), next to the run they describe
MEASUREMENT_FILES = ("measurements.json", "measurements.safetensors")
CHECKPOINTS, SAMPLES, TB = "checkpoints", "samples", "tb"
LOCK_FILE = ".shapetex.lock"
# what a training run writes into its folder (and --overwrite removes)
RUN_FILES = (CONFIG, METRICS, SUMMARY, PARAMETERS, *MEASUREMENT_FILES)
RUN_FOLDERS = (CHECKPOINTS, SAMPLES, TB)


class Run:
    """One run folder. Building one touches nothing on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> Run:
        """The run a checkpoint folder (<run>/checkpoints/ckpt-*) belongs to."""
        return cls(Path(checkpoint).parent.parent)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ---- where things are ----------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def parameters(self) -> Path:
        return self.path / PARAMETERS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    @property
    def tb(self) -> Path:
        return self.path / TB

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    def sample_path(self, images: int) -> Path:
        """The sample grid written at `images` images seen."""
        return self.samples / f"{int(images):010d}.png"

    def sample_grids(self) -> list[tuple[int, Path]]:
        """(images seen, path) of the run's sample grids, oldest first."""
        if not self.samples.is_dir():
            return []
        return sorted((int(p.stem), p) for p in self.samples.glob("*.png") if p.stem.isdigit())

    # ---- settings ------------------------------------------------------------------------------
    def read_config(self) -> dict:
        """The run's settings as saved: the plain JSON object, not checked against the settings' types (a
        report shows any run's). Missing: FileNotFoundError; damaged or not an object: DataError. To build a
        `RunConfig`, load `checkpoint.config_path(ckpt)`: the settings a checkpoint was trained with."""
        if not self.config.exists():
            raise FileNotFoundError(f"{self.config} not found: is {self.path} a run folder?")
        return runlog.read_json_object(self.config, "a run's settings",
                                       f"is {self.path} a run folder? (its {CONFIG} is damaged: copy it from one "
                                       f"of its {CHECKPOINTS}/ckpt-*/ folders)")

    def write_config(self, cfg) -> None:
        """Save a `RunConfig` as the run's settings (the folder must exist)."""
        cfg.save(self.config)

    # ---- metrics -------------------------------------------------------------------------------
    def metrics_rows(self, *, having: Collection[str] = (), last_per_image: bool = False) -> list[dict]:
        """The rows of metrics.jsonl, read by `runlog.read_rows` (a torn or malformed line is skipped with a
        warning). By default every row in file order, as logged; see read_rows for `having` (only the rows
        holding one of these keys) and `last_per_image` (one row per image count, in order of images)."""
        return runlog.read_rows(self.metrics, having=having, last_per_image=last_per_image)

    def append_metrics(self, row: dict) -> None:
        """Log one row (a non-finite number is written as null)."""
        with open(self.metrics, "a") as f:
            f.write(runlog.json_line(row) + "\n")

    def drop_metrics_after(self, images: int) -> int:
        """Drop the rows logged past `images` (a resume trains those images again); how many were dropped."""
        return runlog.truncate_after(self.metrics, images)

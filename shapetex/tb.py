"""TensorBoard logs of a run, next to the plain metrics.jsonl: only when `tensorboard` is installed.

Events go to <run>/tb/. The trainer calls three things (a no-op logger stands in when TensorBoard is
missing or on ranks other than 0):

    self.tb = tb.open_logger(self.run_dir, self.engine.is_main, purge_step=self.images_seen)  # Trainer.__init__
    self.tb.log_row(row)                       # Trainer._write_metrics: losses, images/s, condition monitors
    self.tb.log_grid(path, self.images_seen)   # Trainer.samples: the sample grid just written

`backfill(run_dir)` writes the same events from an existing run's metrics.jsonl and samples/ (for runs
trained without the hook). Steps are images seen, as in metrics.jsonl. The folders are `run.Run`'s.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from .run import Run

log = logging.getLogger(__name__)

# keys of metrics.jsonl rows that are bookkeeping, not curves
_SKIP = {"images", "step"}
_MONITOR_HINTS = ("recon", "accuracy", "val_", "cycle_l1", "pixel_l1", "fid", "kid")


def tag_for(key: str) -> str:
    """TensorBoard tag of a metrics.jsonl key: grouped into loss/, monitor/, speed/ and train/ panels."""
    if key.startswith("loss"):
        return f"loss/{key}"
    if key == "images_per_s":
        return "speed/images_per_s"
    if any(h in key for h in _MONITOR_HINTS):
        return f"monitor/{key}"
    return f"train/{key}"


def tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class NullLogger:
    """Stands in when TensorBoard is not installed (or on ranks that do not log)."""

    enabled = False
    log_dir = None

    def log_row(self, row: dict) -> None:
        pass

    def log_grid(self, image, step: int, tag: str = "samples") -> None:
        pass

    def close(self) -> None:
        pass


class TBLogger(NullLogger):
    enabled = True

    def __init__(self, run_dir: str | Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Run(run_dir).tb
        # purge_step: after a resume, TensorBoard hides events a killed run wrote past the checkpoint
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step or None, flush_secs=30)

    def log_row(self, row: dict) -> None:
        """One metrics.jsonl row: every finite number in it, at step row["images"]."""
        step = int(row.get("images", 0))
        for key, value in row.items():
            if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(tag_for(key), value, step)
        self.writer.flush()

    def log_grid(self, image, step: int, tag: str = "samples") -> None:
        """A sample grid: a PNG path, a PIL image, an H x W x 3 uint8 array or a 3 x H x W float [0, 1] tensor."""
        import numpy as np
        import torch

        if image is None:
            return
        if isinstance(image, (str, Path)):
            from PIL import Image

            with Image.open(image) as im:
                image = np.asarray(im.convert("RGB"))
        elif not isinstance(image, (np.ndarray, torch.Tensor)):
            image = np.asarray(image.convert("RGB"))
        if isinstance(image, np.ndarray):
            self.writer.add_image(tag, image, int(step), dataformats="HWC")
        else:
            self.writer.add_image(tag, image, int(step), dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_logger(run_dir: str | Path, enabled: bool = True, purge_step: int | None = None) -> NullLogger:
    """A TensorBoard logger for the run, or a no-op one when disabled or TensorBoard is not installed."""
    if not enabled:
        return NullLogger()
    if not tensorboard_available():
        log.info("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return NullLogger()
    return TBLogger(run_dir, purge_step)


def backfill(run_dir: str | Path) -> Path | None:
    """Write TensorBoard events for an existing run (its metrics.jsonl and sample grids). Returns the log
    folder, or None when TensorBoard is not installed."""
    logger = open_logger(run_dir)
    if not logger.enabled:
        return None
    run = Run(run_dir)
    try:
        for row in run.metrics_rows(last_per_image=True):  # each point once, in order: a step per point
            logger.log_row(row)
        for images, path in run.sample_grids():
            logger.log_grid(path, images)
    finally:
        logger.close()
    return logger.log_dir

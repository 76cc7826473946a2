"""When a run has stopped improving: the stopping rule of the experiments' runs.

GAN curves are noisy from one measurement to the next, so the rule compares window means, not points: after
each measurement, the mean of the last `window` values against the mean of the `window` before them. The run
has reached its plateau when that improvement is below `tolerance` (relative), once it has trained at least
`min_images`. A cap bounds every run whatever its curve does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlateauRule:
    key: str  # the monitored quantity, a Tracker row key (e.g. recon_mse_train)
    lower_is_better: bool = True
    window: int = 3  # measurements per window
    tolerance: float = 0.05  # relative improvement of the window mean below which the run has plateaued
    min_images: int = 0  # never stop before this many training images

    def improvement(self, values: list[float]) -> float | None:
        """Relative improvement of the last window's mean over the window before (None: too few values)."""
        w = self.window
        if len(values) < 2 * w:
            return None
        before = sum(values[-2 * w:-w]) / w
        last = sum(values[-w:]) / w
        gain = before - last if self.lower_is_better else last - before
        return gain / max(abs(before), 1e-12)

    def reached(self, images: list[int], values: list[float]) -> bool:
        """True once the last window improved on the one before by less than the tolerance."""
        if not images or images[-1] < self.min_images:
            return False
        gain = self.improvement(values)
        return gain is not None and gain < self.tolerance

    def describe(self, every: int, cap: int) -> str:
        better = "lower" if self.lower_is_better else "higher"
        return (f"a run stops when the mean of its last {self.window} measurements of {self.key} ({better} is "
                f"better, measured every {every:,} images) improves on the mean of the {self.window} before "
                f"them by less than {self.tolerance:.0%}, from {self.min_images:,} images on, or at the cap of "
                f"{cap:,} images")

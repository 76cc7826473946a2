"""The paper's experiments (arXiv 2411.10368), one command each: `shapetex experiment ae-vs-gan|bottleneck|
dataset-size`, or all three as `paper`; `compare` sets the translator against CycleGAN and AsymmetricGAN.
Each trains its variants in chunks, measures between chunks and writes a folder with a CSV, PNG plots and
grids, and a `summary.md` that says whether the paper's claim held on this run."""

from ..run_summary import condition_summary
from .runner import ExperimentSettings
from .tracker import Tracker, train_tracked

__all__ = ["ExperimentSettings", "Tracker", "condition_summary", "train_tracked"]

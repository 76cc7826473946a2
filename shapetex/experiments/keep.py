"""What of an experiment's folder is worth committing: its report and each finished run's measurements.

`shapetex experiment ... --keep-results DIR` copies them to DIR at the end: the summary, results and plots, and,
for every run that finished, its measurements (the files `--resume` reads back), its settings and its logged
metrics; no weights, checkpoints or samples. A few hundred KB per experiment, so DIR can live in a repository;
`--resume --out DIR` on another machine then reads every run back and rebuilds the report without training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..run import CONFIG, MEASUREMENT_FILES, METRICS

REPORT_SUFFIXES = (".md", ".csv", ".json", ".png")
KEPT_RUN_FILES = (*MEASUREMENT_FILES, CONFIG, METRICS)  # what --resume and a reader need


def keep_results(out: Path, dest: Path) -> list[Path]:
    """Copy the committable part of experiment folder `out` to `dest` (same layout); the files written."""
    out, dest = Path(out), Path(dest)
    if dest.resolve() == out.resolve():
        return []
    picked: list[Path] = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or "runs" in rel.parts:
            continue
        if path.suffix in REPORT_SUFFIXES:
            picked.append(rel)
    for meta in sorted(out.rglob(MEASUREMENT_FILES[0])):  # each finished run
        run = meta.parent
        picked += [(run / name).relative_to(out) for name in KEPT_RUN_FILES if (run / name).is_file()]
    for rel in picked:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / rel, dest / rel)
    return [dest / rel for rel in picked]

"""`shapetex experiment paper`: the paper's three findings in one command, one report.

The three experiments share runs: the translating GAN with the default bottleneck on all the data is
gan-translate of ae-vs-gan, the default arm of bottleneck and the "all" arm of dataset-size, so it is trained
once per seed. Every run is measured the same way (all the quantities every experiment reads) and stops by
the same rule. Each experiment then writes its own folder (summary.md, results.csv, plots, grids) and
report.md puts the verdicts first, then the three summaries.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from ..config import ConfigError
from . import ae_vs_gan, bottleneck, dataset_size
from .runner import ExperimentSettings, Variant, VariantResult, run_variants

NAME = "paper"
DEFAULT_SIZES = (16, 128, 0)


def _key(v: Variant) -> tuple:
    return v.method, v.bottleneck, tuple(sorted(v.settings.items()))


def plan(sizes=DEFAULT_SIZES) -> tuple[list[Variant], dict[str, dict[str, str]]]:
    """(the distinct runs, {experiment: {its arm's name: the run's name}})."""
    arms = {"ae-vs-gan": ae_vs_gan.variants(), "bottleneck": bottleneck.variants(),
            "dataset-size": dataset_size.variants(sizes)}
    runs: dict[tuple, Variant] = {}
    names: dict[str, dict[str, str]] = {}
    for experiment, variants in arms.items():
        for v in variants:
            shared = runs.setdefault(_key(v), v)  # the first experiment to ask for a run names it
            names.setdefault(experiment, {})[v.name] = shared.name
    return list(runs.values()), names


def _renamed(results: list[VariantResult], arms: dict[str, str]) -> list[VariantResult]:
    by_run = {}
    for r in results:
        by_run.setdefault(r.name, []).append(r)
    return [replace(r, name=arm) for arm, run in arms.items() for r in by_run.get(run, [])]


def _verdict_line(summary: str) -> str:
    for line in summary.splitlines():
        if line.startswith("**"):
            return line
    return "(no verdict line)"


def run(s: ExperimentSettings, sizes=DEFAULT_SIZES, log=print) -> Path:
    s.validate()
    if s.samples < 2:
        raise ConfigError("the paper's bottleneck and dataset-size findings measure diversity: --samples >= 2")
    out = Path(s.out)
    started = time.perf_counter()
    variants, names = plan(sizes)
    log(f"{len(variants)} distinct runs x {s.seeds} seed(s), {s.jobs} at a time")
    results = run_variants(s, variants, out, samples=s.samples, log=log)
    wall = time.perf_counter() - started
    ae_vs_gan.report(s, _renamed(results, names["ae-vs-gan"]), out / "ae-vs-gan")
    bottleneck.report(s, _renamed(results, names["bottleneck"]), out / "bottleneck")
    runs = [v.name for v in dataset_size.variants(sizes)]
    dataset_size.report(s, _renamed(results, names["dataset-size"]), out / "dataset-size", runs)
    write_report(out, s, wall, len(variants), read_back=sum(r.read_back for r in results))
    return out


def write_report(out: Path, s: ExperimentSettings, wall_s: float, distinct: int, read_back: int = 0) -> str:
    summaries = {e: (out / e / "summary.md").read_text() for e in ("ae-vs-gan", "bottleneck", "dataset-size")}
    data = s.data_line()
    parts = ["# The paper's three findings (arXiv 2411.10368)", "",
             f"Data: {data}, {s.size} px, {s.seeds} seed(s) from {s.seed0}; {distinct} distinct runs per seed, "
             f"{s.jobs} at a time; wall time {wall_s / 60:.1f} min" + (
                 f" ({read_back} of {distinct * s.seeds} runs read back with --resume: finished earlier, their "
                 f"time not in it)." if read_back else "."), "", s.scale_line(), "",
             "| finding | verdict |", "| --- | --- |"]
    titles = {"ae-vs-gan": "GAN with identical sets reconstructs like an autoencoder (Fig. 4)",
              "bottleneck": "a smaller bottleneck keeps less and varies more (Figs. 9-12)",
              "dataset-size": "a small dataset pushes toward a one-to-one mapping"}
    for e, text in summaries.items():
        parts.append(f"| {titles[e]} | {_verdict_line(text).replace('|', '/')} |")
    parts.append("")
    for e, text in summaries.items():
        body = text.replace("](", f"]({e}/").replace("\n# ", "\n## ")
        parts += [body.replace("# ", "## ", 1) if body.startswith("# ") else body, ""]
    text = "\n".join(parts)
    (out / "report.md").write_text(text)
    return text

"""Experiment: the size of the training sets (arXiv 2411.10368).

The same translation with the shape and texture sets cut to several sizes (`data.max_images`: the first N images
of each set; 0 keeps all). Measured as in the bottleneck experiment: content kept and diversity across z on
held-out shape images. The claim: small sets push the GAN toward a one-to-one mapping of the input, with less
diversity and more preservation.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from .report import (
    claim_status,
    difference_lines,
    direction,
    finish_summary,
    measure_keys,
    measures_table,
    said,
    write_translation_outputs,
)
from .runner import (
    ExperimentSettings,
    Variant,
    VariantResult,
    collapse_line,
    collapse_reasons,
    final_values,
    mean_sd,
    plateau_text,
    result_rows,
    run_variants,
)

NAME = "dataset-size"
DEFAULT_BUDGET = 4000
DEFAULT_SIZES = (16, 128, 0)


def run_name(n: int) -> str:
    return "all" if n == 0 else f"n{n}"


def variants(sizes) -> list[Variant]:
    ordered = sorted({int(n) for n in sizes if int(n) > 0}) + ([0] if 0 in sizes else [])
    return [Variant(run_name(n), settings={"data.max_images": n} if n else {}) for n in ordered]


def verdict(preservation: dict[str, list[float]], diversity: dict[str, list[float]], runs: list[str],
            measure: str) -> tuple[str, list[str]]:
    """`runs` from the smallest set to the largest; the claim compares the two ends, per-seed final values
    judged against their spread (report.claim_status)."""
    small, large = runs[0], runs[-1]
    more_kept = direction(preservation[small], preservation[large], "more")
    less_varied = direction(diversity[small], diversity[large], "less")
    p = {r: mean_sd(preservation[r])[0] for r in runs}
    d = {r: mean_sd(diversity[r])[0] for r in runs}
    lines = [
        f"- the smallest set ({small}) {said(more_kept, 'kept more', 'keep more')} of the input than the largest "
        f"({large}): {measure} {p[small]:.4g} vs {p[large]:.4g}.",
        f"- the smallest set {said(less_varied, 'varied less', 'vary less')} across z: diversity {d[small]:.4g} vs "
        f"{d[large]:.4g}.",
    ]
    if len(runs) > 2:
        pv, dv = [p[r] for r in runs], [d[r] for r in runs]
        mono_p = all(a >= b for a, b in zip(pv, pv[1:]))
        mono_d = all(a <= b for a, b in zip(dv, dv[1:]))
        lines.append(f"- across all sizes ({', '.join(runs)}): {measure} "
                     f"{'falls steadily' if mono_p else 'does not fall steadily'} ({', '.join(f'{v:.3g}' for v in pv)})"
                     f", diversity {'rises steadily' if mono_d else 'does not rise steadily'} "
                     f"({', '.join(f'{v:.3g}' for v in dv)}) as the sets grow (means).")
    return claim_status([more_kept, less_varied]), lines


def run(s: ExperimentSettings, sizes=DEFAULT_SIZES, log=print) -> Path:
    s.validate()
    if s.samples < 2:
        raise ConfigError("the dataset-size experiment measures diversity: --samples must be at least 2")
    vs = variants(sizes)
    if len(vs) < 2:
        raise ConfigError("the dataset-size experiment needs at least two set sizes")
    out = Path(s.out)
    return report(s, run_variants(s, vs, out, samples=s.samples, log=log), out, [v.name for v in vs])


def report(s: ExperimentSettings, results: list[VariantResult], out: Path, runs: list[str]) -> Path:
    rows = result_rows(results)
    write_translation_outputs(out, rows, results, runs, s.task, s.seed0)
    m = s.preservation
    pres, div = final_values(rows, m), final_values(rows, "diversity")
    data = s.data_line()
    full = (f"all = {s.builtin_count} images per set" if s.builtin
            else f"all = every image in the folder but the last {s.eval_images}, held out")
    parts = [f"# {NAME}: training-set size and the one-to-one mapping (arXiv 2411.10368)", "",
             f"Data: {data}, {s.size}px; set sizes {', '.join(runs)} ({full}); at most {s.budget:,} training "
             f"images per run, batch {s.batch}, {s.seeds} seed(s) from {s.seed0}. "
             f"Measured with the EMA generator on {s.eval_images} held-out shape images, {s.samples} latents each.",
             "", s.scale_line(), "", plateau_text(s), "", measures_table(rows, runs, measure_keys(s.task), results),
             ""]
    broken = collapse_reasons(results, runs)
    if broken:
        parts += [collapse_line(broken), ""]
    elif all(r in pres and r in div for r in runs):
        status, lines = verdict({r: pres[r] for r in runs}, {r: div[r] for r in runs}, runs, m)
        parts += [f"**Claim {status} on this run**: small sets push the GAN toward a "
                  "one-to-one mapping of the input (less diversity, more preservation).", "", *lines]
        parts += difference_lines({m: pres, "diversity": div}, runs[0], runs[-1], "smallest vs largest set",
                                  s.seeds)
    else:
        parts.append("Not every run finished: no verdict.")
    finish_summary(out, parts, results, s.seed0, [("measures over training", "measures.png"),
                                                  ("final translations", "samples.png")])
    return out

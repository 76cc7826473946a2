"""Experiment: the size of the bottleneck (arXiv 2411.10368, Figs. 9-12).

The same translation trained with the paper's default encoder output (16x16x128 at 512 px) and its low-dimension
variant (8x8x128), under the scale preset (presets.py: at 32 px the scale-true preset gives 8x8x2 and 4x4x2,
the same 4.17% and 1.04% of the input's values). Measured on held-out shape images: how much of the input the
output keeps (silhouette IoU on the built-in data, SSIM of edge maps on real data) and how much the outputs of one
input vary across z (pixel diversity, and the stripe-angle spread on built-in data). The claim: the smaller
bottleneck keeps less of the input and varies more. A run whose outputs no longer depend on the input (collapse)
gets no verdict.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from .presets import describe
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

NAME = "bottleneck"
DEFAULT_BUDGET = 5000
LARGE, SMALL = "bottleneck-default", "bottleneck-low"


def variants() -> list[Variant]:
    return [Variant(LARGE, bottleneck="default"), Variant(SMALL, bottleneck="low")]


def verdict(preservation: dict[str, list[float]], diversity: dict[str, list[float]],
            measure: str) -> tuple[str, list[str]]:
    """The claim's status (report.claim_status) from per-seed final values, and one line per part."""
    keeps_less = direction(preservation[SMALL], preservation[LARGE], "less")
    varies_more = direction(diversity[SMALL], diversity[LARGE], "more")
    p, d = {r: mean_sd(v)[0] for r, v in preservation.items()}, {r: mean_sd(v)[0] for r, v in diversity.items()}
    return claim_status([keeps_less, varies_more]), [
        f"- the low-dimension bottleneck {said(keeps_less, 'kept less', 'keep less')} of the input: "
        f"{measure} {p[SMALL]:.4g} vs {p[LARGE]:.4g} with the default.",
        f"- the low-dimension bottleneck {said(varies_more, 'varied more', 'vary more')} across z: "
        f"diversity {d[SMALL]:.4g} vs {d[LARGE]:.4g} with the default.",
    ]


def run(s: ExperimentSettings, log=print) -> Path:
    s.validate()
    if s.samples < 2:
        raise ConfigError("the bottleneck experiment measures diversity: --samples must be at least 2")
    out = Path(s.out)
    return report(s, run_variants(s, variants(), out, samples=s.samples, log=log), out)


def report(s: ExperimentSettings, results: list[VariantResult], out: Path) -> Path:
    rows = result_rows(results)
    runs = [LARGE, SMALL]
    write_translation_outputs(out, rows, results, runs, s.task, s.seed0)
    m = s.preservation
    pres, div = final_values(rows, m), final_values(rows, "diversity")
    data = s.data_line()
    shapes = {LARGE: describe(s.size, *s.bottleneck("default")), SMALL: describe(s.size, *s.bottleneck("low"))}
    parts = [f"# {NAME}: the default vs the low-dimension bottleneck (arXiv 2411.10368, Figs. 9-12)", "",
             f"Data: {data}, {s.size}px, at most {s.budget:,} training images per run, batch {s.batch}, {s.seeds} "
             f"seed(s) from {s.seed0}. Measured with the EMA generator on {s.eval_images} held-out shape images, "
             f"{s.samples} latents each, at the end of training. {LARGE}: {shapes[LARGE]}; {SMALL}: {shapes[SMALL]}.",
             "", s.scale_line(), "", plateau_text(s), "",
             measures_table(rows, runs, measure_keys(s.task), results), ""]
    broken = collapse_reasons(results, runs)
    if broken:
        parts += [collapse_line(broken) + " Find settings under which both train, and run both with them.", ""]
    elif all(r in pres and r in div for r in runs):
        status, lines = verdict({r: pres[r] for r in runs}, {r: div[r] for r in runs}, m)
        parts += [f"**Claim {status} on this run**: the smaller bottleneck keeps less of "
                  "the input and varies more.", "", *lines]
        parts += difference_lines({m: pres, "diversity": div}, SMALL, LARGE, "low vs default", s.seeds)
    else:
        parts.append("Not every run finished: no verdict.")
    finish_summary(out, parts, results, s.seed0, [("measures over training", "measures.png"),
                                                  ("final translations", "samples.png")])
    return out

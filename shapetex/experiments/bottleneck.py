"""Experiment: the size of the bottleneck (arXiv 2411.10368, Figs. 9-12).

The same translation trained with the 16x16x128 and the 8x8x128 encoder output (`model.bottleneck_res` 16 vs 8;
at 32px the 16x16 bottleneck is one downsampling). Measured on held-out shape images: how much of the input the
output keeps (silhouette IoU on the built-in data, SSIM of edge maps on real data) and how much the outputs of one
input vary across z. The claim: the smaller bottleneck keeps less of the input and varies more.
"""

from __future__ import annotations

from pathlib import Path

from .report import beyond_spread, condition_summary, measure_keys, measures_table, write_translation_outputs
from .runner import ExperimentSettings, Variant, final_values, mean_sd, result_rows, run_variants

NAME = "bottleneck"
DEFAULT_BUDGET = 5000
LARGE, SMALL = "bottleneck-16x16", "bottleneck-8x8"


def _res(r: int):
    def edit(cfg) -> None:
        cfg.model["bottleneck_res"] = r

    return edit


def variants() -> list[Variant]:
    return [Variant(LARGE, edit=_res(16)), Variant(SMALL, edit=_res(8))]


def verdict(preservation: dict[str, float], diversity: dict[str, float], measure: str) -> tuple[bool, list[str]]:
    keeps_less = preservation[SMALL] < preservation[LARGE]
    varies_more = diversity[SMALL] > diversity[LARGE]
    return keeps_less and varies_more, [
        f"- the 8x8 bottleneck {'kept less' if keeps_less else 'did NOT keep less'} of the input: {measure} "
        f"{preservation[SMALL]:.4g} vs {preservation[LARGE]:.4g} with 16x16.",
        f"- the 8x8 bottleneck {'varied more' if varies_more else 'did NOT vary more'} across z: diversity "
        f"{diversity[SMALL]:.4g} vs {diversity[LARGE]:.4g} with 16x16.",
    ]


def run(s: ExperimentSettings, log=print) -> Path:
    s.validate()
    if s.samples < 2:
        raise ValueError("the bottleneck experiment measures diversity: --samples must be at least 2")
    out = Path(s.out)
    results = run_variants(s, variants(), out, samples=s.samples, log=log)
    rows = result_rows(results)
    runs = [LARGE, SMALL]
    write_translation_outputs(out, rows, results, runs, s.builtin, s.seed0)
    m = s.preservation
    pres, div = final_values(rows, m), final_values(rows, "diversity")
    data = "built-in shapes -> striped shapes" if s.builtin else f"{s.data[0]} -> {s.data[1]}"
    parts = [f"# {NAME}: 16x16x128 vs 8x8x128 bottleneck (arXiv 2411.10368, Figs. 9-12)", "",
             f"Data: {data}, {s.size}px, {s.budget} training images per run, batch {s.batch}, {s.seeds} seed(s) "
             f"from {s.seed0}. Measured with the EMA generator on {s.eval_images} held-out shape images, "
             f"{s.samples} latents each, at the end of training.", "",
             measures_table(rows, runs, measure_keys(s.builtin)), ""]
    if all(r in pres and r in div for r in runs):
        ok, lines = verdict({r: mean_sd(pres[r])[0] for r in runs}, {r: mean_sd(div[r])[0] for r in runs}, m)
        parts += [f"**Claim {'held' if ok else 'did NOT hold'} on this run**: the smaller bottleneck keeps less of "
                  "the input and varies more.", "", *lines]
        for key, vals in ((m, pres), ("diversity", div)):
            spread = beyond_spread(vals[SMALL], vals[LARGE])
            if spread:
                parts.append(f"- {key}, 8x8 vs 16x16: difference{spread}.")
        if s.seeds == 1:
            parts.append("- One seed only: a single run, not a distribution; use --seeds 3 for mean and spread.")
    else:
        parts.append("Not every run finished: no verdict.")
    parts += ["", "![measures over training](measures.png)", "", "![final translations](samples.png)", "",
              "## The two conditions (first seed)", ""]
    for r in results:
        if r.seed == s.seed0:
            parts += [f"### {r.name}", "", condition_summary(r.run_dir), ""]
    (out / "summary.md").write_text("\n".join(parts))
    return out

"""Experiment: the GAN as an autoencoder (arXiv 2411.10368, Fig. 4 and Fig. 5).

Three runs from the same initial generator:
- autoencoder: G trained on an L2 reconstruction loss (the baseline),
- gan-identical: the adversarial translator with the shape set as its texture set (D's real images are the
  very images G gets as input),
- gan-translate: the adversarial translator between two different sets.
The reconstruction MSE between input and the EMA generator's output is measured every K images, on a fixed set of
each run's training images (as the paper does) and on held-out images. The claim: gan-identical drives the error
down although it never sees a reconstruction loss, ending close to the autoencoder; gan-translate does not. The
verdict reads the training-image error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .report import (
    ONE_SEED,
    beyond_spread,
    finish_summary,
    fmt,
    markdown_table,
    plot_curves,
    progress_panel,
    save_grids,
    stop_column,
    write_csv,
)
from .runner import (
    ExperimentSettings,
    Variant,
    VariantResult,
    final_values,
    mean_sd,
    plateau_text,
    result_rows,
    run_variants,
)

NAME = "ae-vs-gan"
DEFAULT_BUDGET = 4000
RUNS = ("autoencoder", "gan-identical", "gan-translate")
COLUMNS = ["run", "seed", "images", "recon_mse_train", "recon_mse"]
KEY = "recon_mse_train"  # the verdict's quantity

DROP = 0.5  # gan-identical must end below this fraction of its starting error
CLOSE = 0.25  # ... and close at least 1 - CLOSE of the gap between gan-translate and the autoencoder
APART = 2.0  # gan-translate must end at least this many times above gan-identical


def variants() -> list[Variant]:
    return [Variant("autoencoder", "autoencoder"), Variant("gan-identical", settings={"data.texture_from_shape": True}),
            Variant("gan-translate")]


def verdict(start: dict[str, float], end: dict[str, float]) -> tuple[bool, list[str]]:
    """Did the claim hold? `start` and `end`: mean recon MSE per run at 0 images and at the end."""
    ae, same, trans = end["autoencoder"], end["gan-identical"], end["gan-translate"]
    drop = same < DROP * start["gan-identical"]
    gap = (same - ae) / (trans - ae) if trans > ae else float("inf")
    close = gap <= CLOSE
    apart = trans >= APART * same
    lines = [
        f"- gan-identical {'drove' if drop else 'did NOT drive'} its reconstruction error down: "
        f"{start['gan-identical']:.4g} -> {same:.4g} (needed below {DROP:g}x the start).",
        f"- gan-identical {'ended' if close else 'did NOT end'} close to the autoencoder: {same:.4g} vs {ae:.4g}; "
        f"it is {gap:.0%} of the way from the autoencoder to gan-translate (needed at most {CLOSE:.0%}).",
        f"- gan-translate {'stayed' if apart else 'did NOT stay'} well above: {trans:.4g}, "
        f"{trans / max(same, 1e-12):.1f}x gan-identical (needed at least {APART:g}x).",
    ]
    return drop and close and apart, lines


SAMPLES = 1  # latents per input: the claim is about reconstruction, not diversity


def run(s: ExperimentSettings, log=print) -> Path:
    s.validate()
    out = Path(s.out)
    s = replace(s, fid=False)  # this experiment's report has no FID column
    return report(s, run_variants(s, variants(), out, samples=SAMPLES, log=log), out)


def report(s: ExperimentSettings, results: list[VariantResult], out: Path) -> Path:
    rows = result_rows(results)
    write_csv(out / "results.csv", rows, COLUMNS)
    plot_curves(out / "recon_mse.png", rows, [KEY, "recon_mse"],
                [f"reconstruction MSE, {s.eval_images} training images", "reconstruction MSE, held-out images"],
                log_y=(KEY, "recon_mse"), runs=list(RUNS))
    first_seed = [r for r in results if r.seed == s.seed0]
    save_grids(out / "progress.png", {r.name: progress_panel(r.tracker) for r in first_seed},
               title=f"held-out inputs translated during training (seed {s.seed0}, first latent)")
    write_summary(out, s, rows, results)
    return out


def write_summary(out: Path, s: ExperimentSettings, rows: list[dict], results: list[VariantResult]) -> str:
    start, end = final_values(rows, KEY, first=True), final_values(rows, KEY)
    held = final_values(rows, "recon_mse")
    complete = all(r in end for r in RUNS)
    table = markdown_table(
        ["run", "recon MSE at the start", "at the end (training images)", "at the end (held-out)", "images",
         "stopped"],
        [[r, fmt(start[r]), fmt(end[r]), fmt(held[r]), stop_column(results, r)[0], stop_column(results, r)[1]]
         for r in RUNS if r in end])
    data = s.data_line()
    parts = [f"# {NAME}: does the GAN behave like an autoencoder? (arXiv 2411.10368, Fig. 4)", "",
             f"Data: {data}, {s.size}px, at most {s.budget:,} training images per run, batch {s.batch}, "
             f"{s.seeds} seed(s) from {s.seed0}; reconstruction MSE ([-1, 1] units) of the EMA generator on "
             f"{s.eval_images} of each run's training images and on {s.eval_images} held-out shape images, every "
             f"{s.every} images. All three runs of a seed start from the same generator weights.", "",
             s.scale_line(), "", plateau_text(s), "", table, ""]
    if complete:
        ok, lines = verdict({r: mean_sd(start[r])[0] for r in RUNS}, {r: mean_sd(end[r])[0] for r in RUNS})
        parts += [f"**Claim {'held' if ok else 'did NOT hold'}** (training-image error): with identical shape and "
                  "texture sets "
                  "the GAN drives the reconstruction error down without a reconstruction loss and ends close to the "
                  "autoencoder; translating between different sets does not.", "", *lines]
        spread = beyond_spread(end["gan-identical"], end["gan-translate"])
        if spread:
            parts.append(f"- gan-identical vs gan-translate at the end{spread}.")
        if s.seeds == 1:
            parts.append(ONE_SEED)
    else:
        parts.append("Not every run finished: no verdict.")
    return finish_summary(out, parts, results, s.seed0, [("reconstruction MSE", "recon_mse.png"),
                                                         ("outputs during training", "progress.png")],
                          skip=("autoencoder",))

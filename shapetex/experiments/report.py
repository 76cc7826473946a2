"""What the experiments write: CSV tables, PNG plots and grids (matplotlib, Agg), markdown pieces, and the
explanation of the paper's two conditions from a run's metrics.jsonl (`condition_summary`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from ..run_summary import condition_summary
from .runner import curves, final_values, mean_sd


# ---- tables ------------------------------------------------------------------------------------------------
def write_csv(path: str | Path, rows: list[dict], columns: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})
    return path


def fmt(values: list[float], digits: int = 4) -> str:
    """'m' for one seed, 'm ± sd (n seeds)' for several."""
    m, sd = mean_sd(values)
    if len(values) == 1:
        return f"{m:.{digits}g}"
    return f"{m:.{digits}g} ± {sd:.2g} (sd, {len(values)} seeds)"


def beyond_spread(a: list[float], b: list[float]) -> str:
    """Whether the gap between two arms' means exceeds their seed spreads; empty with one seed each."""
    if len(a) < 2 or len(b) < 2:
        return ""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return " (beyond the seed spread)" if abs(ma - mb) > sa + sb else " (within the seed spread: not conclusive)"


def direction(a: list[float], b: list[float], want: str) -> str:
    """Whether arm a's values are `want` ("less" or "more") than arm b's, judged against the seeds' spread:
    "yes" (the means differ that way by more than the two sds together, or in that direction with one seed
    each), "no" (the other way, beyond the spread), "not shown" (within the spread)."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    right = ma < mb if want == "less" else ma > mb
    if len(a) > 1 and len(b) > 1 and abs(ma - mb) <= sa + sb:
        return "not shown"
    return "yes" if right else "no"


def said(status: str, past: str, base: str) -> str:
    """A part's outcome in words: "kept less" (yes), "did NOT keep less" (no), "... not shown to keep less"."""
    return {"yes": past, "no": f"did NOT {base}"}.get(status, f"did not differ beyond the seed spread: not "
                                                             f"shown to {base}")


def claim_status(parts: list[str]) -> str:
    """A claim made of parts (each from `direction`): held when every part is yes, did NOT hold when any is no,
    else not shown."""
    if all(p == "yes" for p in parts):
        return "held"
    return "did NOT hold" if "no" in parts else "not shown (within the seed spread)"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---- plots -------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | Path, dpi: int) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_curves(path: str | Path, rows: list[dict], keys: list[str], titles: list[str] | None = None,
                log_y: tuple[str, ...] = (), runs: list[str] | None = None) -> Path:
    """One panel per key: the mean over seeds against training images per run, the band is ± one sd."""
    plt = _pyplot()
    ncols = len(keys) if len(keys) <= 3 else math.ceil(len(keys) / 2)
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    for ax in axes.flatten()[len(keys):]:
        ax.set_visible(False)
    for ax, key, title in zip(axes.flatten(), keys, titles or keys):
        data = curves(rows, key)
        for run in runs or list(data):
            if run not in data:
                continue
            xs, m, sd = data[run]
            line, = ax.plot(xs, m, marker="o", ms=3, label=run)
            lo = [a - b for a, b in zip(m, sd)]
            hi = [a + b for a, b in zip(m, sd)]
            if key in log_y:
                lo = [max(v, min(m) * 0.5) for v in lo]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        if key in log_y:
            ax.set_yscale("log")
        ax.set_xlabel("training images")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save_figure(fig, path, 110)


def _to_image(columns: list[torch.Tensor]) -> torch.Tensor:
    """Columns of N x 3 x H x W [-1, 1] images -> one H' x W' x 3 [0, 1] array: a row per input."""
    from torchvision.utils import make_grid

    n = columns[0].shape[0]
    stacked = torch.stack(columns, dim=1).reshape(n * len(columns), *columns[0].shape[1:])
    grid = make_grid(stacked.add(1).div(2).clamp(0, 1), nrow=len(columns), padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def save_grids(path: str | Path, panels: dict[str, tuple[list[torch.Tensor], list[str]]],
               title: str = "") -> Path:
    """Panels side by side (or stacked when wide): {panel title: (columns, column labels)}."""
    plt = _pyplot()
    items = list(panels.items())
    widest = max(len(cols) for _, (cols, _) in items)
    vertical = widest > 6
    n = len(items)
    h = items[0][1][0][0].shape[0]
    cell = 0.55 if h <= 8 else 0.4
    size = (widest * cell + 0.6, n * (h * cell + 0.9)) if vertical else (n * (widest * cell + 0.6), h * cell + 1.0)
    fig, axes = plt.subplots(n if vertical else 1, 1 if vertical else n, figsize=size, squeeze=False)
    for ax, (name, (cols, labels)) in zip(axes.flatten(), items):
        img = _to_image(cols)
        ax.imshow(img, interpolation="nearest")
        side = (img.shape[1] - 2) / len(cols)
        ax.set_xticks([2 + side * (i + 0.5) for i in range(len(cols))])
        ax.set_xticklabels(labels, fontsize=7, rotation=45 if vertical else 0)
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_figure(fig, path, 120)


def progress_panel(tracker) -> tuple[list[torch.Tensor], list[str]]:
    """The held-out inputs, then their translation (first latent) at each measurement point (the paper's Fig. 5)."""
    cols = [tracker.inputs[: tracker.grid]] + [img for _, img in tracker.snapshots]
    return cols, ["input"] + [_kimg(i) for i, _ in tracker.snapshots]


def samples_panel(tracker) -> tuple[list[torch.Tensor], list[str]]:
    """The held-out inputs, then their final translations for each latent."""
    out = tracker.last_outputs[: tracker.grid]
    return [tracker.inputs[: tracker.grid]] + list(out.unbind(1)), ["input"] + [f"z{k}" for k in range(out.shape[1])]


def _kimg(images: int) -> str:
    return f"{images / 1000:g}k" if images >= 1000 else str(images)


def stop_column(results, run: str) -> tuple[str, str]:
    """(training images per seed, why each seed's run stopped) for a summary table."""
    mine = [r for r in results if r.name == run]
    images = ", ".join(f"{r.tracker.rows[-1]['images']:,}" for r in mine if r.tracker.rows)
    return images, "; ".join(r.stopped.split(" at ")[0] for r in mine)


def measures_table(rows: list[dict], runs: list[str], keys: list[str], results=None) -> str:
    """Markdown: each run's final value of each key (mean ± sd over seeds), and with `results` how long each
    seed trained and why it stopped."""
    finals = {k: final_values(rows, k) for k in keys}
    extra = ["images", "stopped"] if results is not None else []
    return markdown_table(["run", *keys, *extra], [
        [r, *(fmt(finals[k][r]) if r in finals[k] else "-" for k in keys),
         *(stop_column(results, r) if results is not None else ())] for r in runs])


END_ONLY = ("fid", "kid")  # measured once, at the end of a run: a table column, not a curve


def measure_keys(task: str | None) -> list[str]:
    """The columns measured by the bottleneck and dataset-size experiments (`task`: the built-in one, or None
    for photos)."""
    spread = "hue_spread" if task == "colours" else "angle_spread"
    return (["silhouette", "diversity", spread, "texture", "input_match", "recon_mse_train", "recon_mse"]
            if task else ["structure_ssim", "diversity", "input_match", *END_ONLY, "recon_mse_train", "recon_mse"])


MEASURE_TITLES = {
    "silhouette": "content kept: silhouette IoU (input vs output)",
    "structure_ssim": "content kept: SSIM of edge maps (input vs output)",
    "diversity": "diversity: mean pairwise |difference| across z",
    "texture": "texture taken (colours: share of outputs with a texture-set colour; stripes: score, real = 1)",
    "input_match": "follows its input (own input closer than another; 0.5 = ignores it)",
    "fid": "FID of the final outputs vs the texture folder",
    "kid": "KID of the final outputs vs the texture folder",
    "recon_mse": "reconstruction MSE, held-out images",
    "recon_mse_train": "reconstruction MSE, training images",
    "angle_spread": "stripe-angle spread across z (degrees)",
    "hue_spread": "fill-hue spread across z (degrees)",
}


def write_translation_outputs(out: Path, rows: list[dict], results, runs: list[str], task: str | None,
                              seed0: int) -> None:
    """results.csv, measures.png (curves of every measure) and samples.png (the first seed's final outputs)."""
    keys = measure_keys(task)
    write_csv(out / "results.csv", rows, ["run", "seed", "images", *keys])
    curves = [k for k in keys if k not in END_ONLY]
    plot_curves(out / "measures.png", rows, curves, [MEASURE_TITLES[k] for k in curves],
                log_y=("recon_mse", "recon_mse_train"), runs=runs)
    first = {r.name: r for r in results if r.seed == seed0}
    panels = {name: samples_panel(first[name].tracker) for name in runs if name in first}
    if panels:
        save_grids(out / "samples.png", panels,
                   title=f"held-out inputs and their final translations, one column per latent (seed {seed0})")


def difference_lines(values: dict[str, dict[str, list[float]]], a: str, b: str, label: str, seeds: int) -> list[str]:
    """Per measure, whether runs `a` and `b` differ beyond their seeds' spread; and a warning for one seed."""
    lines = []
    for key, vals in values.items():
        spread = beyond_spread(vals[a], vals[b])
        if spread:
            lines.append(f"- {key}, {label}: difference{spread}.")
    if seeds == 1:
        lines.append(ONE_SEED)
    return lines


ONE_SEED = "- One seed only: a single run, not a distribution; use --seeds 3 for mean and spread."


def finish_summary(out: Path, parts: list[str], results, seed0: int, figures: list[tuple[str, str]],
                   skip: tuple[str, ...] = ()) -> str:
    """The end every experiment's summary.md shares: its figures, then the two conditions of each first-seed
    run (except `skip`); writes out/summary.md and returns its text."""
    for alt, name in figures:
        parts += ["", f"![{alt}]({name})"]
    parts += ["", "## The two conditions (first seed)", ""]
    for r in results:
        if r.seed == seed0 and r.name not in skip:
            parts += [f"### {r.name}", "", condition_summary(r.run_dir), ""]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text

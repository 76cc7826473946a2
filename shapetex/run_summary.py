"""What a run's summary.md says about its held-out monitors: for the adversarial methods the paper's two
conditions (condition_summary), for the others the monitors each method declares (`Method.monitor_keys`), first
and last (monitor_summary). Read from metrics.jsonl; used by the methods' `summary` hooks and by the
experiments' reports.

condition_summary names its two monitors itself (CONDITION_MONITORS): it explains those two measurements, the
paper's conditions, and the adversarial methods log them under these names (their `monitor_keys`)."""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

from .run import Run

# the paper's two conditions, as the adversarial methods' monitors log them: can G reconstruct its input, can D
# tell real from generated
CONDITION_MONITORS = ("recon_mse", "d_accuracy")


def _settings(run: Run) -> dict | None:
    """The run's saved settings (None when it has none readable)."""
    try:
        return run.read_config()
    except (OSError, ValueError):  # missing, unreadable, damaged (DataError is a ValueError)
        return None


def _run_kind(run: Run) -> str | None:
    """'autoencoder', 'identical' (D's real images are the shape set), 'translate', or None (no readable config)."""
    try:
        cfg = _settings(run)
        data = cfg["data"]
    except (KeyError, TypeError):
        return None
    if cfg.get("method") == "autoencoder":
        return "autoencoder"
    if data.get("texture_from_shape"):
        return "identical"
    if data.get("source") == "folders" and data.get("shape") and data.get("texture"):
        same = Path(data["shape"]).resolve() == Path(data["texture"]).resolve()
        return "identical" if same else "translate"
    return "translate" if data.get("source") == "builtin" else None


def monitor_images(data: dict | None) -> str:
    """What the monitors' 'held-out' images are, from a run's data settings (its saved settings' "data")."""
    if not data:
        return "held-out images"
    if data.get("source") == "builtin":
        return "held-out images (drawn apart from the training set)"
    if data.get("holdout_folders"):
        return f"held-out images ({', '.join(data['holdout_folders'])}, never trained on)"
    if int(data.get("holdout") or 0) > 0:
        return f"held-out images (the last {data['holdout']} of each set, never trained on)"
    return ("the first training images (data.holdout is 0, so nothing is held out: set data.holdout=N to measure "
            "on images the run never trained on)")


def data_settings(run_dir: str | Path) -> dict | None:
    """The run's data settings as its saved settings hold them (None when it has none readable)."""
    try:
        return _settings(Run(run_dir))["data"]
    except (KeyError, TypeError):
        return None


def _span(points: list[tuple[int, float]], digits: int) -> str:
    (i0, v0), (i1, v1) = points[0], points[-1]
    if len(points) == 1:
        return f"{v0:.{digits}g} at {i0} images"
    return f"{v0:.{digits}g} at {i0} images -> {v1:.{digits}g} at {i1} images"


def _trend(values: list[float], relative: bool, tolerance: float) -> str:
    """'falling', 'rising' or 'flat': the mean of the last third against the mean of the first third."""
    if len(values) < 2:
        return "one value only"
    k = max(1, len(values) // 3)
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    change = (last - first) / max(abs(first), 1e-12) if relative else last - first
    if abs(change) <= tolerance:
        return "flat"
    return "falling" if change < 0 else "rising"


def condition_summary(run_dir: str | Path) -> str:
    """Markdown explaining the two monitors of an adversarial run (arXiv 2411.10368: the GAN objective acts like
    an autoencoder's when (1) G can reconstruct its input and (2) D can tell real images from generated ones):
    first and last values, the trend, and what they say. Reads `metrics.jsonl` in `run_dir`: the rows holding
    either monitor, one per image count (a point logged twice, by a run from before resumes cut the file: the
    later row), since the trend reads the whole series."""
    run = Run(run_dir)
    rows = run.metrics_rows(having=CONDITION_MONITORS, last_per_image=True)
    if not rows:
        return (f"No condition monitors in {run.metrics} (none logged: is train.monitor_every 0, or "
                "does the method have no `monitors`?).")
    lines = [f"Condition monitors on {monitor_images(data_settings(run_dir))} (arXiv 2411.10368: adversarial "
             "training behaves like an autoencoder when G can reconstruct its input and D can tell real from "
             "generated):"]
    mse = [(r["images"], r["recon_mse"]) for r in rows if isinstance(r.get("recon_mse"), (int, float))]
    mse = [(i, v) for i, v in mse if math.isfinite(v)]
    if mse:
        values = [v for _, v in mse]
        trend = _trend(values, relative=True, tolerance=0.1)
        what = {"falling": "the outputs are moving toward the inputs",
                "rising": "the outputs are moving away from the inputs",
                "flat": "the distance between outputs and inputs is not changing much"}.get(trend, "")
        kind = _run_kind(run)
        if kind == "autoencoder":
            meaning = " This run is trained on the reconstruction loss itself: the reference for condition 1."
        elif kind is None:
            meaning = (" When shape and texture sets are the same, a falling value means G is reconstructing its "
                       "input without any reconstruction loss (condition 1); when translating, it measures how far "
                       "the output moves from the input, and should settle above zero.")
        elif kind == "identical":
            meaning = (" Here the shape set is also the texture set, so a falling value means G is learning to "
                       "reconstruct its input with no reconstruction loss at all (condition 1)"
                       + (": it is." if trend == "falling" else ": it is not yet."))
        else:
            meaning = (" Here G translates between two different sets, so the value measures how far the output "
                       "moves from the input (it should settle above zero: the output takes the texture set's look "
                       "while keeping the content); it cannot show condition 1 directly.")
        lines.append(
            f"- recon_mse (mean squared error between held-out shape inputs and G's outputs, [-1, 1] units): "
            f"{_span(mse, 4)} (min {min(values):.4g}); {trend}" + (f": {what}." if what else ".") + meaning)
    else:
        lines.append("- recon_mse: not logged.")
    acc = [(r["images"], r["d_accuracy"]) for r in rows if isinstance(r.get("d_accuracy"), (int, float))]
    if acc:
        values = [v for _, v in acc]
        trend = _trend(values, relative=False, tolerance=0.05)
        last = values[-1]
        if last >= 0.9:
            state = "D separates real from generated almost perfectly: condition 2 holds"
        elif last >= 0.65:
            state = "D separates them partly: condition 2 holds only in part"
        else:
            state = ("D is near chance (0.5): it cannot tell them apart, so it gives G little to learn from, "
                     "or G's outputs already match the real set")
        lines.append(
            f"- d_accuracy (fraction of held-out real images scored > 0 and generated ones < 0; 0.5 is chance): "
            f"{_span(acc, 3)}; {trend}. {state}.")
    else:
        lines.append("- d_accuracy: not logged (the method has no discriminator, or no held-out real images).")
    return "\n".join(lines)




def monitor_summary(rows: list[dict], data: dict | None = None, *, keys: Collection[str]) -> str:
    """First and last value of each held-out monitor (the methods' own validation scores, e.g. pix2pix's
    val_l1): for methods whose monitors are not the paper's two conditions. `keys`: the method's monitors
    (`Method.monitor_keys`), each a key or the start of keys (cycle_l1_ for cycle_l1_A and cycle_l1_B);
    `rows`: metrics.jsonl's, in file order."""
    keys = tuple(keys)
    logged = [r for r in rows if any(k.startswith(keys) for k in r)]
    if not logged:
        return "No held-out monitors were logged (no held-out images: data.holdout is 0, or the run stopped early)."
    where = monitor_images(data) if data else "held-out images, never trained on"
    lines = [f"Monitors on {where}, first and last:"]
    for key in sorted({k for r in logged for k in r if k.startswith(keys)}):
        values = [(r["images"], r[key]) for r in logged if isinstance(r.get(key), (int, float))]
        if values:
            (i0, v0), (i1, v1) = values[0], values[-1]
            first = f"{v0:.4g} at {i0:,} images -> " if len(values) > 1 else ""
            lines.append(f"- {key}: {first}{v1:.4g} at {i1:,} images")
    return "\n".join(lines)

"""`shapetex report RUN`: one self-contained HTML page about a run (report.html in the run folder).

Config, loss and monitor curves (matplotlib PNGs), sample grids over training, final metrics and any
summaries the run wrote; every picture is embedded as base64, so the page can be mailed or archived alone.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import time
from pathlib import Path

from .run import Run
from .tb import tag_for

MAX_GRIDS = 12


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, cls: str = "") -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="{_b64_png(data)}">'


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _table(rows: list[tuple[str, object]], head: tuple[str, str] = ("setting", "value")) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curve_groups(rows: list[dict]) -> dict[str, list[str]]:
    """Numeric series of metrics.jsonl, grouped as in TensorBoard: loss, monitor, train, speed."""
    keys: list[str] = []
    for row in rows:
        for k, v in row.items():
            if k not in keys and k not in ("images", "step") and _finite(v):
                keys.append(k)
    groups: dict[str, list[str]] = {}
    for k in keys:
        if k == "skipped_steps" and not any(r.get(k) for r in rows):
            continue  # all zero: nothing to see
        groups.setdefault(tag_for(k).split("/")[0], []).append(k)
    return {g: groups[g] for g in ("loss", "monitor", "train", "speed") if g in groups}


def plot_curves(rows: list[dict], keys: list[str], title: str) -> bytes:
    """One PNG: a panel per key (value against images seen)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    fig = Figure(figsize=(4.2 * cols, 2.8 * nrows), dpi=90)
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        pts = [(r["images"], r[key]) for r in rows if _finite(r.get(key))]  # an Inf would break the axes
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(pts) < 20 else None, markersize=3, linewidth=1.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("images seen", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pick_grids(grids: list[tuple[int, Path]], limit: int) -> list[tuple[int, Path]]:
    """At most `limit` grids, evenly spread over training, always the first and the last."""
    if len(grids) <= limit:
        return grids
    idx = sorted({round(i * (len(grids) - 1) / (limit - 1)) for i in range(limit)})
    return [grids[i] for i in idx]


def _table_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _markdown_block(text: str) -> str:
    """The few Markdown forms run summaries use: headings, list items, tables, paragraphs, images (dropped)."""
    out, in_list, table = [], False, []

    def flush_table() -> None:
        if not table:
            return
        rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]  # drop the --- row
        head, body = _table_cells(rows[0]), rows[1:]
        cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        lines = [f"<table><thead><tr>{cells}</tr></thead><tbody>"]
        for r in body:
            lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _table_cells(r)) + "</tr>")
        out.append("\n".join(lines) + "</tbody></table>")
        table.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|"):
            table.append(s)
            continue
        flush_table()
        if s.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(s[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if not s or s.startswith("!["):
            continue
        if s.startswith("#"):
            out.append(f"<h4>{html.escape(s.lstrip('#').strip())}</h4>")
        else:
            out.append(f"<p>{html.escape(s)}</p>")
    flush_table()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f3f3f3; text-align: left; } td:first-child { font-family: ui-monospace, monospace; }
img.plot { max-width: 100%; } figure { display: inline-block; margin: .5em; vertical-align: top; }
figure img { max-width: 560px; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; text-align: center; } .muted { color: #777; }
pre { font-size: .85em; margin: 0; }
"""


def build_report(run_dir: str | Path, out: str | Path | None = None, max_grids: int = MAX_GRIDS) -> Path:
    """Write the run's HTML report (default <run>/report.html); returns its path."""
    folder = Run(run_dir)
    run = folder.path
    cfg = folder.read_config()
    rows = folder.metrics_rows(last_per_image=True)  # each point once, in order of images
    grids = folder.sample_grids()
    last = rows[-1] if rows else {}
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    title = f"{cfg.get('method', '?')} run: {run.name}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="muted">{html.escape(str(run.resolve()))} &middot; report written '
             f"{time.strftime('%Y-%m-%d %H:%M')} &middot; {last.get('images', 0)} images seen of a budget of "
             f"{train.get('budget', '?')}</p>"]

    parts.append("<h2>Final metrics</h2>")
    if last:
        parts.append(_table([(k, v) for k, v in last.items()], ("metric (last log line)", "value")))
    else:
        parts.append(f'<p class="muted">no {folder.metrics.name} yet</p>')
    for extra in sorted(run.glob("*.json")):
        if extra.name == folder.config.name or extra.name.startswith("."):  # dot-files: a write cut short
            continue
        try:
            data = json.loads(extra.read_text())
        except (ValueError, OSError, RecursionError):
            continue
        if isinstance(data, dict):
            parts.append(f"<h3>{html.escape(extra.name)}</h3>{_table(_flatten(data), ('key', 'value'))}")
    for md in sorted(run.glob("*.md")):
        parts.append(f"<h3>{html.escape(md.name)}</h3>{_markdown_block(md.read_text())}")

    parts.append("<h2>Curves</h2>")
    groups = curve_groups(rows)
    if not groups:
        parts.append('<p class="muted">nothing logged yet</p>')
    names = {"loss": "losses", "monitor": "condition monitors", "train": "other training values",
             "speed": "images per second"}
    for group, keys in groups.items():
        parts.append(_img(plot_curves(rows, keys, names[group]), f"{names[group]} plot", "plot"))

    parts.append("<h2>Sample grids over training</h2>")
    if grids:
        shown = pick_grids(grids, max_grids)
        parts.append(f'<p class="muted">rows: held-out inputs; columns: the input, then its translations '
                     f"(see the method). {len(shown)} of {len(grids)} grids.</p>")
        for images, path in shown:
            parts.append(f"<figure>{_img(path.read_bytes(), f'sample grid at {images} images')}"
                         f"<figcaption>{images} images</figcaption></figure>")
    else:
        parts.append('<p class="muted">no sample grids (train.sample_every was 0?)</p>')
    for extra in ("results.png",):
        if (run / extra).exists():
            parts.append(f"<figure>{_img((run / extra).read_bytes(), extra)}"
                         f"<figcaption>{extra}</figcaption></figure>")

    parts.append("<h2>Configuration</h2>")
    parts.append(_table(_flatten(cfg)))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    out = Path(out) if out else run / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


# ---- command line --------------------------------------------------------------------------------------
def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run folder")
    p.add_argument("--out", help="output file (default RUN/report.html)")
    p.add_argument("--max-grids", type=int, default=MAX_GRIDS, help=f"sample grids shown (default {MAX_GRIDS})")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard events for the run to RUN/tb (needs tensorboard)")


def run_report(args: argparse.Namespace) -> int:
    path = build_report(args.run_dir, args.out, args.max_grids)
    print(f"wrote {path}")
    if args.tensorboard:
        from .tb import backfill

        folder = backfill(args.run_dir)
        print(f"wrote TensorBoard events to {folder}" if folder
              else 'tensorboard is not installed: no events (pip install -e ".[tb]" installs it)')
    return 0

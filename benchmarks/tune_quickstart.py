"""Measure one quickstart setting: train the quickstart's run with overrides, print and log its scores.

    python benchmarks/tune_quickstart.py --name fourier32 --set model.fourier_features=32 --threads 1

Appends one JSON line (settings, wall time, the quickstart table's rows) to --log, so the choices in
`shapetex.quickstart.quickstart_config` can be traced to measured runs (docs/quickstart_tuning.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from shapetex.config import apply_override
from shapetex.metrics.builtin_scores import TASK_SCORES
from shapetex.quickstart import Z_SAMPLES, format_table, quickstart_config, score_run
from shapetex.train import Trainer


def _records(log: str) -> list[dict]:
    records = [json.loads(line) for line in Path(log).read_text().splitlines()]
    for r in records:
        r.setdefault("task", "stripes")  # logged before the colours task existed
    return records


def table(log: str) -> str:
    """The logged runs as markdown tables, one per task (the translator's row of each)."""
    blocks = []
    for task in TASK_SCORES:
        runs = [r for r in _records(log) if r["task"] == task]
        if not runs:
            continue
        cols = TASK_SCORES[task].columns
        lines = [f"| run | settings | seed | train s | {' | '.join(c.title.format(k=Z_SAMPLES) for c in cols)} |",
                 "| --- | --- | --- | --- |" + " --- |" * len(cols)]
        for r in runs:
            t = r["rows"]["translator (trained)"]
            cells = [format(t[c.key], c.fmt) if c.key in t else "-" for c in cols]  # "-": logged before the column
            lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(defaults)'} | {r['seed']} | "
                         f"{r['train_s']:.0f} | " + " | ".join(cells) + " |")
        blocks.append(f"{task} task\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def _mean_sd(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return format(mean, fmt)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5  # sample sd, as the experiments use
    return f"{format(mean, fmt)} ± {format(sd, fmt)}"


def seed_table(log: str) -> str:
    """One row per distinct (task, settings): the translator's scores as mean ± sample sd over the logged seeds."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for r in _records(log):
        groups.setdefault((r["task"], tuple(r["overrides"])), []).append(r)
    blocks = []
    for task in TASK_SCORES:
        cols = TASK_SCORES[task].columns
        lines = [f"| settings | seeds | {' | '.join(c.title.format(k=Z_SAMPLES) for c in cols)} |",
                 "| --- | --- |" + " --- |" * len(cols)]
        for (t, overrides), runs in groups.items():
            if t != task:
                continue
            rows = [r["rows"]["translator (trained)"] for r in runs]
            cells = [_mean_sd([x[c.key] for x in rows if c.key in x], c.fmt) for c in cols]
            seeds = ", ".join(str(r["seed"]) for r in runs)
            lines.append(f"| {' '.join(overrides) or '(defaults)'} | {seeds} | " + " | ".join(cells) + " |")
        if len(lines) > 2:
            blocks.append(f"{task} task\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def curve_csv(run_dirs: list[str]) -> str:
    """The translator's scores at each checkpoint of each run (CSV: run, seed, images, the task's columns)."""
    from shapetex.checkpoint import list_checkpoints
    from shapetex.config import RunConfig

    lines, header = [], None
    for run in map(Path, run_dirs):
        cfg = RunConfig.load(run / "config.json")
        cols = [c.key for c in TASK_SCORES[cfg.data.builtin_task].columns]
        if header is None:
            header = ["run", "task", "seed", "images", *cols]
            lines.append(",".join(header))
        for ckpt in list_checkpoints(run):
            t = score_run(ckpt, None, cfg.train.seed)["translator (trained)"]
            images = int(ckpt.name.split("-")[1])
            lines.append(",".join([run.name, cfg.data.builtin_task, str(cfg.train.seed), str(images),
                                   *(f"{t[c]:.4f}" for c in cols)]))
            print(lines[-1], flush=True, file=sys.stderr)  # progress: scoring takes a few seconds a checkpoint
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", action="store_true", help="print the logged runs of --log as a table and stop")
    p.add_argument("--by-settings", action="store_true", help="with --table: one row per distinct settings, "
                   "mean ± sd over the logged seeds")
    p.add_argument("--rescore", action="store_true", help="score every logged run's folder again with the "
                   "current scoring (untrained-generator row kept) and rewrite --log")
    p.add_argument("--name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", choices=sorted(TASK_SCORES), default="colours", help="built-in task (default colours)")
    p.add_argument("--curve", nargs="+", metavar="RUN_DIR",
                   help="score every checkpoint of these run folders (train with --set train.checkpoint_every=1000 "
                        "--set train.keep_checkpoints=99) and print one CSV row per checkpoint")
    p.add_argument("--out", default="runs/tune")
    p.add_argument("--log", default="runs/tune/results.jsonl")
    a = p.parse_args()
    if a.table:
        print(seed_table(a.log) if a.by_settings else table(a.log))
        return
    if a.curve:
        print(curve_csv(a.curve))
        return
    if a.rescore:
        records = _records(a.log)
        for r in records:
            folder = Path(a.out) / r["name"]
            if (folder / "checkpoints").exists():
                untrained = r["rows"].get("untrained generator")
                r["rows"] = score_run(folder, None, r["seed"])
                if untrained:
                    r["rows"]["untrained generator"] = untrained
        Path(a.log).write_text("".join(json.dumps(r) + "\n" for r in records))
        print(table(a.log))
        return
    if not a.name:
        p.error("--name is required to train")
    cfg = quickstart_config(str(Path(a.out) / a.name), task=a.task)
    cfg.train.threads, cfg.train.seed = a.threads, a.seed
    for item in a.overrides:
        key, _, value = item.partition("=")
        apply_override(cfg, key, value)
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    trainer = Trainer(cfg, overwrite=True)  # a tuning run of the same name trains afresh
    untrained = copy.deepcopy(trainer.method.G).cpu().eval()
    trainer.run()
    train_s = time.perf_counter() - start
    rows = score_run(cfg.out, untrained, cfg.train.seed)
    total_s = time.perf_counter() - start
    print(format_table(rows, a.task))
    print(f"{a.name}: train {train_s:.0f} s, total {total_s:.0f} s")
    record = {"name": a.name, "task": a.task, "overrides": a.overrides, "seed": a.seed, "threads": a.threads,
              "train_s": round(train_s, 1), "total_s": round(total_s, 1), "rows": rows}
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    with open(a.log, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

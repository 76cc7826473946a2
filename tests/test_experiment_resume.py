"""`shapetex experiment ... --resume`: finished runs are read back, not trained again; others train."""

import csv

from test_experiments import TINY_MODEL

from shapetex.experiments import bottleneck
from shapetex.experiments.finished import META
from shapetex.experiments.runner import ExperimentSettings


def settings(tmp_path, **kw):
    base = dict(out=str(tmp_path / "exp"), budget=32, every=16, batch=16, eval_images=8, grid_images=4,
                builtin_count=64, threads=1, overrides=TINY_MODEL, plateau=False)
    return ExperimentSettings(**{**base, **kw})


def results(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_resume_reads_finished_runs_back_and_trains_only_the_others(tmp_path):
    first = bottleneck.run(settings(tmp_path), log=lambda m: None)
    rows = results(first)
    weights = sorted((first / "runs").rglob("weights.safetensors"))
    assert len(weights) == 2
    stamps = [w.stat().st_mtime_ns for w in weights]
    summary = (first / "summary.md").read_text()

    lines = []
    again = bottleneck.run(settings(tmp_path, resume=True), log=lines.append)
    # nothing trained: same checkpoints, same rows, the same report
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert results(again) == rows
    assert (again / "summary.md").read_text() == summary

    # one run's measurements gone (as if killed before it finished): only that run trains again
    (first / "runs" / bottleneck.SMALL / "seed0" / META).unlink()
    bottleneck.run(settings(tmp_path, resume=True), log=lines.append)
    after = sorted((first / "runs").rglob("weights.safetensors"))
    changed = [w.parents[3].name for w, t in zip(after, stamps) if w.stat().st_mtime_ns != t]
    assert changed == [bottleneck.SMALL]
    assert results(first) == rows  # training again from the same seed gives the same measurements

    # other measurement settings: the saved rows do not describe this experiment, so both runs train
    lines.clear()
    bottleneck.run(settings(tmp_path, resume=True, eval_images=12), log=lines.append)
    assert {r["run"] for r in results(first)} == {bottleneck.LARGE, bottleneck.SMALL}
    assert all(w.stat().st_mtime_ns != t for w, t in zip(sorted((first / "runs").rglob("weights.safetensors")),
                                                          stamps))


def test_without_resume_every_run_trains(tmp_path):
    first = bottleneck.run(settings(tmp_path), log=lambda m: None)
    stamps = [w.stat().st_mtime_ns for w in sorted((first / "runs").rglob("weights.safetensors"))]
    bottleneck.run(settings(tmp_path), log=lambda m: None)
    assert all(w.stat().st_mtime_ns != t for w, t in zip(sorted((first / "runs").rglob("weights.safetensors")),
                                                          stamps))

"""`shapetex experiment ... --resume`: finished runs are read back, not trained again; others train."""

import csv
import math
from pathlib import Path

import pytest
import torch
from test_experiments import TINY_MODEL

from shapetex.experiments import bottleneck, finished, runner
from shapetex.experiments.runner import ExperimentSettings


def settings(tmp_path, **kw):
    base = dict(out=str(tmp_path / "exp"), budget=32, every=16, batch=16, eval_images=8, grid_images=4,
                builtin_count=64, threads=1, overrides=TINY_MODEL, plateau=False)
    return ExperimentSettings(**{**base, **kw})


def results(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def trained(monkeypatch):
    """The runs that really train, by name, in order."""
    names = []
    real = runner.train_tracked

    def counting(cfg, *args, **kw):
        names.append(Path(cfg.out).parent.name)
        return real(cfg, *args, **kw)

    monkeypatch.setattr(runner, "train_tracked", counting)
    return names


def test_resume_reads_finished_runs_back_and_trains_only_the_others(tmp_path, trained):
    out = bottleneck.run(settings(tmp_path), log=lambda m: None)
    assert sorted(trained) == sorted([bottleneck.LARGE, bottleneck.SMALL])
    rows, summary = results(out), (out / "summary.md").read_text()
    weights = sorted((out / "runs").rglob("weights.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]

    # where and how it runs is not part of what it computes: other threads, still read back
    trained.clear()
    bottleneck.run(settings(tmp_path, resume=True, threads=2), log=lambda m: None)
    assert trained == []
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert results(out) == rows and (out / "summary.md").read_text() == summary

    # one run's measurements gone (as if killed before it finished): only that run trains again, and from the
    # same seed it measures the same
    (out / "runs" / bottleneck.SMALL / "seed0" / finished.META).unlink()
    bottleneck.run(settings(tmp_path, resume=True), log=lambda m: None)
    assert trained == [bottleneck.SMALL]
    assert results(out) == rows

    # other measurement settings: the saved rows do not describe this experiment, so both runs train
    trained.clear()
    bottleneck.run(settings(tmp_path, resume=True, eval_images=12), log=lambda m: None)
    assert sorted(trained) == sorted([bottleneck.LARGE, bottleneck.SMALL])


def test_without_resume_every_run_trains(tmp_path, trained):
    bottleneck.run(settings(tmp_path), log=lambda m: None)
    bottleneck.run(settings(tmp_path), log=lambda m: None)
    assert len(trained) == 4


def test_saved_measurements_round_trip_and_refuse_what_does_not_match(tmp_path):
    key = {"version": 1, "config": {"model": {"bottleneck_res": 8}}, "measure": {"every": 16}}
    from safetensors.torch import load_file, save_file

    from shapetex.data.images import uint8_to_float

    # outputs on the 8-bit grid (what generated images are once shown): stored as uint8, read back exactly
    grid = uint8_to_float(torch.randint(0, 256, (4, 2, 3, 8, 8), dtype=torch.uint8))
    rows = [{"images": 0, "recon_mse": 0.5, "input_match": float("nan")}, {"images": 16, "recon_mse": 0.25}]
    done = finished.Finished(rows, [(0, grid[:, 0]), (16, grid[:, 1])], grid, "cap (16 images)", 1.5)
    finished.save(tmp_path, key, done)
    assert {t.dtype for t in load_file(str(tmp_path / finished.TENSORS)).values()} == {torch.uint8}
    back, why = finished.load(tmp_path, key)
    assert why is None and back.stopped == "cap (16 images)" and back.seconds == 1.5
    assert math.isnan(back.rows[0]["input_match"]) and back.rows[1] == rows[1]  # NaN is stored as null
    assert [n for n, _ in back.snapshots] == [0, 16] and torch.equal(back.snapshots[1][1], grid[:, 1])
    assert torch.equal(back.last_grid, grid)
    # a file written before 8-bit storage (float32 outputs) still reads back as it was
    old = {"snapshot0": grid[:, 0].contiguous(), "snapshot1": grid[:, 1].contiguous(), "last_grid": grid}
    save_file(old, str(tmp_path / finished.TENSORS))
    back, _ = finished.load(tmp_path, key)
    assert torch.equal(back.snapshots[1][1], grid[:, 1]) and torch.equal(back.last_grid, grid)
    finished.save(tmp_path, key, done)

    assert finished.load(tmp_path, {**key, "version": 2}) == (None, "measured under other settings")
    (tmp_path / finished.TENSORS).write_bytes((tmp_path / finished.TENSORS).read_bytes()[:40])  # torn
    back, why = finished.load(tmp_path, key)
    assert back is None and why.startswith("unreadable measurements")
    finished.forget(tmp_path)
    assert finished.load(tmp_path, key) == (None, None)  # not finished


def test_kept_results_alone_rebuild_the_report_on_resume_without_training(tmp_path, trained):
    """What --keep-results copies (no weights) is enough for --resume elsewhere: nothing trains, same results."""
    import shutil

    from shapetex.experiments.keep import keep_results

    out = bottleneck.run(settings(tmp_path), log=lambda m: None)
    rows, summary = results(out), (out / "summary.md").read_text()
    kept = tmp_path / "committed"
    files = keep_results(out, kept)
    names = {f.name for f in files}
    assert {"results.csv", "summary.md", finished.META, finished.TENSORS, "config.json"} <= names
    assert not any(f.suffix == ".safetensors" and f.name != finished.TENSORS for f in files)  # no weights
    assert not list(kept.rglob("checkpoints"))
    shutil.rmtree(out)  # another machine: only the kept files

    trained.clear()
    rebuilt = bottleneck.run(settings(tmp_path, resume=True, out=str(kept)), log=lambda m: None)
    assert trained == []
    assert results(rebuilt) == rows and (rebuilt / "summary.md").read_text() == summary

"""A run folder survives what happens to real runs: kills inside checkpoint writes, a full disk, training twice
into one folder, a resume with the wrong settings, a torn metrics line, divergence."""

import errno
import json
import shutil

import pytest
import torch
from helpers import exact_config, tiny_config
from safetensors.torch import load_file

from shapetex import checkpoint
from shapetex.checkpoint import find_checkpoint, list_checkpoints
from shapetex.cli import main
from shapetex.train import Trainer


class Killed(BaseException):
    """Stands in for SIGKILL: no `except Exception` cleanup runs, the files stay as they were."""


POINTS = ["weights", "optim", "state", "manifest", "old-aside", "renamed-in", "pruned-aside"]


def _kill_at(monkeypatch, point, nth=1):
    seen = []

    def hook(p):
        if p == point:
            seen.append(p)
            if len(seen) == nth:
                raise Killed(p)

    monkeypatch.setattr(checkpoint, "_after", hook)


def _images(ckpt):
    return int(ckpt.name.split("-")[1])


def _weights(ckpt):
    return load_file(str(ckpt / "weights.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, checkpoints at 8, 16, 24 (keep 2): the weights every resumed run must reach."""
    run = tmp_path_factory.mktemp("ref") / "run"
    cfg = _cfg(run)
    cfg.train.keep_checkpoints = 0  # keep all
    Trainer(cfg).run()
    return {_images(c): _weights(c) for c in list_checkpoints(run)}


def _cfg(run):
    cfg = exact_config(run, budget=24)
    cfg.train.checkpoint_every = 8
    cfg.train.keep_checkpoints = 2
    return cfg


@pytest.mark.parametrize("point", POINTS)
def test_kill_inside_a_checkpoint_write_never_loses_the_newest_complete_one(tmp_path, monkeypatch, point,
                                                                             reference, capsys):
    run = tmp_path / "run"
    tr = Trainer(_cfg(run))
    # the third save (24 images) prunes; "old-aside" only happens when a point is saved again (below)
    _kill_at(monkeypatch, point, nth=1 if point == "pruned-aside" else 3 if point != "old-aside" else 1)
    if point == "old-aside":
        tr.run(stop_after_images=16)
        tr._saved_at = None  # save 16 again, as the old code did for a budget that is a multiple of the interval
        with pytest.raises(Killed):
            tr.save()
    else:
        with pytest.raises(Killed):
            tr.run()
    before = {_images(c) for c in list_checkpoints(run)}
    monkeypatch.setattr(checkpoint, "_after", lambda p: None)
    tr.release()  # the process "died": the kernel drops its lock on the run folder
    resumed = Trainer(_cfg(run), resume=True)
    out = capsys.readouterr().out
    # killed before its manifest, the save being written is lost and the one before it is the newest; from the
    # manifest on, the new one is complete somewhere and is the one resumed
    expected = {"weights": 16, "optim": 16, "state": 16, "old-aside": 16}.get(point, 24)
    assert resumed.images_seen == expected and max(before) <= expected, out
    if point in ("manifest", "old-aside"):
        assert "restored checkpoint" in out
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], "leftovers not cleaned"
    for ckpt in list_checkpoints(run):
        assert checkpoint.is_complete(ckpt)
        w = _weights(ckpt)
        for k, v in reference[_images(ckpt)].items():
            torch.testing.assert_close(w[k], v, rtol=0, atol=0)
    resumed.run()
    final = _weights(find_checkpoint(run))
    for k, v in reference[24].items():
        torch.testing.assert_close(final[k], v, rtol=0, atol=0)


def test_a_checkpoint_with_a_file_missing_is_skipped_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(_cfg(run)).run(stop_after_images=16)
    newest = list_checkpoints(run)[-1]
    (newest / "optim.safetensors").unlink()  # what a kill inside the old code's delete left
    resumed = Trainer(_cfg(run), resume=True)
    assert resumed.images_seen == 8
    assert f"skipping incomplete checkpoint {newest}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="incomplete"):
        find_checkpoint(newest)


def test_a_full_disk_leaves_no_partial_checkpoint_and_a_one_line_error(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    tr = Trainer(_cfg(run))
    tr.run(stop_after_images=8)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    tr._saved_at = None
    with pytest.raises(checkpoint.CheckpointWriteError, match="No space left.*--resume"):
        tr.save()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0000000008"]
    # an older version's leftover is cleaned when the run is resumed
    shutil.copytree(run / "checkpoints" / "ckpt-0000000008", run / "checkpoints" / ".tmp-ckpt-0000000016-99")
    (run / "checkpoints" / ".tmp-ckpt-0000000016-99" / "complete.json").unlink()
    monkeypatch.undo()
    tr.release()  # the process ended: its lock on the run folder with it
    Trainer(_cfg(run), resume=True)
    assert "removed" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0000000008"]


def _cli_args(run, *extra):
    return ["train", "--data", "builtin", "--size", "32", "--batch", "8", "--budget", "16", "--out", str(run),
            "--set", "data.builtin_count=64", "--set", "train.checkpoint_every=8", "--set", "train.sample_every=0",
            "--set", "train.monitor_every=0", "--set", "model.g_channel_max=32", "--set", "model.d_channel_max=32",
            "--set", "model.z_dim=16", "--set", "model.w_dim=32", "--set", "model.mapping_layers=1",
            "--set", "train.threads=1", "--set", "train.log_every=8", *extra]


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and "tb" not in p.parts}


def test_training_twice_into_one_folder_is_refused_unless_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_cli_args(run)) == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert main(_cli_args(run, "--set", "train.seed=5")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already holds a run" in err and "--resume" in err
    assert _snapshot(run) == before
    assert main(_cli_args(run, "--overwrite", "--set", "train.seed=5")) == 0
    assert [c.name for c in list_checkpoints(run)] == ["ckpt-0000000008", "ckpt-0000000016"]
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 5
    assert [json.loads(line)["images"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [8, 16]


@pytest.mark.parametrize("wrong", [["--size", "64"], ["--batch", "16"]])
def test_a_refused_resume_changes_nothing(tmp_path, capsys, wrong):
    run = tmp_path / "run"
    assert main(_cli_args(run)) == 0
    before = _snapshot(run)
    capsys.readouterr()
    args = _cli_args(run, "--resume", str(run))
    args[args.index(wrong[0]) + 1] = wrong[1]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"resume with {wrong[0]}" in err
    assert _snapshot(run) == before
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "none.png")]) == 2  # loads fine
    assert "--input not found" in capsys.readouterr().err


def test_metrics_after_a_resume_do_not_repeat(tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(run)
    cfg.train.checkpoint_every, cfg.train.log_every = 16, 8
    Trainer(cfg).run()  # rows at 8, 16, 24; checkpoints at 16 and 24
    shutil.rmtree(run / "checkpoints" / "ckpt-0000000024")  # as if killed after the row at 24, before its save
    resumed = Trainer(cfg, resume=True)
    assert resumed.images_seen == 16
    resumed.run()
    images = [json.loads(line)["images"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert images == [8, 16, 24]


def test_torn_metrics_line_is_skipped_with_a_warning_naming_the_file(tmp_path, caplog):
    from shapetex import runlog

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"images": 8, "loss": 1.0}\n{"images": 16, "lo')
    assert runlog.read_rows(path) == [{"images": 8, "loss": 1.0}]
    assert str(path) in caplog.text and "line 2" in caplog.text
    run = tmp_path / "run"
    tr = Trainer(tiny_config(run, budget=8))
    tr.run()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"images": 16, "step"')
    tr.write_summary()  # the old code raised "Expecting ':' delimiter" here


def test_divergence_is_one_line_logged_as_null_and_writes_no_broken_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    args = _cli_args(run, "--set", "model.lr_g=1000.0", "--set", "model.lr_d=1000.0", "--set", "train.max_bad_steps=3")
    args[args.index("--budget") + 1] = "400"
    assert main(args) == 2
    err = capsys.readouterr().err.split("\r")[-1]  # after the progress bar
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err, err
    assert "shapetex train: error: training diverged in" in err and str(run) in err, err
    good = list_checkpoints(run)
    assert (str(good[-1]) in err) if good else ("no checkpoint was written" in err)
    for ckpt in good:
        assert all(torch.isfinite(v).all() for v in _weights(ckpt).values() if v.is_floating_point())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(v is None for r in rows for v in r.values()), rows  # a non-finite loss reads as missing, not 0.0


def test_no_checkpoint_is_written_after_a_non_finite_step_or_with_non_finite_weights(tmp_path, capsys):
    run = tmp_path / "run"
    tr = Trainer(_cfg(run))
    tr.run(stop_after_images=8)
    good = list_checkpoints(run)
    tr.images_seen, tr.engine.consecutive_bad = 16, 1  # the last step was skipped as non-finite
    assert tr.save() is None
    tr.engine.consecutive_bad = 0
    with torch.no_grad():
        next(tr.method.G.parameters()).fill_(float("nan"))
    assert tr.save() is None
    assert list_checkpoints(run) == good and "no checkpoint at 16 images" in capsys.readouterr().out
    assert "last good checkpoint is " + str(good[-1]) in tr._diverged_message()

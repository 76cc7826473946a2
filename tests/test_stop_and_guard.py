"""Nothing lost, nothing hung: --overwrite validates before it deletes, a run folder is locked while a run writes
it, SIGTERM ends translate and experiment promptly with nothing half-written, and settings files and folder
links that would hang or exhaust memory are refused. Real processes and signals throughout."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import decodes
from PIL import Image

from shapetex.cli import main
from shapetex.data.images import list_images

TINY = ["--set", "model.g_channel_max=32", "--set", "model.d_channel_max=32", "--set", "model.z_dim=16",
        "--set", "model.w_dim=32", "--set", "model.mapping_layers=1"]


def _train_args(run, *extra, data=("--data", "builtin")):
    return ["train", *data, "--size", "32", "--batch", "8", "--budget", "16", "--out", str(run),
            "--set", "data.builtin_count=64", "--set", "train.checkpoint_every=8", "--set", "train.sample_every=0",
            "--set", "train.monitor_every=0", "--set", "train.threads=1", *TINY, *extra]


def _held(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith("."))


def _shapetex(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "shapetex", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for(predicate, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


# ---- 1: --overwrite validates every input before it clears anything ----------------------------------------
def test_overwrite_with_a_bad_input_leaves_the_old_run_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run)) == 0
    before = _held(run)
    assert "config.json" in before and any(p.startswith("checkpoints") for p in before)
    assert main(_train_args(run, "--overwrite", data=("--shape", str(tmp_path / "nope"), "--texture",
                                                      str(tmp_path / "nope")))) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["import", "--pth", str(tmp_path / "typo.pth"), "--out", str(run), "--overwrite"]) == 2
    assert _held(run) == before  # both refusals left every file of the run


# ---- 2: one run at a time in a run folder ------------------------------------------------------------------
def test_a_run_folder_is_locked_while_a_process_writes_it_and_a_dead_holder_frees_it(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom shapetex.run_folder import RunLock\n"
                               f"lock = RunLock({str(run)!r})\nprint('held', flush=True)\ntime.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_train_args(run)) == 2
        err = capsys.readouterr().err
        assert f"in use by another shapetex run (process {holder.pid} on" in err and "--out" in err
        assert main(_train_args(run, "--resume", str(run))) == 2  # a second resume is refused the same way
        assert not (run / "config.json").exists() and not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
    assert (run / ".shapetex.lock").exists()
    assert main(_train_args(run)) == 0  # the dead holder's lock is stale: the kernel dropped it
    assert main(_train_args(run, "--resume", str(run), "--budget", "24")) == 0  # released at the end of a run


def test_two_trainings_started_together_into_one_folder_give_one_run(tmp_path):
    run = tmp_path / "run"
    procs = [_shapetex(*_train_args(run, "--budget", "48", "--set", "train.log_every=8")) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[2] == 2)
    assert "already holds a run" in refused[1] or "in use by another shapetex run" in refused[1]
    images = [int(line.split('"images": ')[1].split(",")[0]) for line in
              (run / "metrics.jsonl").read_text().splitlines()]
    assert images == sorted(set(images)) and images[-1] == 48  # one run's rows, none twice


# ---- 3, 4: SIGTERM and SIGKILL under translate and experiment ----------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(_train_args(run)) == 0
    return run


def _inputs(folder: Path, n: int, side: int = 96) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"im{i:03d}.png")
    return folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_translate_leaves_only_whole_images_and_a_rerun_finishes(tmp_path, trained, sig):
    src, out = _inputs(tmp_path / "in", 60), tmp_path / "out"
    args = ["translate", "--checkpoint", str(trained), "--input", str(src), "--out", str(out), "--samples", "4",
            "--batch", "1"]
    p = _shapetex(*args)
    _wait_for(lambda: out.exists() and len(list(out.rglob("*.png"))) >= 4, 120, "the first outputs")
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)  # promptly: within the image being translated
    written = [f for f in out.rglob("*.png") if not f.name.startswith(".")]
    assert written and all(decodes(f) for f in written)
    if sig == signal.SIGTERM:
        assert p.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err
        assert not [f for f in out.rglob(".*")]  # the write in progress was removed, not left behind
    else:
        assert p.returncode == -signal.SIGKILL
    assert main(args + ["--overwrite"]) == 0
    assert len([f for f in out.rglob("*.png") if not f.name.startswith(".")]) == 60 * 4


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_ends_an_experiment_promptly_with_its_checkpoint_and_how_to_resume(tmp_path, jobs):
    out = tmp_path / "exp"
    p = _shapetex("experiment", "ae-vs-gan", "--data", "builtin", "--budget", "100000", "--every", "64",
                  "--batch", "8", "--eval-images", "16", "--builtin-count", "64", "--no-plateau", "--jobs", str(jobs),
                  "--threads", "1", "--out", str(out), *TINY)
    _wait_for(lambda: len(list(out.rglob("checkpoints/ckpt-*"))) >= jobs, 240, "the first checkpoints")
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert time.monotonic() - start < 60, "SIGTERM did not end the experiment promptly"
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err.splitlines()[-1]
    assert not [q for q in psutil_children(p.pid)]  # no worker left running


def psutil_children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc: no extra dependency)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


# ---- 5, 6: nothing read or walked forever ------------------------------------------------------------------
def test_a_device_fifo_or_huge_settings_file_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2 << 20))
    for path in ("/dev/zero", str(fifo), str(huge)):
        p = _shapetex("train", "--config", path)
        _, err = p.communicate(timeout=60)  # a FIFO would block forever, /dev/zero read until out of memory
        assert p.returncode == 2 and len(err.strip().splitlines()) == 1 and path in err


def test_links_back_to_a_folder_above_are_walked_once(tmp_path):
    folder = _inputs(tmp_path / "imgs", 10, side=8)
    (folder / "loop1").symlink_to(".")
    (folder / "loop2").symlink_to("..")
    other = _inputs(tmp_path / "other", 3, side=8)
    (folder / "more").symlink_to(other)  # a link to another folder still counts its images once
    files = list_images(folder)
    assert len(files) == 13


def test_a_stop_raised_in_a_worker_process_reaches_the_parent_as_it_was():
    import pickle

    from shapetex.stopping import StopRequested, exit_status

    stop = pickle.loads(pickle.dumps(StopRequested(signal.SIGTERM, "stopped on request: run at 64 images")))
    assert isinstance(stop, KeyboardInterrupt) and exit_status(stop) == 128 + signal.SIGTERM
    assert str(stop) == "stopped on request: run at 64 images"


def test_a_stop_noted_by_one_experiment_does_not_refuse_the_next_in_the_same_process(tmp_path):
    from shapetex.experiments.ae_vs_gan import variants
    from shapetex.experiments.runner import ExperimentSettings, run_variants
    from shapetex.stopping import note_stop, requested

    note_stop(signal.SIGINT)  # as a Ctrl-C caught by the trainer of an earlier experiment leaves it
    s = ExperimentSettings(out=str(tmp_path), budget=8, every=8, batch=8, eval_images=8, builtin_count=16,
                           threads=1, plateau=False, overrides=[a for a in TINY if a != "--set"])
    results = run_variants(s, variants()[2:], tmp_path, samples=1, log=lambda m: None)
    assert requested() is None and results[0].tracker.rows[-1]["images"] == 8

"""Fault injection in a loop (slow): train, translate and experiment are killed (SIGKILL) or stopped (SIGTERM) at
random moments, and train writes onto a disk that fills up; after each fault nothing complete may be lost:
every checkpoint listed loads, metrics.jsonl parses, every image under its final name decodes, and the command
run again (resume, or translate --overwrite) finishes. Real processes, signals and a real full file system.

    python -m pytest -q -m slow tests/test_fault_injection.py -s      # prints one line per fault
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import decodes
from PIL import Image

from shapetex.api import Translator
from shapetex.checkpoint import list_checkpoints
from shapetex.runlog import read_rows

pytestmark = pytest.mark.slow
ROUNDS = 4
TINY = ["--set", "model.g_channel_max=32", "--set", "model.d_channel_max=32", "--set", "model.z_dim=16",
        "--set", "model.w_dim=32", "--set", "model.mapping_layers=1", "--set", "train.threads=1"]


def _train(run: Path, budget: int, *extra: str) -> list[str]:
    return ["train", "--data", "builtin", "--size", "32", "--batch", "8", "--budget", str(budget), "--out", str(run),
            "--set", "data.builtin_count=64", "--set", "train.checkpoint_every=16", "--set", "train.sample_every=32",
            "--set", "train.log_every=8", "--set", "train.monitor_every=0", *TINY, *extra]


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "shapetex", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _fault(args: list[str], sig: int, after: float) -> tuple[int, str]:
    """Start the command, send `sig` after `after` seconds, return (exit status, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "shapetex", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(after)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)  # a stop must come promptly
    return p.returncode, err


def _nothing_complete_lost(run: Path) -> int:
    """Every checkpoint listed loads; metrics.jsonl parses with increasing image counts. Returns the newest's
    image count (0 without one)."""
    found = list_checkpoints(run)
    for ckpt in found:
        Translator.load(ckpt, device="cpu")
    if (run / "metrics.jsonl").exists():
        images = [r["images"] for r in read_rows(run / "metrics.jsonl")]
        assert images == sorted(images)
    return int(found[-1].name.split("-")[1]) if found else 0


def test_train_killed_or_stopped_at_random_resumes_to_its_budget(tmp_path):
    rng = random.Random(0)
    for i in range(ROUNDS):
        run, sig = tmp_path / f"r{i}", (signal.SIGKILL, signal.SIGTERM)[i % 2]
        code, err = _fault(_train(run, 10_000), sig, rng.uniform(2, 12))
        started = (run / "config.json").exists()
        if sig == signal.SIGTERM and started:
            assert code == 128 + signal.SIGTERM and f"--resume {run}" in err.strip().splitlines()[-1], err
        elif sig == signal.SIGTERM:  # before training began; while Python still imports, SIGTERM ends it at once
            assert code in (128 + signal.SIGTERM, -signal.SIGTERM), err
        newest = _nothing_complete_lost(run)
        print(f"train round {i}: {signal.Signals(sig).name}, newest checkpoint at {newest} images")
        done = _run(_train(run, newest + 32, *(["--resume", str(run)] if started else [])))
        assert done.returncode == 0, done.stderr
        assert _nothing_complete_lost(run) == newest + 32


def test_translate_killed_or_stopped_at_random_leaves_whole_images(tmp_path):
    rng = random.Random(1)
    run = tmp_path / "run"
    assert _run(_train(run, 16)).returncode == 0
    src = tmp_path / "in"
    src.mkdir()
    pixels = np.random.default_rng(0)
    for k in range(40):
        Image.fromarray(pixels.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(src / f"{k:03d}.png")
    for i in range(ROUNDS):
        out, sig = tmp_path / f"out{i}", (signal.SIGKILL, signal.SIGTERM)[i % 2]
        args = ["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(out), "--samples", "4",
                "--batch", "1"]
        code, _ = _fault(args, sig, rng.uniform(3, 8))
        written = [f for f in out.rglob("*.png") if not f.name.startswith(".")] if out.exists() else []
        assert all(decodes(f) for f in written)
        print(f"translate round {i}: {signal.Signals(sig).name} (exit {code}), {len(written)} whole images")
        assert _run(args + ["--overwrite"]).returncode == 0
        assert len([f for f in out.rglob("*.png") if not f.name.startswith(".")]) == 160


def test_experiment_stopped_at_random_ends_promptly_and_resumes(tmp_path):
    rng = random.Random(2)
    out = tmp_path / "exp"
    args = ["experiment", "ae-vs-gan", "--data", "builtin", "--budget", "128", "--every", "32", "--batch", "8",
            "--eval-images", "16", "--builtin-count", "64", "--no-plateau", "--threads", "1", "--out", str(out),
            *TINY]
    for i in range(2):
        sig = signal.SIGTERM
        code, err = _fault(args + (["--resume"] if i else []), sig, rng.uniform(8, 20))
        for run in out.glob("runs/*/seed*"):
            _nothing_complete_lost(run)
        print(f"experiment round {i}: {signal.Signals(sig).name} (exit {code})")
        assert code in (0, 128 + signal.SIGTERM), err
    done = _run(args + ["--resume"], timeout=900)
    assert done.returncode == 0, done.stderr
    assert (out / "summary.md").exists()


def _small_disk(path: Path, megabytes: int) -> bool:
    path.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_disk_that_fills_up_keeps_the_newest_complete_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    if not _small_disk(disk, 3):
        pytest.skip("cannot mount a small tmpfs here (needs root and a kernel that allows it)")
    try:
        run = disk / "run"
        done = _run(_train(run, 10_000, "--set", "train.keep_checkpoints=0"))
        assert done.returncode == 2
        last = done.stderr.strip().splitlines()[-1]
        assert "No space left" in last and "--resume" in last and str(run) in last, last
        assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
        newest = _nothing_complete_lost(run)
        print(f"disk full: newest complete checkpoint at {newest} images; {last}")
        assert newest > 0
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)

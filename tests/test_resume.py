"""Save, kill, resume: a run killed mid-way and resumed ends with the same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import exact_config, tiny_config
from safetensors.torch import load_file

from shapetex.checkpoint import find_checkpoint, list_checkpoints, load_checkpoint
from shapetex.train import Trainer


def _weights(run_dir):
    return load_file(str(find_checkpoint(run_dir) / "weights.safetensors"))


def test_stop_and_resume_matches_uninterrupted_run(tmp_path):
    full = Trainer(exact_config(tmp_path / "full"))
    full.run()
    part = Trainer(exact_config(tmp_path / "part"))
    part.run(stop_after_images=24)  # like a kill right after a checkpoint
    assert part.images_seen == 24
    part.release()  # the process "died": the kernel drops its lock on the run folder
    resumed = Trainer(exact_config(tmp_path / "part"), resume=True)
    assert resumed.images_seen == 24 and resumed.step == 3
    resumed.run()
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys() and any(k.startswith("G_ema.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run", budget=16))
    tr.run()
    ckpt = find_checkpoint(tmp_path / "run")
    assert sorted(p.name for p in ckpt.iterdir()) == ["complete.json", "config.json", "optim.safetensors", "state.json",
                                                      "weights.safetensors"]
    fresh = Trainer(tiny_config(tmp_path / "other", budget=16))
    load_checkpoint(ckpt, fresh.method.networks(), fresh.engine.optimizers)
    for name, opt in tr.engine.optimizers.items():
        s1, s2 = opt.state_dict(), fresh.engine.optimizers[name].state_dict()
        assert s1["param_groups"] == s2["param_groups"]
        for pid in s1["state"]:
            for key, value in s1["state"][pid].items():
                torch.testing.assert_close(value, s2["state"][pid][key])


def test_killed_process_resumes_from_last_checkpoint(tmp_path):
    """A real `shapetex train` process is SIGKILLed after its first checkpoint; --resume finishes the run
    and gives the same weights as a run that was never interrupted."""
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "shapetex", "train", "--data", "builtin", "--size", "32", "--batch", "8",
            "--budget", "400", "--out", str(run), "--set", "data.builtin_count=64",
            "--set", "train.checkpoint_every=16",
            "--set", "train.sample_every=0", "--set", "train.monitor_every=0", "--set", "model.g_channel_max=32",
            "--set", "model.d_channel_max=32", "--set", "model.z_dim=16", "--set", "model.w_dim=32",
            "--set", "model.mapping_layers=1", "--set", "train.threads=1"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(run)) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list_checkpoints(run)
    assert done, "no checkpoint was written before the kill"
    killed_at = int(done[-1].name.split("-")[1])
    assert 0 < killed_at < 400
    # finish the run with a smaller budget than planned so the test stays short
    budget_at = args.index("--budget") + 1
    resume_args = args[:budget_at] + [str(killed_at + 16)] + args[budget_at + 1:] + ["--resume", str(run)]
    resumed = subprocess.run(resume_args, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    ref = tmp_path / "ref"
    ref_args = [a if a != str(run) else str(ref) for a in args]
    ref_args[ref_args.index("--budget") + 1] = str(killed_at + 16)
    subprocess.run(ref_args, check=True, capture_output=True, timeout=300)
    a, b = _weights(run), _weights(ref)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_time_cap_stops_training_and_its_clock_survives_a_resume(tmp_path):
    cfg = tiny_config(tmp_path / "capped", budget=10_000)
    cfg.train.max_minutes = 1e-6  # 60 microseconds: over after the first step
    tr = Trainer(cfg)
    result = tr.run()
    assert result["time_capped"] and tr.images_seen == cfg.train.batch
    state = json.loads((find_checkpoint(tmp_path / "capped") / "state.json").read_text())
    assert state["counters"]["train_seconds"] > 0
    cfg.train.max_minutes = 0.0  # lifting the cap on resume trains on, with the clock carried over
    cfg.train.budget = 3 * cfg.train.batch
    resumed = Trainer(cfg, resume=True)
    assert resumed.train_seconds == pytest.approx(state["counters"]["train_seconds"])
    out = resumed.run()
    assert not out["time_capped"] and resumed.images_seen == 3 * cfg.train.batch
    assert out["train_seconds"] > state["counters"]["train_seconds"]

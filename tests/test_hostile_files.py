"""Hostile or unlucky run files, settings and folders (issue 34, items 7-14): each ends in one line (exit 2) or
is skipped and counted, never a traceback and never a silently wrong result. The runs are real tiny trainings."""

import json
import shutil

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image

from shapetex.checkpoint import MANIFEST
from shapetex.cli import main
from shapetex.train import Trainer


def _cli_train(*extra):
    return ["train", "--size", "32", "--batch", "8", "--budget", "16", "--set", "data.builtin_count=64",
            "--set", "train.checkpoint_every=8", "--set", "train.sample_every=0", "--set", "train.monitor_every=0",
            "--set", "model.g_channel_max=32", "--set", "model.d_channel_max=32", "--set", "model.z_dim=16",
            "--set", "model.w_dim=32", "--set", "model.mapping_layers=1", "--set", "train.threads=1",
            "--set", "train.log_every=8", *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real tiny run: checkpoints at 8 and 16 images, metrics rows at 8 and 16."""
    run = tmp_path_factory.mktemp("trained") / "run"
    cfg = tiny_config(run, budget=16)
    cfg.train.checkpoint_every = 8
    Trainer(cfg).run()
    return run


@pytest.fixture()
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.split("\r")[-1].splitlines() if line.strip() and "%|" not in line]  # no bar
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _rewrite(ckpt, name, data: bytes) -> None:
    """Replace one file of a checkpoint and update its manifest, as a crafted checkpoint would be."""
    (ckpt / name).write_bytes(data)
    manifest = json.loads((ckpt / MANIFEST).read_text())
    manifest["files"][name] = len(data)
    (ckpt / MANIFEST).write_text(json.dumps(manifest))


def _resume(run, *extra):
    return main(["train", "--resume", str(run), "--budget", "24", *extra])


# ---- item 7: an unreadable image among the first of a training folder -----------------------------------
def _folder(path, count, bad_at=None):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        f = path / f"{i:03d}.png"
        if i == bad_at:
            f.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        else:
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(f)


@pytest.mark.parametrize("holdout, bad_at", [(0, 0), (4, 11)])
def test_an_unreadable_training_image_is_skipped_and_counted(tmp_path, capsys, holdout, bad_at):
    _folder(tmp_path / "shape", 12, bad_at=bad_at)  # bad_at 0: among the sample images; 11: the held-out ones
    _folder(tmp_path / "texture", 12)
    args = _cli_train("--shape", str(tmp_path / "shape"), "--texture", str(tmp_path / "texture"),
                      "--out", str(tmp_path / "run"), "--set", f"data.holdout={holdout}")
    args[args.index("--budget") + 1] = "8"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"1 unreadable skipped ({tmp_path / 'shape' / f'{bad_at:03d}.png'})" in out, out

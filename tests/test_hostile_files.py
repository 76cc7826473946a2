"""Hostile or unlucky run files, settings and folders (issue 34, items 7-14): each ends in one line (exit 2) or
is skipped and counted, never a traceback and never a silently wrong result. The runs are real tiny trainings."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import StatsFeatures, save_torchscript, tiny_config
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shapetex import checkpoint
from shapetex.checkpoint import MANIFEST, list_checkpoints
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


# ---- item 8: crafted run files ---------------------------------------------------------------------
STATES = {
    "no counters": lambda s: {k: v for k, v in s.items() if k != "counters"},
    "images_seen as text": lambda s: {**s, "counters": {**s["counters"], "images_seen": "16"}},
    "global_batch null": lambda s: {**s, "counters": {**s["counters"], "global_batch": None}},
    "a list": lambda s: [s],
    "nested 100000 deep": lambda s: "DEEP",
}


@pytest.mark.parametrize("kind", list(STATES))
def test_a_crafted_state_json_refuses_the_resume_in_one_line(run, capsys, kind):
    ckpt = list_checkpoints(run)[-1]
    state = STATES[kind](json.loads((ckpt / "state.json").read_text()))
    text = "[" * 100_000 + "]" * 100_000 if state == "DEEP" else json.dumps(state)
    _rewrite(ckpt, "state.json", text.encode())
    assert _resume(run) == 2
    err = _one_line(capsys)
    assert str(ckpt / "state.json") in err and "use another checkpoint" in err, err


def test_optimizer_tensors_of_the_wrong_shape_refuse_the_resume_in_one_line(run, capsys):
    ckpt = list_checkpoints(run)[-1]
    tensors = load_file(str(ckpt / "optim.safetensors"))
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = tensors[key].flatten().contiguous()  # same bytes, another shape: the manifest still holds
    save_file(tensors, str(ckpt / "optim.safetensors"))
    assert _resume(run) == 2
    err = _one_line(capsys)
    assert str(ckpt) in err and "shape" in err and "use another checkpoint" in err, err


BAD_ROWS = ['{"images": null, "loss": 1}', '{"images": [8], "loss": 1}', '{"images": 1e999, "loss": 1}',
            "[" * 100_000 + "]" * 100_000, '{"images": 16, "loss_g": 1e999}']


def test_crafted_metrics_rows_are_skipped_with_a_warning_on_resume_and_in_report(run, caplog):
    with open(run / "metrics.jsonl", "a") as f:  # after the run's one row (16 images)
        f.write("\n".join(BAD_ROWS) + "\n")
    assert main(["report", str(run)]) == 0
    assert f"{run / 'metrics.jsonl'} line 2 has images None, not a count of images, skipped" in caplog.text
    assert "line 5 is nested too deeply" in caplog.text and (run / "report.html").exists()
    assert _resume(run) == 0  # the run goes on: the malformed rows are dropped
    images = [json.loads(line)["images"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert images == [16, 16, 24]


@pytest.mark.parametrize("text", ["[1, 2]", "null", "[" * 100_000 + "]" * 100_000], ids=["list", "null", "deep"])
def test_report_on_a_config_json_that_is_not_an_object_is_one_line(run, capsys, text):
    (run / "config.json").write_text(text)
    assert main(["report", str(run)]) == 2
    err = _one_line(capsys)
    assert str(run / "config.json") in err and "checkpoints/ckpt-*" in err, err


# ---- item 9: settings that passed validation and then crashed -----------------------------------------
@pytest.mark.parametrize("extra, named", [(["--set", "train.device=tpu"], "train.device"),
                                          (["--device", "cuda:99"], "cuda:99"),
                                          (["--set", "model.z_dim=-5"], "model.z_dim"),
                                          (["--set", "model.z_dim=100000000"], "model.z_dim"),
                                          (["--config", "NESTED"], "not valid YAML")],
                         ids=["tpu", "cuda:99", "z_dim -5", "z_dim 1e8", "nested config"])
def test_settings_that_cannot_work_are_refused_before_training(tmp_path, capsys, extra, named):
    if "NESTED" in extra:
        nested = tmp_path / "nested.yaml"
        nested.write_text("train:\n  budget: " + "[" * 5000 + "]" * 5000 + "\n")
        extra = ["--config", str(nested)]
    assert main(_cli_train("--data", "builtin", "--out", str(tmp_path / "run"), *extra)) == 2
    assert named in _one_line(capsys)
    assert not (tmp_path / "run").exists()


# ---- item 10: CPU out of memory -------------------------------------------------------------------------
OOM_CHILD = """
import resource, runpy, sys
import torch  # imported before the limit: the limit is for the work, not for loading libraries
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
sys.argv = ["shapetex", *sys.argv[1:]]
runpy.run_module("shapetex", run_name="__main__")
"""


def test_cpu_out_of_memory_is_one_line(run, tmp_path):
    Image.new("RGB", (4000, 4000), (200, 40, 40)).save(tmp_path / "big.png")  # ~2 GB per 32-channel activation
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", OOM_CHILD, "translate", "--checkpoint", str(run), "--input",
                           str(tmp_path / "big.png"), "--native", "--out", str(tmp_path / "out"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "out of memory: lower --batch" in proc.stderr, proc.stderr[-2000:]


def test_the_cpu_allocators_error_reads_as_out_of_memory():
    from shapetex.cli import describe_error

    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**62, dtype=torch.uint8)  # more than any machine: PyTorch's own RuntimeError
    assert describe_error(caught.value).startswith("out of memory")


# ---- item 11: a full disk while writing a checkpoint -----------------------------------------------------
def test_a_full_disk_in_safetensors_names_the_checkpoint_and_leaves_no_partial_copy(tmp_path, monkeypatch, capsys):
    def full(tensors, filename, *a, **k):
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)  # what got written before the disk filled
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                              'message: "No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_file", full)  # safetensors' own function, as it fails on a full disk
    run = tmp_path / "run"
    assert main(_cli_train("--data", "builtin", "--out", str(run))) == 2
    err = _one_line(capsys)
    assert str(run / "checkpoints" / "ckpt-0000000008") in err and f"--resume {run}" in err, err
    assert list((run / "checkpoints").iterdir()) == []


# ---- item 12: a file name that is not UTF-8 ---------------------------------------------------------------
def test_a_non_utf8_input_name_is_translated_and_shown_in_the_index(run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (20, 20), (30, 60, 90)).save(src / "ok.png")
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    Image.new("RGB", (20, 20), (90, 60, 30)).save(src / odd)
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(out)]) == 0
    assert (out / "ok.png").exists() and (out / os.fsdecode(b"caf\xe9.png")).exists()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "caf%E9.png" in page and "caf\ufffd.png" in page and "ok.png" in page


# ---- item 13: non-finite weights ----------------------------------------------------------------------------
def _poison(ckpt) -> None:
    weights = load_file(str(ckpt / "weights.safetensors"))
    key = next(k for k in weights if k.startswith("G_ema.") and weights[k].is_floating_point())
    weights[key] = torch.full_like(weights[key], float("nan"))  # same size: the manifest still holds
    save_file(weights, str(ckpt / "weights.safetensors"))


def test_non_finite_weights_are_refused_when_loaded(run, tmp_path, capsys):
    ckpt = list_checkpoints(run)[-1]
    _poison(ckpt)
    Image.new("RGB", (20, 20), (30, 60, 90)).save(tmp_path / "in.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png"), "--out",
                 str(tmp_path / "out")]) == 2
    err = _one_line(capsys)
    assert str(ckpt) in err and "non-finite" in err and not (tmp_path / "out" / "in.png").exists()
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "non-finite" in _one_line(capsys)
    assert _resume(run) == 2
    err = _one_line(capsys)
    assert str(ckpt) in err and "non-finite" in err and "earlier checkpoint" in err


def test_export_fails_its_check_when_the_outputs_are_nan(run, tmp_path):
    from shapetex.api import Translator
    from shapetex.export import export

    t = Translator.load(run, device="cpu")
    with torch.no_grad():
        next(t.method.G_ema.parameters()).fill_(float("nan"))  # a NaN comparison must not pass the tolerance
    with pytest.raises(RuntimeError, match="differs from PyTorch by nan"):
        export(t, tmp_path / "m.onnx", "onnx", verbose=False)


# ---- item 14: scores on a handful of images -----------------------------------------------------------------
def test_fid_on_too_few_images_warns_and_says_how_many(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for folder in ("fake", "real"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    net = save_torchscript(StatsFeatures(), tmp_path / "stats.pt")
    assert main(["evaluate", "--quiet", "--fake", str(tmp_path / "fake"), "--real", str(tmp_path / "real"),
                 "--feature-net", str(net), "--no-cache", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "warning: FID rests on 2 generated and 2 real images, under 50" in captured.err
    assert "KID rests on subsets of 2 images" in captured.err
    assert "2 generated, 2 real (too few" in captured.out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert (m["fake_count"], m["real_count"]) == (2, 2) and len(m["warnings"]) == 2

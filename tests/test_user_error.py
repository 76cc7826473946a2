"""UserError (shapetex.errors): a failure that is the input's, the settings' or the machine's ends in one line and
exit status 2; anything else is a bug and keeps its traceback (exit status 1); --debug shows the traceback of
both. Real command lines, in this process and in a child `python` as a user runs it."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional
import yaml
from PIL import Image
from test_evaluate import _tiny_run

import shapetex.errors
from shapetex.cli import describe_error, main
from shapetex.config import ConfigError
from shapetex.data.images import DataError
from shapetex.errors import UserError

# What torch's F.interpolate says when it is handed a size of the wrong rank: a bug in the caller, not the input's
BUG = "Input and output must have the same number of spatial dimensions, but got input with spatial dimensions " \
      "of [20, 20] and output size of (16,). Please provide input tensor in (N, C, d1, d2, ...,dK) format"


def _buggy_interpolate(*args, **kwargs):
    raise ValueError(BUG)


@pytest.fixture()
def run(tmp_path):
    run = _tiny_run(tmp_path)
    Image.new("RGB", (20, 20), (30, 60, 90)).save(tmp_path / "in.png")  # 20 px: resized to the run's 16 px
    return run


def _translate(tmp_path, run, *extra) -> list[str]:
    return ["translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png"), "--out",
            str(tmp_path / "out"), *extra]


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _child(*argv: str, patch_interpolate: bool = False) -> subprocess.CompletedProcess:
    """`shapetex ARGV` in a new Python, as a user runs it; with patch_interpolate, torch's F.interpolate fails as
    above (a bug deep inside the command)."""
    script = "import sys\n"
    if patch_interpolate:
        script += ("import torch.nn.functional as F\n"
                   f"def buggy(*args, **kwargs):\n    raise ValueError({BUG!r})\n"
                   "F.interpolate = buggy\n")
    script += "from shapetex.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env,
                          timeout=300)


# ---- user errors: one line, exit 2 ------------------------------------------------------------------------------
def test_a_missing_input_folder_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["translate", "--checkpoint", str(tmp_path / "run"), "--input", str(missing)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err == f"shapetex translate: error: --input not found: {missing} (--debug shows the traceback)"


@pytest.mark.parametrize(("flags", "said"), [
    (["--set", "model.r1_gamma=lots"], "setting model.r1_gamma: 'lots' is not a number"),  # config.coerce
    (["--set", "train.batch"], "--set wants KEY=VALUE, got 'train.batch'"),  # cli, a ValueError before
    (["--set", "train.precision=fp8"], "precision must be fp32, bf16 or fp16"),  # engine.Engine, at train start
    (["--seed", "-1"], "train.seed must be at least 0, not -1"),  # was numpy's ValueError from its seeding
    # a network constructor reached from a setting: CUT's defaults build its generator (nets/resnet_gen.py)
    (["--method", "cut", "--set", "model.padding=mirror"], "padding must be reflect, replicate or zeros"),
])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, capsys, flags, said):
    code = main(["train", "--size", "16", "--batch", "2", "--budget", "2", "--set", "data.builtin_count=4",
                 "--out", str(tmp_path / "run"), *flags])
    assert code == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("shapetex train: error: ") and said in err, err
    assert "ConfigError" not in err  # a UserError's message is shown without its type's name


def test_a_user_error_in_a_child_process_is_one_line_and_exit_2(tmp_path):
    done = _child("translate", "--checkpoint", str(tmp_path / "run"), "--input", str(tmp_path / "missing"))
    assert done.returncode == 2, done.stderr
    assert "--input not found" in _one_line(done.stderr)


# ---- bugs: the traceback, exit 1 ----------------------------------------------------------------------------------
def test_a_value_error_from_a_bug_inside_a_command_is_raised_not_one_line(tmp_path, run, capsys, monkeypatch):
    """A plain ValueError deep inside translate (torch's resize handed a wrong size) is a bug: main lets it out
    with its traceback. Before UserError, main turned every ValueError into one line and exit status 2."""
    monkeypatch.setattr(torch.nn.functional, "interpolate", _buggy_interpolate)
    with pytest.raises(ValueError, match="same number of spatial dimensions") as caught:
        main(_translate(tmp_path, run))
    assert not isinstance(caught.value, UserError)
    assert "error:" not in capsys.readouterr().err  # no one-line report printed on top of it
    frames = [f.name for f in caught.traceback]
    assert "run_translate" in frames and "_resize" in frames  # the traceback reaches where it happened


def test_a_bug_in_a_child_process_prints_the_traceback_and_exits_1(tmp_path, run):
    done = _child(*_translate(tmp_path, run), patch_interpolate=True)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert f"ValueError: {BUG}" in done.stderr and "in run_translate" in done.stderr
    assert "shapetex translate: error:" not in done.stderr


# ---- --debug: the traceback of a user error too -------------------------------------------------------------------
def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    argv = ["translate", "--checkpoint", str(tmp_path / "run"), "--input", str(tmp_path / "missing")]
    with pytest.raises(DataError, match="--input not found"):
        main(["--debug", *argv])
    with pytest.raises(DataError, match="--input not found"):
        main([*argv, "--debug"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        main(["train", "--set", "train.batch", "--out", str(tmp_path / "r"), "--debug"])
    assert "error:" not in capsys.readouterr().err
    done = _child("--debug", *argv)
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr, done.stderr
    assert "shapetex.data.images.DataError: --input not found" in done.stderr


# ---- the classes ---------------------------------------------------------------------------------------------------
def test_data_and_config_errors_are_user_errors_and_still_value_errors():
    for kind in (DataError, ConfigError):
        assert issubclass(kind, UserError) and issubclass(kind, ValueError)
    with pytest.raises(ValueError):  # callers and tests that catch ValueError keep working
        raise ConfigError("model.norm must be batch, instance or none")
    with pytest.raises(ValueError):
        raise DataError("no images in folder x")


def test_every_user_facing_error_class_is_a_user_error_and_keeps_its_bases():
    from shapetex.api import CheckpointError
    from shapetex.checkpoint import CheckpointWriteError
    from shapetex.demo import InputRejected
    from shapetex.downloads.fetch import DownloadError
    from shapetex.downloads.registry import UnknownName
    from shapetex.metrics.fid import UnsafeFeatureNet
    from shapetex.metrics.inception import InceptionUnavailable
    from shapetex.reference_weights import ReferenceWeightsError
    from shapetex.run_folder import RunFolderInUse
    from shapetex.train import TrainingDiverged

    for kind in (CheckpointError, CheckpointWriteError, DownloadError, UnknownName, UnsafeFeatureNet,
                 ReferenceWeightsError, RunFolderInUse, TrainingDiverged):
        assert issubclass(kind, DataError) and issubclass(kind, UserError), kind
    assert issubclass(InputRejected, UserError) and issubclass(InputRejected, ValueError)
    assert issubclass(InceptionUnavailable, UserError) and issubclass(InceptionUnavailable, FileNotFoundError)


def test_a_settings_check_inside_a_network_is_a_config_error():
    """Network constructors are reached from model.* settings: their checks are the settings' fault."""
    from shapetex.nets.layers import norm_layer
    from shapetex.nets.unet import depth_for_size

    with pytest.raises(ConfigError, match="norm must be"):
        norm_layer("group", 8)
    with pytest.raises(ConfigError, match="power-of-two"):
        depth_for_size(48)


def test_describe_error_names_the_type_only_of_errors_that_are_not_user_errors():
    assert describe_error(ConfigError("setting train.batch: 'x' is not a whole number")) == \
        "setting train.batch: 'x' is not a whole number"
    assert describe_error(UserError("the GPU  is\nbusy")) == "the GPU is busy"
    assert describe_error(yaml.YAMLError("mapping values are not allowed here")) == \
        "YAMLError: mapping values are not allowed here"


def test_errors_module_imports_nothing_from_shapetex():
    tree = ast.parse(Path(shapetex.errors.__file__).read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imported), imported


def test_to_on_a_single_target_run_is_one_line(tmp_path, run, capsys):
    """--to is for two-domain and multi-domain runs; on the streamlined translator it was a TypeError traceback."""
    assert main(_translate(tmp_path, run, "--to", "B")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "takes no 'to'" in line and "picks the target domain" in line


def test_a_library_failure_inside_export_keeps_its_traceback(tmp_path, run, capsys, monkeypatch):
    """export reported any RuntimeError as its check's verdict (one line, exit 1): a failure inside torch's
    exporter lost its traceback. Only the comparison's own verdict (ExportMismatch) is one line now."""
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    monkeypatch.setattr(torch.jit, "trace", broken_export)
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(RuntimeError, match="exporter failed"):
            main(["export", "--checkpoint", str(run), "--format", fmt, "--out", str(tmp_path / f"m.{fmt}")])
    assert "error:" not in capsys.readouterr().err

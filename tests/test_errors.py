"""Expected failures end in one line that names the file and says what to do; a traceback only with --debug."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from test_evaluate import _tiny_run

from shapetex.checkpoint import find_checkpoint
from shapetex.cli import main


@pytest.fixture()
def run(tmp_path):
    run = _tiny_run(tmp_path)
    Image.new("RGB", (20, 20), (30, 60, 90)).save(tmp_path / "in.png")
    return run


def _translate(tmp_path, run, *extra):
    return main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png"),
                 "--out", str(tmp_path / "out"), *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def _damage(ckpt, kind):
    weights, state = ckpt / "weights.safetensors", ckpt / "state.json"
    if kind == "garbage weights":
        weights.write_bytes(os.urandom(300))
    elif kind == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind == "empty weights":
        weights.write_bytes(b"")
    elif kind == "bad state.json":
        state.write_text('{"images_seen": 0,')


@pytest.mark.parametrize("kind", ["garbage weights", "truncated weights", "empty weights", "bad state.json"])
def test_damaged_checkpoint_files_are_one_line_naming_the_checkpoint(tmp_path, run, capsys, kind):
    ckpt = find_checkpoint(run)
    _damage(ckpt, kind)
    assert _translate(tmp_path, run) == 2  # the run folder: its only checkpoint fails its manifest
    err = _one_line(capsys)
    assert str(ckpt) in err and "damaged" in err and "pick another checkpoint" in err
    (ckpt / "complete.json").unlink()  # a checkpoint from before manifests: the loader itself must say it
    assert _translate(tmp_path, ckpt) == 2
    err = _one_line(capsys)
    assert str(ckpt) in err and ("cannot load checkpoint" in err or "incomplete" in err), err
    assert "pick another checkpoint" in err or "use another checkpoint" in err


def test_weights_of_another_shape_are_one_line(tmp_path, run, capsys):
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["bottleneck_channels"] = 64  # config.json no longer describes the saved networks
    (run / "config.json").write_text(json.dumps(cfg))
    assert _translate(tmp_path, run) == 2
    err = _one_line(capsys)
    assert "cannot load checkpoint" in err and "size mismatch" in err and "do not match" in err


def test_bad_config_json_names_the_file(tmp_path, run, capsys):
    (run / "config.json").write_text("{not json")
    assert _translate(tmp_path, run) == 2
    assert f"{run / 'config.json'}: not valid JSON" in _one_line(capsys)


def test_an_unwritable_output_is_one_line_naming_the_path(tmp_path, run, capsys):
    (tmp_path / "out").write_text("a file where the output folder should be")
    assert _translate(tmp_path, run) == 2
    err = _one_line(capsys)
    assert str(tmp_path / "out") in err and "choose another path" in err


def test_debug_shows_the_traceback_and_verbose_does_not(tmp_path, run, capsys):
    shutil.rmtree(find_checkpoint(run))
    assert main(["-v", "translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png")]) == 2
    assert "no checkpoint in" in _one_line(capsys)
    with pytest.raises(FileNotFoundError):
        main(["--debug", "translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png")])
    with pytest.raises(FileNotFoundError):
        main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "in.png"), "--debug"])


def test_os_errors_say_what_to_do():
    import errno

    from shapetex.cli import describe_error

    full = describe_error(OSError(errno.ENOSPC, "No space left on device", "/runs/x/metrics.jsonl"))
    assert full.startswith("/runs/x/metrics.jsonl: No space left on device") and "the disk is full" in full
    assert "read-only" in describe_error(OSError(errno.EROFS, "Read-only file system", "/ro/run"))
    assert "out of memory" in describe_error(MemoryError())


def test_settings_command_lists_every_method_setting_with_its_meaning(capsys):
    from shapetex.cli import main
    from shapetex.methods.adversarial import AdversarialSettings

    assert main(["settings", "adversarial"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(AdversarialSettings):
        assert f"model.{f.name} " in out
    assert "model.r1_gamma" in out and "StyleGAN2-ADA's heuristic" in out  # the comment beside the field
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "pix2pix" in out and "train.max_minutes" in out and "data.holdout" in out


def test_commands_come_from_one_static_table_and_load_lazily():
    import subprocess
    import sys

    code = ("import sys; from shapetex.cli import build_parser, COMMANDS; build_parser('train'); "
            "print(sorted(m for m in ('shapetex.demo', 'shapetex.export', 'shapetex.evaluate', 'shapetex.report', "
            "'shapetex.import_reference', 'shapetex.experiments.cli') if m in sys.modules)); "
            "p = build_parser(); print(sorted(COMMANDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split("\n")
    assert out[0] == "[]"  # training never imports the other commands' modules
    for module in ("demo", "export", "evaluate", "report", "import_reference", "experiments/cli"):
        source = (Path(__file__).parent.parent / "shapetex" / f"{module}.py").read_text()
        assert "register_command" not in source and "from .cli" not in source and "from ..cli" not in source

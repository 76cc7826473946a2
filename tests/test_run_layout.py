"""A run folder's layout lives in `shapetex.run`: the file names (the ones every earlier version wrote) in that
module only, and the one reader of metrics.jsonl with its rules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import shapetex
from shapetex.methods import METHODS  # noqa: F401  (imports every method module)
from shapetex.methods.base import Method
from shapetex.run import Run

ROOT = Path(shapetex.__file__).parent


def test_the_paths_are_the_ones_old_run_folders_have(tmp_path):
    run = Run(tmp_path / "r")
    r = tmp_path / "r"
    assert (run.config, run.metrics, run.summary, run.parameters) == \
        (r / "config.json", r / "metrics.jsonl", r / "summary.md", r / "parameters.json")
    assert (run.checkpoints, run.samples, run.tb, run.lock) == \
        (r / "checkpoints", r / "samples", r / "tb", r / ".shapetex.lock")
    assert run.sample_path(8) == r / "samples" / "0000000008.png"
    assert Run.of_checkpoint(r / "checkpoints" / "ckpt-0000000008").path == r
    assert not r.exists()  # naming paths touches nothing
    assert run.metrics_rows() == [] and run.sample_grids() == []


def test_the_run_file_names_are_written_in_one_module():
    mentions = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "config.json" in p.read_text())
    assert mentions == ["run.py"]
    for path in ROOT.rglob("*.py"):
        if path.name == "run.py" and path.parent == ROOT:
            continue
        literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not literals & {"metrics.jsonl", "parameters.json", ".shapetex.lock", "measurements.json"}, path


def test_metrics_rows_in_file_order_or_one_per_image_count(tmp_path, caplog):
    run = Run(tmp_path)
    rows = [{"images": 8, "loss": 1.0}, {"images": 16, "loss": 0.9, "recon_mse": 0.5}, {"images": 24, "loss": 0.8},
            # a run from before resumes cut the file: killed after 24, went on from its checkpoint at 8
            {"images": 16, "loss": 0.7}, {"images": 24, "loss": 0.6, "recon_mse": 0.3}]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"images": 32, "lo')
    assert run.metrics_rows() == rows  # as logged; the torn line is skipped with a warning
    assert str(run.metrics) in caplog.text and "line 6" in caplog.text
    assert run.metrics_rows(last_per_image=True) == [rows[0], rows[3], rows[4]]  # the later row wins
    assert run.metrics_rows(having=["recon_mse"]) == [rows[1], rows[4]]
    # `having` first: the point at 16 keeps its newest row that measured recon_mse
    assert run.metrics_rows(having=["recon_mse"], last_per_image=True) == [rows[1], rows[4]]


def test_appending_and_cutting_metrics(tmp_path):
    run = Run(tmp_path)
    for images in (8, 16, 24):
        run.append_metrics({"images": images, "loss": float("nan") if images == 16 else 1.0})
    assert run.metrics_rows()[1] == {"images": 16, "loss": None}  # a non-finite value reads back as missing
    assert run.drop_metrics_after(8) == 2 and [r["images"] for r in run.metrics_rows()] == [8]


def _methods(cls=Method):
    for sub in cls.__subclasses__():
        yield sub
        yield from _methods(sub)


def test_a_method_that_logs_monitors_declares_them():
    """The default summary reports the keys a method declares; no shared module names them."""
    for cls in _methods():
        if cls.monitors is not Method.monitors:
            assert cls.monitor_keys, f"{cls.__name__} has monitors but declares no monitor_keys"

"""benchmarks/speed.py compares with reference figures given on the command line, never with constants."""

import importlib.util
import sys
from pathlib import Path

import pytest

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SPEED)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_reference_figures_come_from_flags_and_json(speed, tmp_path):
    path = tmp_path / "ref.json"
    path.write_text('{"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900}, "pix2pix": {"s_per_iter": 0.7}}')
    refs = speed.parse_references(["pix2pix=0.6"], str(path))
    assert refs == {"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900}, "pix2pix": {"s_per_iter": 0.6, "peak_mb": None}}
    for bad in ("pix2pix", "pix2pix=fast", "stylegan=1.0"):
        with pytest.raises(SystemExit, match="--reference"):
            speed.parse_references([bad], None)


def test_the_table_divides_by_the_given_reference_and_says_when_there_is_none(speed):
    rows = [{"row": "cyclegan-r9-128", "setting": "fp32", "ref": "cyclegan", "batch": 1, "s_per_iter": 4.0,
             "threads": 2, "peak_rss_mb": 1520.0, "flops_per_step": 4e11}]
    with_ref = speed.train_table(rows, 1e11, "peak", {"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900.0}})
    assert "| 1.25x | 1.00x |" in with_ref and "| 80% |" in with_ref  # 5.0 / 4.0, and 1520 / 1900 MB
    without = speed.train_table(rows, 1e11, "peak", {})
    assert "| n/a | 1.00x |" in without
    assert "No reference figures were given" in speed.reference_note({})
    assert "cyclegan: 5.0 s/iter, peak 1900 MB" in speed.reference_note({"cyclegan": {"s_per_iter": 5.0,
                                                                                       "peak_mb": 1900.0}})


def test_the_quickstart_row_trains_the_quickstarts_networks(speed):
    from shapetex.quickstart import quickstart_config

    row = next(r for r in speed.ROWS if r.name == "quickstart-32")
    cfg = quickstart_config("unused")
    assert (row.size, row.batch, row.model) == (cfg.data.size, cfg.train.batch, cfg.model)

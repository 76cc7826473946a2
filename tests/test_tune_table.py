"""benchmarks/tune_quickstart.py's per-settings table: seeds of the same settings are pooled as mean ± sd."""

import importlib.util
import json
import sys
from pathlib import Path

TUNE = Path(__file__).resolve().parents[1] / "benchmarks" / "tune_quickstart.py"


def _load():
    spec = importlib.util.spec_from_file_location("tune_quickstart_benchmark", TUNE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _record(name, overrides, seed, silhouette, spread_z=None):
    t = {"silhouette": silhouette, "texture": 0.9, "angle_spread": 4.0, "pixel_diversity": 0.04}
    if spread_z is not None:
        t["angle_spread_z"] = spread_z
    return {"name": name, "overrides": overrides, "seed": seed, "train_s": 1.0, "rows": {"translator (trained)": t}}


def test_seeds_of_one_setting_pool_into_mean_and_sample_sd(tmp_path):
    tune = _load()
    log = tmp_path / "results.jsonl"
    records = [_record("a0", [], 0, 0.5, 2.0), _record("b0", ["model.d_channel_max=128"], 0, 0.7),
               _record("a1", [], 1, 0.7, 4.0), _record("a2", [], 2, 0.6, 6.0)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    lines = tune.seed_table(str(log)).splitlines()
    assert lines[0] == "stripes task" and len(lines) == 6  # records without a task: the stripes task's
    defaults, wide = lines[4], lines[5]
    assert defaults.startswith("| (defaults) | 0, 1, 2 | 0.600 ± 0.100 |")  # sample sd of 0.5, 0.7, 0.6
    assert "| 4.0 ± 2.0 |" in defaults  # z-alone spread: 2, 4, 6
    assert wide.startswith("| model.d_channel_max=128 | 0 | 0.700 |")  # one seed: no sd
    assert wide.split("|")[6].strip() == "-"  # logged before the z-alone column


def test_each_task_gets_its_own_columns(tmp_path):
    tune = _load()
    log = tmp_path / "results.jsonl"
    colours = {"silhouette": 0.9, "texture_taken": 1.0, "hue_spread": 20.0, "hue_spread_z": 19.0,
               "pixel_diversity": 0.05}
    records = [_record("s0", [], 0, 0.5, 2.0),
               {"name": "c0", "task": "colours", "overrides": [], "seed": 0, "train_s": 1.0,
                "rows": {"translator (trained)": colours}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    text = tune.table(str(log))
    colour_block = text[text.index("colours task"):text.index("stripes task")]
    assert "hue spread" in colour_block and "| c0 | (defaults) | 0 | 1 | 0.900 | 100% | 20.0 | 19.0 | 0.050 |" in text
    assert "stripe-angle spread" in text[text.index("stripes task"):] and "| s0 |" in text

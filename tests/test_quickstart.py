import copy
import json

import pytest
from helpers import tiny_config

from shapetex.cli import main
from shapetex.quickstart import SILHOUETTE_GOAL, TAKEN_GOAL, Z_SHARE_GOAL, quickstart, score_run, verdict
from shapetex.train import Trainer


def _trained_rows(tmp_path, task):
    run = tmp_path / task
    cfg = tiny_config(run, budget=8)
    cfg.data.builtin_task = task
    tr = Trainer(cfg)
    untrained = copy.deepcopy(tr.method.G).eval()
    tr.run()
    return score_run(run, untrained)


def test_colours_scores_and_verdict_against_baselines(tmp_path):
    rows = _trained_rows(tmp_path, "colours")
    assert set(rows) == {"translator (trained)", "identity (the input)", "random texture-set image",
                         "untrained generator"}
    identity, texture_set = rows["identity (the input)"], rows["random texture-set image"]
    assert identity["silhouette"] == 1.0 and identity["texture_taken"] == 0.0 and identity["hue_spread"] == 0
    assert texture_set["texture_taken"] == 1.0 and texture_set["silhouette"] < 0.5 and texture_set["hue_spread"] > 25
    ok, _, why = verdict(rows)  # 8 training images: far from a translator
    assert not ok and "NOT" in why
    goal = Z_SHARE_GOAL * texture_set["hue_spread"]
    good = {"silhouette": SILHOUETTE_GOAL + 0.05, "texture_taken": TAKEN_GOAL, "hue_spread": goal + 1,
            "hue_spread_z": goal + 1, "pixel_diversity": 0.1}
    assert verdict(dict(rows, **{"translator (trained)": good}))[:2] == (True, True)
    for worse, want in (({"silhouette": SILHOUETTE_GOAL - 0.01}, (False, True)),
                        ({"texture_taken": TAKEN_GOAL - 0.01}, (False, True)),
                        ({"hue_spread_z": goal - 0.5}, (True, False))):  # the spread from the noise alone is not z's
        assert verdict(dict(rows, **{"translator (trained)": {**good, **worse}}))[:2] == want


def test_stripes_task_is_scored_with_its_own_columns(tmp_path):
    rows = _trained_rows(tmp_path, "stripes")
    assert rows["identity (the input)"]["texture"] < 0.05 and rows["random texture-set image"]["texture"] > 0.8
    assert rows["random texture-set image"]["angle_spread"] > 25
    good = {"silhouette": 0.9, "texture": 0.9, "angle_spread": 30.0, "angle_spread_z": 30.0,
            "stripe_coherence": 0.8, "pixel_diversity": 0.2}
    assert verdict(dict(rows, **{"translator (trained)": good}), "stripes")[:2] == (True, True)
    noise = {**good, "stripe_coherence": 0.2}
    assert verdict(dict(rows, **{"translator (trained)": noise}), "stripes")[1] is False


def test_exit_status_is_for_errors_and_strict_asks_for_the_verdict(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--budget", "8"]) == 0  # trained and scored: exit 0
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["passed"] is False and summary["task"] == "colours" and summary["images_seen"] >= 8
    assert "NOT PASSED" in capsys.readouterr().out and (out / "results.png").exists()
    assert main(["quickstart", "--out", str(out), "--budget", "8", "--strict"]) == 1


@pytest.mark.slow
def test_quickstart_meets_its_goals(tmp_path):
    """The README's main job, in full (about 3 minutes on a 2-core CPU), with --strict: the verdict must pass."""
    assert quickstart(out=str(tmp_path / "qs"), strict=True) == 0
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["passed"] and summary["z_changes_texture"]
    assert (tmp_path / "qs" / "results.png").exists()

import json

import pytest
from helpers import tiny_config

from shapetex.quickstart import quickstart, score_run, verdict
from shapetex.train import Trainer


def test_scores_and_verdict_against_baselines(tmp_path):
    run = tmp_path / "run"
    tr = Trainer(tiny_config(run, budget=8))
    import copy

    untrained = copy.deepcopy(tr.method.G).eval()
    tr.run()
    rows = score_run(run, untrained)
    assert set(rows) == {"translator (trained)", "identity (the input)", "random texture-set image",
                         "untrained generator"}
    assert rows["identity (the input)"]["silhouette"] == 1.0 and rows["identity (the input)"]["texture"] < 0.05
    assert rows["random texture-set image"]["texture"] > 0.8
    assert rows["random texture-set image"]["silhouette"] < 0.5
    ok, _, why = verdict(rows)  # 8 training images: far from a translator
    assert not ok and "NOT clearly above" in why
    good = dict(rows, **{"translator (trained)": {"silhouette": 0.9, "texture": 0.9, "angle_spread": 30.0,
                                                  "angle_spread_z": 30.0, "stripe_coherence": 0.8,
                                                  "pixel_diversity": 0.2}})
    assert verdict(good)[:2] == (True, True)
    ignores_z = dict(rows, **{"translator (trained)": {**good["translator (trained)"], "angle_spread_z": 2.0,
                                                       "angle_spread": 2.0}})
    assert verdict(ignores_z)[:2] == (True, False) and "does NOT clearly change" in verdict(ignores_z)[2]
    # a spread that comes from the noise inputs only is not z's
    noise_only = dict(rows, **{"translator (trained)": {**good["translator (trained)"], "angle_spread_z": 2.0}})
    assert verdict(noise_only)[1] is False
    noise = dict(rows, **{"translator (trained)": {**good["translator (trained)"], "stripe_coherence": 0.2}})
    assert verdict(noise)[1] is False
    # the baselines' z spread: one output repeated has none, K texture-set images have the set's own
    assert rows["identity (the input)"]["angle_spread"] == 0
    assert rows["random texture-set image"]["angle_spread"] > 25


@pytest.mark.slow
def test_quickstart_translates_shapes_to_stripes(tmp_path):
    """The README's main job, in full (about 5 minutes on a 2-core CPU, 6-7 on one thread)."""
    quickstart(out=str(tmp_path / "qs"))
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    rows = summary["scores"]
    ours = rows["translator (trained)"]
    # Rounding alone (thread count, memory layout) moves this run's silhouette between 0.32 and 0.56
    # (docs/quickstart_tuning.md), so the test asks what every measured run met: stripes far above the
    # identity mapping's and the untrained generator's, and more of the silhouette than both random baselines.
    assert ours["texture"] > rows["identity (the input)"]["texture"] + 0.3
    assert ours["texture"] > rows["untrained generator"]["texture"] + 0.3
    assert ours["silhouette"] > max(rows["random texture-set image"]["silhouette"],
                                    rows["untrained generator"]["silhouette"]) + 0.05
    assert (tmp_path / "qs" / "results.png").exists()

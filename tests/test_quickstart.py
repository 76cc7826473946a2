import json

import pytest
from conftest import tiny_config

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
    ok, why = verdict(rows)  # 8 training images: far from a translator
    assert not ok and "NOT clearly above" in why
    good = dict(rows, **{"translator (trained)": {"silhouette": 0.9, "texture": 0.9}})
    assert verdict(good)[0]


@pytest.mark.slow
def test_quickstart_translates_shapes_to_stripes(tmp_path):
    """The README's main job, in full (about 8 minutes on a 2-core CPU)."""
    assert quickstart(out=str(tmp_path / "qs")) == 0
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["passed"]
    assert (tmp_path / "qs" / "results.png").exists()

"""`shapetex experiment compare`: every method trains for the same time cap, then is scored on held-out images."""

import json

import numpy as np
import torch
from helpers import save_torchscript
from PIL import Image
from torch import nn

from shapetex.cli import main
from shapetex.data.builtin import builtin_images
from shapetex.experiments.compare import CompareSettings, write_summary


class TinyFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean((2, 3))


def _folder(path, which, n):
    path.mkdir(parents=True)
    for i, img in enumerate(builtin_images(which, n, 32, seed=5)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path / f"{i:03d}.png")


def _compare_inputs(tmp_path, n):
    """Folders A and B of n images each and a tiny TorchScript feature network: the compare command's inputs."""
    _folder(tmp_path / "A", "shape", n)
    _folder(tmp_path / "B", "texture", n)
    return tmp_path / "A", tmp_path / "B", save_torchscript(TinyFeatures().eval(), tmp_path / "features.pt")


def test_compare_gives_every_method_the_same_time_and_scores_held_out_images(tmp_path):
    a, b, net = _compare_inputs(tmp_path, 14)
    out = tmp_path / "cmp"
    rc = main(["experiment", "compare", "--data", str(a), str(b), "--size", "32",
               "--minutes", "0.03", "--methods", "adversarial", "cyclegan", "--holdout", "4", "--samples", "2",
               "--feature-net", str(net), "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in results] == [("adversarial", 0), ("cyclegan", 0)]
    for r in results:
        assert 0.03 * 60 <= r["minutes"] * 60 < 0.03 * 60 + 30  # stopped by the cap, after its last step
        assert r["images"] > 0 and np.isfinite(r["fid"]) and r["fake_count"] == r["real_count"] == 4
        cfg = json.loads((out / "runs" / r["method"] / "seed0" / "config.json").read_text())
        assert cfg["train"]["max_minutes"] == 0.03 and cfg["data"]["holdout"] == 4
    adversarial, cyclegan = results
    assert adversarial["stochastic"] and adversarial["diversity_pixel"] > 0
    assert not cyclegan["stochastic"]
    summary = (out / "summary.md").read_text()
    assert "0 (deterministic)" in summary and "0.03 minutes" in summary and "seed 0," in summary
    with Image.open(out / "samples.png") as im:
        assert im.width > 4 * 32 * 4  # input, two latents, cyclegan; upscaled 4x


def test_compare_with_seeds_reports_mean_and_spread_of_runs_trained_side_by_side(tmp_path):
    a, b, net = _compare_inputs(tmp_path, 12)
    out = tmp_path / "cmp"
    rc = main(["experiment", "compare", "--data", str(a), str(b), "--size", "32",
               "--minutes", "0.02", "--methods", "cyclegan", "--holdout", "4", "--seeds", "2", "--seed", "3",
               "--jobs", "2", "--feature-net", str(net), "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in results] == [3, 4]
    weights = [(out / "runs" / "cyclegan" / f"seed{k}" / "config.json") for k in (3, 4)]
    assert [json.loads(w.read_text())["train"]["seed"] for w in weights] == [3, 4]
    assert results[0]["fid"] != results[1]["fid"]  # different seeds, different generators
    fids = [r["fid"] for r in results]
    mean, sd = np.mean(fids), np.std(fids, ddof=1)
    summary = (out / "summary.md").read_text()
    assert "seeds 3-4" in summary and "2 run(s) at once" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| cyclegan | 2 |"))
    assert f"{mean:.4g} ± {sd:.2g}" in row


def test_compare_refuses_a_set_without_a_value(tmp_path, capsys):
    rc = main(["experiment", "compare", "--data", str(tmp_path / "A"), str(tmp_path / "B"), "--set", "train.batch"])
    assert rc == 2 and "--set wants KEY=VALUE, got 'train.batch'" in capsys.readouterr().err


def test_compare_refuses_resume(tmp_path, capsys):
    rc = main(["experiment", "compare", "--data", str(tmp_path / "A"), str(tmp_path / "B"), "--resume"])
    assert rc == 2 and "--resume is for ae-vs-gan, bottleneck, dataset-size and paper" in capsys.readouterr().err


def _result(method, seed, fid, stochastic=False, images=12345):
    kid = None if fid is None else fid / 1000
    return {"method": method, "seed": seed, "images": images, "minutes": 20.0, "images_per_s": 10.3,
            "parameters": 2e6, "stochastic": stochastic, "fid": fid, "kid": kid, "kid_std": kid,
            "structure_ssim": 0.3, **({"diversity_pixel": 0.2} if stochastic else {})}


def test_compare_summary_ranks_by_mean_fid_and_says_when_the_gap_is_within_the_spread(tmp_path):
    s = CompareSettings(data=["A", "B"], methods=["adversarial", "cyclegan"], seeds=3)
    results = [_result("adversarial", k, f, True) for k, f in enumerate([300.0, 310.0, 320.0])]
    results += [_result("cyclegan", k, f) for k, f in enumerate([305.0, 306.0, 307.0])]
    text = write_summary(tmp_path, s, results)
    assert "Lowest mean FID at this budget: cyclegan, 306 ± 1; adversarial 310 ± 10 (within the seed spread" in text
    assert "| adversarial | 3 | 20 ± 0 | 12,345 ± 0 |" in text  # image counts with separators, not 1.234e+04


def test_compare_summary_without_fid_says_so_instead_of_failing(tmp_path):
    s = CompareSettings(data=["A", "B"], methods=["cyclegan", "asymmetric"])
    text = write_summary(tmp_path, s, [_result("cyclegan", 0, None), _result("asymmetric", 0, None)])
    assert "No FID" in text and "| cyclegan | 0 | 12,345 | n/a | n/a |" in text


def test_compare_refuses_a_method_twice_and_zero_seeds(tmp_path, capsys):
    args = ["experiment", "compare", "--data", str(tmp_path / "A"), str(tmp_path / "B")]
    assert main(args + ["--methods", "cyclegan", "cyclegan"]) == 2
    assert "got a method twice" in capsys.readouterr().err
    assert main(args + ["--seeds", "0"]) == 2
    assert "--seeds and --jobs of at least 1" in capsys.readouterr().err

import csv
import json

import pytest
import torch
from helpers import tiny_config
from PIL import Image
from torch import nn

from shapetex.data.builtin import builtin_images
from shapetex.experiments import ae_vs_gan, bottleneck, dataset_size
from shapetex.experiments.runner import ExperimentSettings, curves, final_values
from shapetex.experiments.tracker import Tracker, train_tracked
from shapetex.methods import build_method
from shapetex.methods.adversarial import discriminator_accuracy
from shapetex.run_summary import condition_summary
from shapetex.train import Trainer

TINY_MODEL = ["model.g_channel_max=32", "model.d_channel_max=32", "model.z_dim=16", "model.w_dim=32",
              "model.mapping_layers=1"]


def shapes(n=12, size=32):
    return builtin_images("shape-holdout", n, size, seed=3, task="stripes")  # no channel near 1: +0.2 is not clamped


# ---- the reconstruction-MSE tracker ---------------------------------------------------------------------
def test_tracker_identity_gives_zero_error_full_silhouette_and_no_diversity():
    t = Tracker(shapes(), samples=3)
    row = t.measure(lambda x, z: x, z_dim=8, images=0)
    assert row["recon_mse"] == pytest.approx(0.0, abs=1e-12)
    assert row["silhouette"] == pytest.approx(1.0)
    assert row["diversity"] == pytest.approx(0.0, abs=1e-12)
    assert row["images"] == 0 and len(t.rows) == 1


def test_tracker_known_perturbation_gives_its_squared_size():
    t = Tracker(shapes(), samples=2)
    x = t.inputs
    assert x.max() < 0.9  # so that +0.1 is not clamped
    row = t.measure(lambda x, z: x + 0.1, z_dim=8, images=16)
    assert row["recon_mse"] == pytest.approx(0.01, rel=1e-4)
    # a quarter of the pixels moved by 0.2: MSE 0.2^2 / 4
    def quarter(x, z):
        y = x.clone()
        y[..., :16, :16] += 0.2
        return y

    assert t.measure(quarter, 8, 32)["recon_mse"] == pytest.approx(0.01, rel=1e-4)


def test_tracker_uses_fixed_latents_and_measures_diversity():
    t = Tracker(shapes(), samples=3)
    seen = []

    def by_z(x, z):
        seen.append(z.clone())
        return (x + z[:, :1, None, None] * 0.1).clamp(-1, 1)

    a = t.measure(by_z, 4, 0)
    b = t.measure(by_z, 4, 16)
    assert a["diversity"] > 0.01
    assert a == {**b, "images": 0}  # the same latents at every measurement point
    assert not torch.equal(seen[0], seen[1])  # but different latents for the samples of one point
    assert [i for i, _ in t.snapshots] == [0, 16] and t.snapshots[0][1].shape == (8, 3, 32, 32)


def test_mean_and_spread_over_seeds():
    rows = [{"run": "a", "seed": s, "images": i, "recon_mse": v}
            for s, vals in ((0, (4.0, 1.0)), (1, (4.0, 3.0))) for i, v in zip((0, 16), vals)]
    xs, m, sd = curves(rows, "recon_mse")["a"]
    assert xs == [0, 16] and m == [4.0, 2.0] and sd[0] == 0.0 and sd[1] == pytest.approx(2**0.5)
    assert final_values(rows, "recon_mse") == {"a": [1.0, 3.0]}
    assert final_values(rows, "recon_mse", first=True) == {"a": [4.0, 4.0]}


# ---- chunked training ---------------------------------------------------------------------------------
def test_training_in_chunks_equals_one_run(tmp_path):
    """Trainer.run(stop_after_images) called again continues the same run: chunks + measurements change nothing."""
    whole = Trainer(tiny_config(tmp_path / "whole", budget=32))
    whole.run()
    tracker = Tracker(shapes(8), samples=1)
    chunked, why = train_tracked(tiny_config(tmp_path / "chunked", budget=32), tracker, every=16, log=lambda s: None)
    assert why.startswith("cap")
    assert [r["images"] for r in tracker.rows] == [0, 16, 32]
    assert chunked.images_seen == whole.images_seen == 32
    for name in ("G", "G_ema", "D"):
        a, b = whole.method.networks()[name].state_dict(), chunked.method.networks()[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the last measurement is of the EMA generator, which training has moved
    assert tracker.rows[-1]["recon_mse"] != tracker.rows[0]["recon_mse"]


def test_texture_from_shape_makes_the_shape_set_the_real_set(tmp_path):
    cfg = tiny_config(tmp_path / "r", budget=8)
    cfg.data.texture_from_shape = True
    t = Trainer(cfg)
    batch = t.source.batch(0)
    assert torch.equal(t.holdout["texture"], t.holdout["shape"])
    assert t.source.texture is t.source.shape
    assert (batch["texture"].float().std(dim=(2, 3)) < 30).float().mean() > 0.5  # plain fills, no stripes


# ---- the experiment driver ----------------------------------------------------------------------------
def test_ae_vs_gan_writes_csv_plots_and_summary(tmp_path):
    s = ExperimentSettings(out=str(tmp_path / "exp"), budget=32, every=16, batch=16, eval_images=8, grid_images=4,
                           builtin_count=64, threads=1, overrides=TINY_MODEL, plateau=False)
    out = ae_vs_gan.run(s, log=lambda m: None)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["run", "seed", "images", "recon_mse_train", "recon_mse"]
    assert all(float(r["recon_mse_train"]) > 0 for r in rows)  # measured on the runs' own training images
    by_run = {}
    for r in rows:
        by_run.setdefault(r["run"], []).append((int(r["images"]), float(r["recon_mse"])))
    assert sorted(by_run) == ["autoencoder", "gan-identical", "gan-translate"]
    assert all([i for i, _ in v] == [0, 16, 32] for v in by_run.values())
    # the same initial generator for all three runs, and the autoencoder does reconstruct
    assert len({v[0][1] for v in by_run.values()}) == 1
    assert by_run["autoencoder"][-1][1] < by_run["autoencoder"][0][1]
    for png in ("recon_mse.png", "progress.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 200 and im.size[1] > 150
    summary = (out / "summary.md").read_text()
    ae_train = [float(r["recon_mse_train"]) for r in rows if r["run"] == "autoencoder"]
    assert "Claim" in summary and f"{ae_train[-1]:.4g}" in summary and "Scale: scale-true" in summary
    assert "d_accuracy" in summary  # the condition monitors of the GAN runs
    cfg = json.loads((out / "runs" / "gan-identical" / "seed0" / "config.json").read_text())
    assert cfg["data"]["texture_from_shape"] is True


# ---- verdicts ----------------------------------------------------------------------------------------
def test_ae_vs_gan_verdict():
    start = {"autoencoder": 0.2, "gan-identical": 0.2, "gan-translate": 0.2}
    ok, _ = ae_vs_gan.verdict(start, {"autoencoder": 0.01, "gan-identical": 0.02, "gan-translate": 0.15})
    assert ok
    bad, lines = ae_vs_gan.verdict(start, {"autoencoder": 0.01, "gan-identical": 0.12, "gan-translate": 0.15})
    assert not bad and "did NOT" in lines[0]


def test_bottleneck_and_dataset_size_verdicts_judge_the_seed_spread():
    big, small = bottleneck.LARGE, bottleneck.SMALL
    pres_apart = {big: [0.80, 0.81, 0.79], small: [0.60, 0.62, 0.61]}
    div_apart = {big: [0.10, 0.11, 0.09], small: [0.20, 0.21, 0.19]}
    assert bottleneck.verdict(pres_apart, div_apart, "silhouette")[0] == "held"
    # the bottleneck findings on the colours task: keeps less beyond the spread, varies more within it
    div_close = {big: [0.0485, 0.0475, 0.0495], small: [0.0509, 0.048, 0.054]}
    status, lines = bottleneck.verdict(pres_apart, div_close, "silhouette")
    assert status.startswith("not shown") and "not shown to vary more" in lines[1]
    assert "bottleneck kept less of" in lines[0]
    assert "did NOT keep less" in bottleneck.verdict({big: [0.8, 0.8], small: [0.9, 0.9]}, div_apart, "x")[1][0]
    # the wrong way beyond the spread: did not hold, whatever the other part says
    assert bottleneck.verdict({big: [0.8, 0.8], small: [0.9, 0.9]}, div_apart, "silhouette")[0] == "did NOT hold"
    # one seed each: the direction of the two values decides
    assert bottleneck.verdict({big: [0.8], small: [0.6]}, {big: [0.1], small: [0.2]}, "silhouette")[0] == "held"

    runs = ["n16", "n128", "all"]
    pres = {"n16": [0.9, 0.91], "n128": [0.8, 0.8], "all": [0.7, 0.71]}
    div = {"n16": [0.05, 0.06], "n128": [0.1, 0.1], "all": [0.2, 0.21]}
    status, lines = dataset_size.verdict(pres, div, runs, "silhouette")
    assert status == "held" and "falls steadily" in lines[2] and "rises steadily" in lines[2]
    assert dataset_size.verdict({**pres, "n16": [0.6, 0.61]}, div, runs, "silhouette")[0] == "did NOT hold"
    noisy = {**div, "n16": [0.05, 0.35]}  # less on average, but the seeds spread over the gap
    assert dataset_size.verdict(pres, noisy, runs, "silhouette")[0].startswith("not shown")
    assert [v.name for v in dataset_size.variants([0, 128, 16])] == runs


# ---- the two condition monitors -----------------------------------------------------------------------
class MeanD(nn.Module):
    """Scores an image by its mean: bright images > 0, dark images < 0."""

    def forward(self, x):
        return x.flatten(1).mean(1, keepdim=True) * self.sign

    def __init__(self, sign=1.0):
        super().__init__()
        self.sign = sign


class ShiftG(nn.Module):
    def __init__(self, shift=0.0):
        super().__init__()
        self.shift = shift

    def forward(self, x, z):
        return x + self.shift


def test_discriminator_accuracy_on_constructed_cases():
    real, fake = torch.full((6, 3, 8, 8), 0.5), torch.full((4, 3, 8, 8), -0.5)
    assert discriminator_accuracy(MeanD(1.0), real, fake) == 1.0
    assert discriminator_accuracy(MeanD(-1.0), real, fake) == 0.0
    assert discriminator_accuracy(MeanD(1.0), real, real[:4]) == pytest.approx(0.6)  # fakes all called real


def test_monitors_on_constructed_translators(tmp_path):
    m = build_method(tiny_config(tmp_path))
    dark, bright = torch.full((4, 3, 32, 32), -0.5), torch.full((4, 3, 32, 32), 0.5)
    m.G_ema, m.D = ShiftG(0.0), MeanD(1.0)
    out = m.monitors({"shape": dark, "texture": bright})
    assert out["recon_mse"] == 0.0 and out["d_accuracy"] == 1.0
    m.G_ema = ShiftG(0.1)
    assert m.monitors({"shape": dark, "texture": bright})["recon_mse"] == pytest.approx(0.01, rel=1e-5)
    m.G_ema = ShiftG(1.0)  # outputs as bright as the reals: D calls them real
    assert m.monitors({"shape": dark, "texture": bright})["d_accuracy"] == 0.5


def test_condition_summary_explains_the_monitors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run)
    cfg.data.texture_from_shape = True
    cfg.save(run / "config.json")
    rows = [{"images": 0, "loss_g": 1.0}] + [
        {"images": i, "recon_mse": mse, "d_accuracy": acc}
        for i, mse, acc in ((1000, 0.2, 0.6), (2000, 0.1, 0.8), (3000, 0.05, 0.95), (3000, 0.04, 0.97))]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"images\": 40")
    text = condition_summary(run)
    assert "0.2 at 1000 images -> 0.04 at 3000 images" in text  # a resumed duplicate: the later row wins
    assert "falling" in text and "shape set is also the texture set" in text
    assert "0.6 at 1000 images -> 0.97 at 3000 images" in text and "rising" in text and "condition 2 holds" in text
    (run / "metrics.jsonl").write_text(json.dumps({"images": 8, "recon_mse": 0.3, "d_accuracy": 0.5}) + "\n")
    assert "near chance" in condition_summary(run)
    assert "No condition monitors" in condition_summary(tmp_path / "missing")


def test_summaries_say_what_the_monitor_images_are(tmp_path):
    from shapetex.run_summary import monitor_images, monitor_summary

    assert "never trained on" in monitor_images({"source": "folders", "holdout": 20})
    held = monitor_images({"source": "domains", "holdout": 0, "holdout_folders": ["h2z/testA", "h2z/testB"]})
    assert "h2z/testA, h2z/testB, never trained on" in held  # --dataroot's testA/ and testB/
    unseen = monitor_images({"source": "folders", "holdout": 0})
    assert "first training images" in unseen and "data.holdout" in unseen and "never" not in unseen.split(":")[0]
    rows = [{"images": 8, "val_l1": 0.5}, {"images": 16, "val_l1": 0.4}]
    assert "first training images" in monitor_summary(rows, {"source": "paired", "holdout": 0}, keys=("val_l1",))
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run)
    cfg.data.source, cfg.data.holdout = "folders", 0
    cfg.save(run / "config.json")
    (run / "metrics.jsonl").write_text(json.dumps({"images": 8, "recon_mse": 0.3, "d_accuracy": 0.5}) + "\n")
    assert "Condition monitors on the first training images" in condition_summary(run)


class _MeanColour(nn.Module):
    def forward(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def _photo_settings(tmp_path) -> ExperimentSettings:
    """Two small folders of PNGs (shapes, textures) and a feature network without weights for FID."""
    from helpers import save_torchscript

    for name, which in (("A", "shape"), ("B", "texture")):
        (tmp_path / name).mkdir()
        for i, img in enumerate(builtin_images(which, 20, 32, seed=5)):
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / name / f"{i:03d}.png")
    net = save_torchscript(_MeanColour().eval(), tmp_path / "features.pt")
    return ExperimentSettings(data=[str(tmp_path / "A"), str(tmp_path / "B")], out=str(tmp_path / "exp"), budget=16,
                              every=16, batch=8, eval_images=4, samples=2, grid_images=2, threads=1,
                              overrides=TINY_MODEL, plateau=False, feature_net=str(net))


def test_the_identical_sets_arm_is_not_scored_against_its_own_inputs(tmp_path):
    from shapetex.experiments.runner import run_variants

    s = _photo_settings(tmp_path)
    results = run_variants(s, ae_vs_gan.variants(), tmp_path / "exp", samples=2, log=lambda m: None)
    last = {r.name: r.tracker.rows[-1] for r in results}
    assert "fid" in last["gan-translate"] and "kid" in last["gan-translate"]
    assert "fid" not in last["gan-identical"] and "fid" not in last["autoencoder"]


def test_bottleneck_on_photos_scores_each_arms_final_outputs_with_fid_and_kid(tmp_path):
    s = _photo_settings(tmp_path)
    out = bottleneck.run(s, log=lambda m: None)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    finals = [r for r in rows if r["images"] == "16"]
    assert len(finals) == 2 and all(float(r["fid"]) > 0 and r["kid"] != "" for r in finals)
    assert all(r["fid"] == "" for r in rows if r["images"] == "0")  # measured once, at the end
    summary = (out / "summary.md").read_text()
    assert "| input_match | fid | kid |" in summary
    assert "input_match" in summary

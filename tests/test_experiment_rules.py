"""The scale presets, the plateau rule, and the sharing of runs in `experiment paper`: pure logic, no training
but the one tiny run that checks a plateau stops a real run early."""

import pytest
import torch

from shapetex.experiments import paper
from shapetex.experiments.plateau import PlateauRule
from shapetex.experiments.presets import paper_share, preset_overrides, scale_true_bottleneck, share
from shapetex.experiments.runner import ExperimentSettings, Variant
from shapetex.experiments.tracker import Tracker, plateaued, train_tracked
from shapetex.methods import build_method
from shapetex.methods.adversarial import width_preset


# ---- scale presets ----------------------------------------------------------------------------------------
def test_the_paper_shares_are_4_2_and_1_0_percent():
    assert paper_share("default") == pytest.approx(16 * 16 * 128 / (512 * 512 * 3))
    assert round(paper_share("default"), 4) == 0.0417 and round(paper_share("low"), 4) == 0.0104


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256, 512, 1024])
@pytest.mark.parametrize("variant", ["default", "low"])
def test_scale_true_bottleneck_keeps_the_paper_share_at_every_size(size, variant):
    res, ch = scale_true_bottleneck(size, variant)
    assert res >= 1 and size % res == 0 and ch >= 1
    assert share(size, res, ch) == pytest.approx(paper_share(variant), rel=0.01)


def test_scale_true_variants_relate_as_the_papers_do():
    for size in (16, 32, 64, 512):
        (r0, c0), (r1, c1) = scale_true_bottleneck(size, "default"), scale_true_bottleneck(size, "low")
        assert r0 == 2 * r1 and c0 == c1  # resolution halved, channels equal: 16x16x128 vs 8x8x128
    assert scale_true_bottleneck(32, "default") == (8, 2) and scale_true_bottleneck(32, "low") == (4, 2)
    with pytest.raises(ValueError):
        scale_true_bottleneck(48)


def test_cpu_preset_gives_the_discriminator_stylegan2_relative_widths(tmp_path):
    from helpers import tiny_config

    cfg = tiny_config(tmp_path, size=64)
    cfg.model = dict(preset_overrides("cpu", 64, "low"))
    m = build_method(cfg)
    assert m.settings.bottleneck_res == 8 and m.settings.bottleneck_channels == 2
    assert m.G.encoder(torch_zeros(64)).shape[1:] == (2, 8, 8)
    # StyleGAN2's D at 512 px: 64 channels at 512x512 ... 512 at 64x64; scaled to 64 px: 64 at 64x64, 512 at 8x8
    assert width_preset(64, "stylegan2-relative")["d_channel_base"] == 4096
    first = next(p for n, p in m.D.named_parameters() if p.ndim == 4)
    assert first.shape[0] == 64
    assert max(p.shape[0] for p in m.D.parameters() if p.ndim == 4) == 512
    assert preset_overrides("paper", 512, "default")["bottleneck_res"] == 16


def torch_zeros(size):
    return torch.zeros(1, 3, size, size)


def test_summary_states_the_preset_and_the_share():
    line = ExperimentSettings(size=64).scale_line()
    assert "scale-true" in line and "16x16x2 (4.17%" in line and "8x8x2 (1.04%" in line
    with pytest.raises(ValueError, match="512"):
        ExperimentSettings(scale="paper", size=64).validate()


# ---- the plateau rule -------------------------------------------------------------------------------------
def test_plateau_rule_on_synthetic_curves():
    rule = PlateauRule("recon_mse_train", lower_is_better=True, window=3, tolerance=0.05)
    falling = [1.0 * 0.8 ** i for i in range(10)]  # 20% better every measurement: never a plateau
    flat = [0.5, 0.3, 0.2, 0.15, 0.14, 0.142, 0.139, 0.141, 0.140, 0.139]
    images = [1000 * (i + 1) for i in range(10)]
    assert not any(rule.reached(images[:n], falling[:n]) for n in range(1, 11))
    first = next(n for n in range(1, 11) if rule.reached(images[:n], flat[:n]))
    assert first == 9  # windows (0.15, 0.14, 0.142) vs (0.139, 0.141, 0.140): under 5% better
    assert not rule.reached(images[:5], flat[:5])  # too few measurements for two windows
    assert not PlateauRule("x", min_images=9000).reached(images[:8], flat[:8])
    rising = PlateauRule("silhouette", lower_is_better=False)
    assert not rising.reached(images[:6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert rising.reached(images[:6], [0.6, 0.62, 0.61, 0.6, 0.61, 0.62])
    assert rising.reached(images[:6], [0.6, 0.6, 0.6, 0.3, 0.2, 0.1])  # getting worse is not improving


def test_every_rule_must_hold_and_rules_without_values_are_ignored():
    mse = PlateauRule("a", window=1)
    sil = PlateauRule("b", lower_is_better=False, window=1)
    rows = [{"images": 0, "a": 9.0, "b": 0.0}, {"images": 1, "a": 1.0, "b": 0.5}, {"images": 2, "a": 1.0, "b": 0.9}]
    assert not plateaued(rows, (mse, sil))  # a is flat, b still rising
    assert plateaued(rows, (mse,))
    assert plateaued(rows, (mse, PlateauRule("not-measured")))
    assert not plateaued(rows, (PlateauRule("not-measured"),))


def test_a_plateaued_run_stops_before_its_cap(tmp_path):
    from helpers import tiny_config

    cfg = tiny_config(tmp_path / "run", budget=400)
    cfg.model = {**cfg.model, "lr_g": 0.0, "lr_d": 0.0}  # nothing changes: a plateau from the first windows
    tracker = Tracker(torch_zeros(32).repeat(4, 1, 1, 1), samples=1)
    trainer, why = train_tracked(cfg, tracker, every=8, log=lambda m: None,
                                 rules=(PlateauRule("recon_mse", window=2),))
    assert why == "plateau at 32 images" and trainer.images_seen == 32


# ---- experiment paper shares runs --------------------------------------------------------------------------
def test_paper_trains_the_shared_translating_run_once():
    runs, names = paper.plan((16, 128, 0))
    assert [v.name for v in runs] == ["autoencoder", "gan-identical", "gan-translate", "bottleneck-low", "n16",
                                      "n128"]
    assert names["bottleneck"]["bottleneck-default"] == names["dataset-size"]["all"] == "gan-translate"
    assert names["dataset-size"]["n16"] == "n16"
    cfg = next(v for v in runs if v.name == "n16").config(ExperimentSettings(), "out", 0)
    assert cfg.data.max_images == 16
    assert Variant("x", bottleneck="low").config(ExperimentSettings(size=64), "o", 0).model["bottleneck_res"] == 8


def test_a_collapsed_arm_is_named_and_gets_no_verdict(tmp_path):
    from shapetex.data.builtin import builtin_images
    from shapetex.experiments import bottleneck
    from shapetex.experiments.runner import VariantResult, collapse_reasons

    inputs = builtin_images("shape-holdout", 8, 32, seed=1)  # their own spread across inputs: about 0.12

    def result(name, spread, sil, div, match=0.95):
        t = Tracker(inputs, samples=1)
        t.rows = [{"images": 0, "input_spread": 0.3, "silhouette": 0.0, "diversity": 0.0, "recon_mse": 0.3},
                  {"images": 500, "input_spread": spread, "silhouette": sil, "diversity": div, "recon_mse": 0.1,
                   "input_match": match}]
        t.last_outputs = torch.zeros(8, 2, 3, 32, 32)
        return VariantResult(name, 0, tmp_path / name, t, "cap (500 images)")

    ok = [result(bottleneck.LARGE, 0.1, 0.8, 0.1), result(bottleneck.SMALL, 0.07, 0.5, 0.2)]
    assert collapse_reasons(ok, [bottleneck.LARGE, bottleneck.SMALL]) == {}
    s = ExperimentSettings(size=32)
    bottleneck.report(s, ok, tmp_path / "ok")
    assert "**Claim held" in (tmp_path / "ok" / "summary.md").read_text()
    broken = [ok[0], result(bottleneck.SMALL, 0.04, 0.0, 0.0)]  # a plain-background run's value
    assert list(collapse_reasons(broken, [bottleneck.LARGE, bottleneck.SMALL])) == [bottleneck.SMALL]
    bottleneck.report(s, broken, tmp_path / "broken")
    text = (tmp_path / "broken" / "summary.md").read_text()
    assert "No verdict: bottleneck-low collapsed" in text and "Claim held" not in text
    assert "spread across inputs 0.04" in text
    # speckle: it varies across inputs as much as a good run (spread 0.07) but does not follow them
    speckle = [ok[0], result(bottleneck.SMALL, 0.07, 0.5, 0.2, match=0.52)]
    assert "52% of comparisons" in collapse_reasons(speckle, [bottleneck.LARGE, bottleneck.SMALL])[bottleneck.SMALL]
    bottleneck.report(s, speckle, tmp_path / "speckle")
    text = (tmp_path / "speckle" / "summary.md").read_text()
    assert "No verdict: bottleneck-low collapsed" in text and "Claim held" not in text


def test_input_match_tells_an_output_that_follows_its_input_from_one_that_ignores_it():
    from shapetex.data.builtin import builtin_images
    from shapetex.data.images import uint8_to_float
    from shapetex.metrics.image_scores import input_match_rate
    from shapetex.metrics.shapes import silhouette_iou

    x = uint8_to_float(builtin_images("shape-holdout", 32, 32, seed=3))
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(x.shape, generator=g) * 2 - 1
    for like in (None, silhouette_iou):
        assert input_match_rate(x, x, like) == 1.0
        assert input_match_rate(x, noise, like) < 0.7  # chance is 0.5
        assert input_match_rate(x, x.roll(3, 0), like) < 0.7  # someone else's image
    assert input_match_rate(x, x[:1].expand_as(x), None) < 0.7  # one image for every input
    assert input_match_rate(x, 0.4 * x + 0.6 * noise) >= 0.9  # noisy, but its coarse layout follows the input


def test_the_tracker_records_whether_outputs_follow_their_inputs():
    from shapetex.data.builtin import builtin_images

    t = Tracker(builtin_images("shape-holdout", 16, 32, seed=2), samples=2, preservation="structure_ssim")
    same = t.measure(lambda x, z: x, 0, 0)
    assert same["input_match"] == 1.0
    g = torch.Generator().manual_seed(1)
    speckle = t.measure(lambda x, z: torch.rand(x.shape, generator=g) * 2 - 1, 0, 1)
    assert speckle["input_match"] < 0.75 and speckle["input_spread"] > same["input_spread"] * 0.5


def test_a_window_of_eight_waits_for_the_trend_where_three_stops_on_noise():
    """A GAN-like curve: an error falling to its floor with 20% measurement noise, every 500 images. The rule over
    windows of 8 measurements stops only once the trend is within 10% of its floor, on every noise draw; windows
    of 3 stop on a noise dip while the trend is still far above it."""
    import numpy as np

    images = [500 * (i + 1) for i in range(48)]
    trend = [0.1 * np.exp(-i / 6) + 0.01 for i in range(48)]  # within 10% of the floor from 14,000 images on

    def stop(rule, noisy):
        return next((images[k - 1] for k in range(1, 49) if rule.reached(images[:k], noisy[:k])), None)

    early = []
    for seed in range(3, 8):
        rng = np.random.default_rng(seed)
        noisy = [t * (1 + 0.2 * rng.standard_normal()) for t in trend]
        long_stop = stop(PlateauRule("recon_mse_train", True, window=8), noisy)
        assert long_stop is not None and long_stop >= 14_000
        early.append(stop(PlateauRule("recon_mse_train", True, window=3), noisy))
    assert min(early) < 7_000  # a 3-window stop where the trend is still over twice its floor

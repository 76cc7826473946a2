"""AsymmetricGAN / CycleGAN: generator sizes and sharing, the losses, the image pool, conditioning,
training through the real Trainer, resume, and translation from a checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from shapetex.api import Translator
from shapetex.config import RunConfig
from shapetex.losses import (
    MS_SSIM_WEIGHTS,
    channel_l1,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    ms_ssim,
    ssim,
)
from shapetex.methods import build_method
from shapetex.methods.cycle import PairedAsymmetricGAN
from shapetex.methods.image_pool import ImagePool
from shapetex.methods.multi_domain import MultiDomainAsymmetricGAN
from shapetex.nets.cycle_nets import StarGANDiscriminator
from shapetex.nets.layers import count_parameters
from shapetex.nets.resnet_gen import ResnetGenerator, generator_pair
from shapetex.train import Trainer

TINY = dict(t_width=4, t_blocks=2, r_blocks=1, d_width=4, d_layers=2, sample_rows=2)


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ---- generator sizes and sharing -------------------------------------------------------------------
def test_block_count_and_width_set_the_sizes():
    width = 4
    c = width * 4  # channels at the residual blocks after two down-samplings
    per_block = 2 * (9 * c * c + c)  # two 3x3 convolutions with biases
    g6, g2 = ResnetGenerator(6, width), ResnetGenerator(2, width)
    assert n_params(g6) - n_params(g2) == 4 * per_block
    assert n_params(ResnetGenerator(2, 8)) > n_params(g2)
    assert n_params(ResnetGenerator(9, 64)) == 11_378_179  # CycleGAN's resnet_9blocks generator


@pytest.mark.parametrize("share", ["none", "encoder", "decoder"])
def test_sharing_reuses_the_very_same_modules(share):
    g_t, g_r = generator_pair(3, 1, 4, 4, share)
    alone_t, alone_r = ResnetGenerator(3, 4), ResnetGenerator(1, 4)
    shared = {"none": 0, "encoder": n_params(alone_t.encoder), "decoder": n_params(alone_t.decoder)}[share]
    assert count_parameters(g_t, g_r) == n_params(alone_t) + n_params(alone_r) - shared
    assert n_params(g_t) == n_params(alone_t)  # the owner keeps the shared part
    for part in ("encoder", "decoder"):
        assert (getattr(g_t, part) is getattr(g_r, part)) == (part == share)
    # both generators' losses reach the shared module, and one optimizer holds each tensor once
    x = torch.randn(1, 3, 8, 8)
    g_r(g_t(x)).mean().backward()
    if share != "none":
        weight = next(p for p in getattr(g_t, share).parameters() if p.ndim == 4)
        both = weight.grad.clone()
        g_t.zero_grad()
        g_r(g_t(x).detach()).mean().backward()  # now only G^r's use of the part
        assert weight.grad.abs().sum() > 0 and not torch.equal(both, weight.grad)
    with pytest.raises(ValueError, match="equal widths"):
        generator_pair(3, 1, 4, 8, "encoder")


def make_method(name="asymmetric", size=16, domains=None, **model):
    cfg = RunConfig(method=name)
    cfg.data.size = size
    if domains:
        cfg.data.source, cfg.data.domains = "domains", domains
    cfg.model = dict(model)
    return build_method(cfg)


def test_method_counts_follow_the_settings():
    none = make_method(**TINY).generator_parameters()
    enc = make_method(share="encoder", **TINY).generator_parameters()
    encoder = n_params(ResnetGenerator(2, 4).encoder)
    assert none["generators"] == 2 * none["G_AB"] + 2 * none["R_BA"]
    assert none["generators"] - enc["generators"] == 2 * encoder  # one shared encoder per direction
    cyc = make_method("cyclegan", **{k: v for k, v in TINY.items() if k != "r_blocks"})
    assert cyc.G.reconstructor("A") is cyc.G.G_BA and cyc.G.reconstructor("B") is cyc.G.G_AB
    assert cyc.generator_parameters()["generators"] == 2 * none["G_AB"]
    default = make_method("cyclegan", size=256)
    assert n_params(default.G.G_AB) == 11_378_179 and n_params(default.D.D_A) == 2_764_737  # 9 blocks, 70x70
    small = make_method("asymmetric", size=128).settings
    assert (small.t_blocks, small.r_blocks) == (6, 2)
    with pytest.raises(ValueError, match="tie"):
        make_method("cyclegan", share="encoder", **TINY)


# ---- losses ----------------------------------------------------------------------------------------
def test_channel_l1_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    y = torch.stack([torch.ones(2, 2), torch.tensor([[0.0, 2.0], [0.0, 2.0]]), torch.full((2, 2), -0.5)])[None]
    assert channel_l1(x, y).item() == pytest.approx(1.0 + 1.0 + 0.5)
    a, b = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    assert channel_l1(a, b).item() == pytest.approx(3 * F.l1_loss(a, b).item(), rel=1e-5)


def test_ssim_by_hand():
    a, b = 0.2, 0.5
    x, y = torch.full((1, 3, 32, 32), a), torch.full((1, 3, 32, 32), b)
    c1 = (0.01 * 2.0) ** 2  # K1 * data range, squared
    luminance = (2 * a * b + c1) / (a * a + b * b + c1)  # the variances are 0: contrast-structure is 1
    assert ssim(x, y).item() == pytest.approx(luminance, rel=1e-5)
    # MS-SSIM: contrast-structure is 1 at every scale, so only the coarsest scale's luminance counts, with
    # its weight renormalized over the scales a 32 px image holds (32, 16: the 11-tap window fits twice)
    w = MS_SSIM_WEIGHTS[1] / (MS_SSIM_WEIGHTS[0] + MS_SSIM_WEIGHTS[1])
    assert ms_ssim(x, y).item() == pytest.approx(luminance**w, rel=1e-5)
    big_x, big_y = torch.full((1, 1, 192, 192), a), torch.full((1, 1, 192, 192), b)  # all five scales
    total = sum(MS_SSIM_WEIGHTS)
    assert ms_ssim(big_x, big_y).item() == pytest.approx(luminance ** (MS_SSIM_WEIGHTS[4] / total), rel=1e-5)


def test_ms_ssim_behaviour():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 48, 48, generator=g) * 2 - 1
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(2, 3, 48, 48, generator=g)
    values = [ms_ssim(x, (x + s * noise).clamp(-1, 1)).item() for s in (0.05, 0.2, 0.8)]
    assert values[0] > values[1] > values[2]
    assert ms_ssim(x, -x).item() < 0.1
    # differentiable and finite even for unrelated images
    y = torch.rand(2, 3, 48, 48, generator=g).requires_grad_(True)
    (1 - ms_ssim(x, y)).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert ms_ssim(x, y.detach(), reduction="none").shape == (2,)


def test_gan_losses_by_hand():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert discriminator_loss("lsgan", ones, zeros).item() == 0.0
    assert discriminator_loss("lsgan", zeros, ones).item() == 2.0
    assert generator_loss("lsgan", zeros).item() == 1.0
    assert discriminator_loss("vanilla", zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert discriminator_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -0.5)).item() == pytest.approx(0.5)
    assert discriminator_loss("wgan-gp", torch.full((4,), 3.0), ones).item() == -2.0
    assert generator_loss("hinge", torch.full((4,), 2.0)).item() == -2.0
    # a linear critic D(x) = <w, x> has gradient w everywhere: the penalty is (|w| - 1)^2
    w = torch.tensor([3.0, 4.0])
    x_hat = torch.randn(5, 2, requires_grad=True)
    assert gradient_penalty(x_hat, x_hat @ w).item() == pytest.approx(16.0)
    with pytest.raises(ValueError):
        generator_loss("nonsense", ones)


# ---- the image pool --------------------------------------------------------------------------------
def test_image_pool():
    pool = ImagePool(3, (1, 1, 1))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    torch.manual_seed(0)
    assert torch.equal(pool.query(first), first)  # fills first: every new image comes straight back
    assert int(pool.count) == 3 and pool.images.shape[0] == 3
    stored_returned, new_returned = 0, 0
    for i in range(400):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        before = pool.images.clone()
        out = pool.query(new)
        assert pool.images.shape[0] == 3 and int(pool.count) == 3  # never grows past its size
        if torch.equal(out, new):
            new_returned += 1
            assert torch.equal(pool.images, before)
        else:  # an old image comes out and the new one takes its place
            stored_returned += 1
            assert any(torch.equal(out[0], img) for img in before)
            assert (pool.images == new[0]).all(dim=(1, 2, 3)).sum() == 1
    assert 160 < stored_returned < 240 and stored_returned + new_returned == 400  # p = 0.5
    # its randomness is torch's global RNG, and its state dict restores it exactly
    copy = ImagePool(3, (1, 1, 1))
    copy.load_state_dict(pool.state_dict())
    batch = torch.randn(8, 1, 1, 1)
    torch.manual_seed(5)
    a = pool.query(batch)
    torch.manual_seed(5)
    assert torch.equal(copy.query(batch), a)
    assert torch.equal(ImagePool(0, (1, 1, 1)).query(batch), batch)


# ---- conditioning ----------------------------------------------------------------------------------
def test_the_domain_label_reaches_the_generator():
    torch.manual_seed(0)
    g = ResnetGenerator(1, 4, label_channels=3, padding="zeros")
    x = torch.randn(2, 3, 16, 16)
    outs = [g(x, torch.full((2,), d)) for d in range(3)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    assert torch.equal(g(x, torch.tensor([0, 0])), g(x, F.one_hot(torch.tensor([0, 0]), 3).float()))
    with pytest.raises(ValueError, match="target domain"):
        g(x)


# ---- training through the real Trainer -------------------------------------------------------------
def write_domain(folder, n, seed, kind):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.zeros((16, 16, 3), np.uint8)
        if kind == "squares":  # a bright square on dark
            y, x = rng.integers(0, 8, 2)
            img[y:y + 8, x:x + 8] = rng.integers(150, 255, 3)
        else:  # stripes
            img[:, ::4] = rng.integers(100, 255, 3)
            img += rng.integers(0, 40, 3, dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    return str(folder)


def two_domain_config(tmp_path, budget, out="run", **model):
    cfg = RunConfig(method=model.pop("method", "asymmetric"), out=str(tmp_path / out))
    cfg.data.source = "domains"
    cfg.data.domains = [write_domain(tmp_path / "horses", 12, 0, "squares"),
                        write_domain(tmp_path / "zebras", 12, 1, "stripes")] if not (tmp_path / "horses").exists() \
        else [str(tmp_path / "horses"), str(tmp_path / "zebras")]
    cfg.data.size, cfg.data.holdout = 16, 2
    t = cfg.train
    t.budget, t.batch, t.seed, t.threads = budget, 2, 0, 1
    t.log_every, t.monitor_every, t.sample_every, t.checkpoint_every = 2, 0, 0, 0
    cfg.model = {**TINY, "lr": 2e-3, "pool_size": 4, **model}
    return cfg


def read_metrics(run):
    return [json.loads(line) for line in open(f"{run}/metrics.jsonl")]


def test_two_domain_training_lowers_the_cycle_loss_and_translates(tmp_path):
    cfg = two_domain_config(tmp_path, budget=2 * 40, share="encoder")
    result = Trainer(cfg).run()
    rows = read_metrics(cfg.out)
    cycle = [r["loss_cycle"] for r in rows]
    assert len(cycle) == 40
    assert np.mean(cycle[-5:]) < 0.6 * np.mean(cycle[:5])
    assert rows[-1]["lr"] < rows[0]["lr"] == pytest.approx(2e-3)  # linear decay over the second half
    assert all(math.isfinite(r["loss_d"]) for r in rows)
    grid = Image.open(result["samples"])
    assert grid.size == (3 * 18 + 2, 4 * 18 + 2)  # 3 columns (input, translation, back), 2 + 2 rows
    counts = json.loads((Path(cfg.out) / "parameters.json").read_text())  # written at the start, as printed
    g = Translator.load(cfg.out).method.G
    parts = {n: sum(p.numel() for p in getattr(g, n).parameters()) for n in ("G_AB", "R_BA", "G_BA", "R_AB")}
    assert {n: counts[n] for n in parts} == parts
    assert counts["generators"] == count_parameters(g) == sum(parts.values())  # a shared encoder: with G^t only
    assert counts["discriminators"] == count_parameters(Translator.load(cfg.out).method.D)

    # checkpoint -> Translator -> translate with `to`
    t = Translator.load(cfg.out, device="cpu")
    m = t.method
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        to_b, to_a = m.G.G_AB(x), m.G.G_BA(x)
    for name in ("B", "b", "1", "zebras", cfg.data.domains[1]):
        assert torch.allclose(t.translate_tensor(x, to=name)[:, 0], to_b, atol=1e-6)
    assert torch.allclose(t.translate_tensor(x, to="A")[:, 0], to_a, atol=1e-6)
    assert torch.allclose(t.translate_tensor(x)[:, 0], to_b, atol=1e-6)  # default: to B
    assert not torch.allclose(to_a, to_b)
    with pytest.raises(ValueError, match="unknown target domain"):
        t.translate_tensor(x, to="giraffes")
    # odd sizes are padded and cropped back; PIL in, PIL out
    out = t(Image.fromarray(np.zeros((10, 13, 3), np.uint8)), to="horses", native=True)[0]
    assert out.size == (13, 10)


def test_resume_continues_exactly(tmp_path):
    """Killed after 4 steps and resumed, a run ends with the same weights and pool as an unbroken one."""
    straight = two_domain_config(tmp_path, budget=2 * 7, out="straight", pool_size=3)
    Trainer(straight).run()
    broken = two_domain_config(tmp_path, budget=2 * 7, out="broken", pool_size=3)
    Trainer(broken).run(stop_after_images=2 * 4)
    Trainer(broken, resume=True).run()
    a = Translator.load(straight.out).method
    b = Translator.load(broken.out).method
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), k
    from safetensors.torch import load_file

    from shapetex.checkpoint import find_checkpoint

    wa = load_file(str(find_checkpoint(straight.out) / "weights.safetensors"))
    wb = load_file(str(find_checkpoint(broken.out) / "weights.safetensors"))
    assert int(wa["pools.A.count"]) == 3 and torch.equal(wa["pools.A.images"], wb["pools.A.images"])


def test_multi_domain_training_and_translation(tmp_path):
    domains = [write_domain(tmp_path / n, 6, s, k) for n, s, k in
               (("red", 0, "squares"), ("green", 1, "stripes"), ("blue", 2, "squares"))]
    cfg = RunConfig(method="asymmetric", out=str(tmp_path / "multi"))
    cfg.data.source, cfg.data.domains, cfg.data.size = "domains", domains, 16
    t = cfg.train
    t.budget, t.batch, t.threads, t.log_every, t.monitor_every = 3 * 6, 3, 1, 3, 3
    t.sample_every, t.checkpoint_every = 0, 0
    cfg.model = {**TINY, "gan_loss": "wgan-gp", "g_every": 2}
    trainer = Trainer(cfg)
    assert isinstance(trainer.method, MultiDomainAsymmetricGAN) and trainer.method.data_kind == "domain_labels"
    result = trainer.run()
    rows = read_metrics(cfg.out)
    assert all(math.isfinite(r["loss_gp"]) and math.isfinite(r["loss_cls_d"]) for r in rows)
    assert all("loss_cycle" in r and "loss_ssim" in r for r in rows[1:])
    assert "cycle_l1" in rows[-1] and 0 <= rows[-1]["d_cls_accuracy_holdout"] <= 1
    summary = (Path(cfg.out) / "summary.md").read_text()  # the monitors the method declares, first and last
    assert "- cycle_l1: " in summary and "- d_cls_accuracy_holdout: " in summary
    assert Image.open(result["samples"]).size[0] == 5 * 18 + 2  # input, 3 targets, reconstruction
    tr = Translator.load(cfg.out)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    outs = {n: tr.translate_tensor(x, to=n)[:, 0] for n in ("red", "green", "blue")}
    assert torch.allclose(outs["green"], tr.translate_tensor(x, to="1")[:, 0])
    assert not torch.allclose(outs["red"], outs["blue"])
    assert torch.allclose(outs["blue"], tr.translate_tensor(x, to="C")[:, 0])


def test_supervised_mode_adds_a_pixel_loss(tmp_path):
    """Paired data (A/ and B/ matched by name): the translation is pulled towards its ground truth."""
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "pairs" / side).mkdir(parents=True)
    for i in range(8):
        img = np.zeros((16, 16, 3), np.uint8)
        y, x = rng.integers(0, 8, 2)
        img[y:y + 8, x:x + 8] = rng.integers(100, 255, 3)
        Image.fromarray(img).save(tmp_path / "pairs" / "A" / f"{i}.png")
        Image.fromarray(255 - img).save(tmp_path / "pairs" / "B" / f"{i}.png")  # B: the negative of A
    def run(weight):
        cfg = RunConfig(method="asymmetric", out=str(tmp_path / f"sup{weight}"))
        cfg.data.source, cfg.data.paired, cfg.data.size, cfg.data.holdout = "paired", str(tmp_path / "pairs"), 16, 2
        t = cfg.train
        t.budget, t.batch, t.threads, t.log_every, t.monitor_every, t.sample_every, t.checkpoint_every = \
            2 * 20, 2, 1, 2, 2 * 20, 0, 0
        cfg.model = {**TINY, "lr": 2e-3, "pixel_weight": weight}
        trainer = Trainer(cfg)
        assert isinstance(trainer.method, PairedAsymmetricGAN) and trainer.method.flip_together
        trainer.run()
        return read_metrics(cfg.out)

    with_pixel, without = run(10.0), run(0.0)
    pixel = [r["loss_pixel"] for r in with_pixel]
    assert np.mean(pixel[-3:]) < 0.75 * np.mean(pixel[:3])
    assert "loss_pixel" not in without[-1]
    # held-out translations are closer to their ground truth with the pixel loss than without it
    assert with_pixel[-1]["pixel_l1_A"] < 0.85 * without[-1]["pixel_l1_A"]
    summary = (tmp_path / "sup10.0" / "summary.md").read_text()  # the monitors the method declares
    assert all(f"- {key}: " in summary for key in ("cycle_l1_A", "cycle_l1_B", "pixel_l1_A", "pixel_l1_B"))


# ---- the authors' released multi-domain settings ----------------------------------------------------------
def test_stargan_discriminator_as_documented():
    """StarGAN's D at 128 px for 5 domains: six 4x4 stride-2 convs 64 -> 2048 with biases, a 3x3 patch head and
    a 2x2 classifier, both without bias: 44,762,048 parameters (StarGAN's printed count)."""
    d = StarGANDiscriminator(5, 128, layers=6, width=64)
    assert n_params(d) == 44_762_048
    src, cls = d(torch.zeros(2, 3, 128, 128))
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 5)
    assert [m.negative_slope for m in d.trunk if isinstance(m, torch.nn.LeakyReLU)] == [0.01] * 6
    with pytest.raises(ValueError, match="multiple of 64"):
        StarGANDiscriminator(5, 96, layers=6)


def test_the_authors_preset_trains_multi_domain_with_their_settings(tmp_path):
    domains = [write_domain(tmp_path / n, 6, s, k) for n, s, k in (("red", 0, "squares"), ("blue", 1, "stripes"))]
    cfg = RunConfig(method="asymmetric-authors", out=str(tmp_path / "authors"))
    cfg.data.source, cfg.data.domains, cfg.data.size = "domains", domains, 16
    t = cfg.train
    t.budget, t.batch, t.threads, t.log_every, t.monitor_every, t.sample_every, t.checkpoint_every = \
        2 * 10, 2, 1, 2, 0, 0, 0
    cfg.model = {"t_width": 4, "d_width": 4, "d_layers": 2, "sample_rows": 1}  # tiny; the rest is the preset's
    trainer = Trainer(cfg)
    m, s = trainer.method, trainer.method.settings
    assert isinstance(m, MultiDomainAsymmetricGAN) and isinstance(m.D, StarGANDiscriminator)
    assert (s.gan_loss, s.g_every, s.lr, s.identity_weight, s.t_blocks, s.r_blocks) == ("wgan-gp", 5, 1e-4, 0, 6, 2)
    assert len(m.G.G.blocks) == 6 and len(m.G.R.blocks) == 2 and s.padding == "zeros"
    trainer.run()
    rows = read_metrics(cfg.out)
    assert rows[0]["lr"] == pytest.approx(1e-4) and all(math.isfinite(r["loss_gp"]) for r in rows)
    assert "loss_idt" not in rows[-1] and "loss_cycle" in rows[-1]  # G stepped at steps 5 and 10
    tr = Translator.load(cfg.out)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert tr.translate_tensor(x, to="blue").shape == (1, 1, 3, 16, 16)
    cfg.data.source, cfg.data.paired = "paired", str(tmp_path / "pairs")
    with pytest.raises(ValueError, match="paired data has two domains"):
        Trainer(cfg, overwrite=True)

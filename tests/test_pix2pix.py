"""pix2pix: U-Net wiring, PatchGAN receptive fields, the conditional D, the loss switches, the lr schedule,
test-time dropout, and a short real training run through the Trainer, the checkpoint and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from shapetex import cli
from shapetex.api import Translator
from shapetex.config import DataConfig, RunConfig, TrainConfig
from shapetex.losses import discriminator_loss, generator_loss
from shapetex.methods import build_method, get_method
from shapetex.methods.pix2pix import Pix2Pix
from shapetex.nets.patchgan import PatchDiscriminator, receptive_field
from shapetex.nets.unet import UNetGenerator
from shapetex.train import Trainer


def method(size=32, **model) -> Pix2Pix:
    """A tiny pix2pix (budget 400 images at batch 4: 100 steps)."""
    return build_method(RunConfig(method="pix2pix", data=DataConfig(source="paired", size=size),
                             train=TrainConfig(budget=400, batch=4), model={"g_channels": 8, "d_channels": 8, **model}))


# ---- U-Net ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,depth", [(32, 5), (64, 6)])
def test_unet_shapes_and_levels(size, depth):
    g = UNetGenerator(depth, base_channels=4).eval()
    x = torch.randn(2, 3, size, size)
    feats = g.encode(x)
    assert len(feats) == depth
    assert [f.shape[-1] for f in feats] == [size // 2 ** (i + 1) for i in range(depth)]  # down to 1x1
    assert [f.shape[1] for f in feats] == [4 * min(2**i, 8) for i in range(depth)]
    out = g(x)
    assert out.shape == x.shape and out.abs().max() <= 1


@pytest.mark.parametrize("depth", [5, 6])
def test_unet_skips_carry_information_past_a_zeroed_bottleneck(depth):
    torch.manual_seed(0)
    # float64: at initialisation a signal shrinks layer by layer, and the differences must not be rounding
    g = UNetGenerator(depth, base_channels=4, test_dropout=False).double().eval()
    size = 2**depth
    xa = torch.randn(1, 3, size, size, dtype=torch.double)
    feats_a = g.encode(xa)
    feats_b = g.encode(torch.randn(1, 3, size, size, dtype=torch.double))
    zero_bottleneck = [*feats_a[:-1], torch.zeros_like(feats_a[-1])]
    base = g.decode(zero_bottleneck)
    assert torch.equal(base, g.decode(zero_bottleneck))
    # swap in only the innermost skip (the 2x2 level, just above the bottleneck): the output follows it
    inner = list(zero_bottleneck)
    inner[-2] = feats_b[-2]
    assert (g.decode(inner) - base).abs().max() > 1e-8
    # and the outermost skip: full resolution, straight into the last layer
    outer = list(zero_bottleneck)
    outer[0] = feats_b[0]
    assert (g.decode(outer) - base).abs().max() > 1e-8
    # the bottleneck matters too (weakly at initialisation), and encode/decode is the forward pass
    assert (g.decode(feats_a) - base).abs().max() > 1e-8
    assert torch.equal(g.decode(feats_a), g(xa))
    # a whole different input changes the output even with the bottleneck zeroed: the skips carry it
    g.encoder[-1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    xa, xb = torch.randn(2, 1, 3, size, size, dtype=torch.double)
    assert (g(xa) - g(xb)).abs().max() > 1e-3


def test_unet_dropout_is_the_noise_and_can_stay_on_at_test_time():
    # the reference drops out depth - 5 decoder layers: none at depth 5 unless asked for
    assert UNetGenerator(5, base_channels=4).dropout_at == set()
    assert UNetGenerator(5, base_channels=4, dropout_layers=1).dropout_at == {1}
    x = torch.randn(1, 3, 64, 64)
    g = UNetGenerator(6, base_channels=4, test_dropout=True).eval()
    assert g.dropout_at == {1}
    assert not torch.equal(g(x), g(x))
    g.test_dropout = False
    assert torch.equal(g(x), g(x))
    g.dropout = 0.0
    g.train()
    assert torch.equal(g(x), g(x))  # no other noise, even in training mode


# ---- PatchGAN ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,field", [(0, 1), (1, 16), (2, 34), (3, 70), (5, 286)])
def test_patchgan_receptive_field_analytic(layers, field):
    d = PatchDiscriminator(6, layers, base_channels=4)
    assert d.receptive_field == field
    assert receptive_field([(4, 2)] * layers + [(4, 1), (4, 1)]) == (field if layers else 7)


def empirical_field(d: PatchDiscriminator, size: int) -> tuple[int, int]:
    """Height and width of the input region with nonzero gradient for the centre output logit."""
    d = d.double().eval()  # eval: batch norm is per channel, so no spatial mixing through its statistics
    x = torch.randn(1, d.net[0].in_channels, size, size, dtype=torch.double, requires_grad=True)
    out = d(x)
    h, w = out.shape[-2:]
    (grad,) = torch.autograd.grad(out[0, 0, h // 2, w // 2], x)
    nz = grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = nz.any(dim=1).nonzero(), nz.any(dim=0).nonzero()
    assert rows.min() > 0 and rows.max() < size - 1, "the region touches the border: input too small"
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_patchgan_receptive_field_empirical():
    torch.manual_seed(0)
    default = PatchDiscriminator(6, base_channels=4)  # layers=3: the paper's 70x70
    assert empirical_field(default, 160) == (70, 70)
    assert empirical_field(PatchDiscriminator(6, 1, base_channels=4), 48) == (16, 16)
    assert empirical_field(PatchDiscriminator(3, 0, base_channels=4), 9) == (1, 1)  # PixelGAN


def test_conditional_discriminator_sees_the_condition():
    torch.manual_seed(0)
    m = method()
    assert m.D.net[0].in_channels == 6
    x1, x2, y = torch.randn(3, 2, 3, 32, 32)
    assert (m.D(m.d_input(x1, y)) - m.D(m.d_input(x2, y))).abs().max() > 1e-4
    unconditional = method(loss="gan")
    assert unconditional.D.net[0].in_channels == 3
    assert torch.equal(unconditional.D(unconditional.d_input(x1, y)), unconditional.D(unconditional.d_input(x2, y)))


# ---- losses --------------------------------------------------------------------------------------------
def losses_of(m: Pix2Pix, x, y, fake, donor: Pix2Pix | None = None):
    if donor is not None and m.D is not None:
        m.D.load_state_dict(donor.D.state_dict())
    torch.manual_seed(0)
    return m.generator_loss(x, y, fake)


def test_l1_weight_and_ablation_switches():
    torch.manual_seed(0)
    x, y, y2, fake = torch.rand(4, 2, 3, 32, 32) * 2 - 1
    full = method(lambda_l1=100.0)
    loss_full, logs = losses_of(full, x, y, fake)
    l1 = (fake - y).abs().mean().item()
    assert logs["l1"] == pytest.approx(l1)
    # cGAN + lambda L1: changing lambda moves the loss by exactly delta-lambda * L1
    loss_10, _ = losses_of(method(lambda_l1=10.0), x, y, fake, donor=full)
    assert (loss_full - loss_10).item() == pytest.approx(90 * l1, rel=1e-5)
    # the GAN term is the non-saturating BCE of D on (x, fake)
    gan = generator_loss("vanilla", full.D(torch.cat([x, fake], 1)))
    assert loss_full.item() == pytest.approx(gan.item() + 100 * l1, rel=1e-5)
    # cGAN only: no L1 term, so the target does not matter
    cgan = method(loss="cgan")
    loss_a, _ = losses_of(cgan, x, y, fake, donor=full)
    loss_b, _ = losses_of(cgan, x, y2, fake, donor=full)
    assert loss_a.item() == pytest.approx(gan.item(), rel=1e-6) and loss_a.item() == loss_b.item()
    # L1 only: no discriminator at all, nothing else in the loss
    l1_only = method(loss="l1", lambda_l1=100.0)
    assert l1_only.D is None and l1_only.trained == ("G",) and set(l1_only.make_optimizers()) == {"G"}
    loss_l1, _ = losses_of(l1_only, x, y, fake)
    assert loss_l1.item() == pytest.approx(100 * l1, rel=1e-6)
    # unconditional GAN + L1: D ignores the input
    gl = method(loss="gan+l1")
    loss_x, _ = losses_of(gl, x, y, fake)
    loss_y, _ = losses_of(gl, y2, y, fake)
    assert loss_x.item() == loss_y.item()
    with pytest.raises(ValueError, match="loss"):
        method(loss="l2")


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "hinge"])
def test_gan_objectives_and_halved_discriminator_loss(mode):
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 0.2, 1.0])
    if mode == "vanilla":
        want_d = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
        want_g = -torch.log(torch.sigmoid(fake)).mean()
    elif mode == "lsgan":
        want_d = ((real - 1) ** 2).mean() + (fake**2).mean()
        want_g = ((fake - 1) ** 2).mean()
    else:
        want_d = torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
        want_g = -fake.mean()
    assert discriminator_loss(mode, real, fake).item() == pytest.approx(want_d.item(), rel=1e-5)
    assert generator_loss(mode, fake).item() == pytest.approx(want_g.item(), rel=1e-5)
    torch.manual_seed(0)
    m = method(gan_mode=mode)
    x, y, g = torch.randn(3, 2, 3, 32, 32)
    loss, logs = m.discriminator_loss(x, y, g)
    torch.manual_seed(0)
    m2 = method(gan_mode=mode)
    want = 0.5 * discriminator_loss(mode, m2.D(torch.cat([x, y], 1)), m2.D(torch.cat([x, g], 1)))
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_learning_rate_is_constant_then_decays_linearly_from_the_step():
    m = method()  # budget 400, batch 4: 100 steps, decay over the last 50 (the reference's rule, as CycleGAN's)
    m.setup_training()
    assert m.lr_at(0) == m.lr_at(49) == pytest.approx(2e-4)
    assert m.lr_at(50) == pytest.approx(2e-4 * 50 / 51)
    assert m.lr_at(75) == pytest.approx(2e-4 * 25 / 51)
    assert m.lr_at(99) == pytest.approx(2e-4 / 51)
    lrs = [m.lr_at(s) for s in range(50, 100)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    logs = m.train_step({"input": x, "target": -x}, 80)  # a resumed run: the rate comes from the step alone
    assert logs["lr"] == pytest.approx(2e-4 * 20 / 51)
    assert all(g["lr"] == pytest.approx(logs["lr"]) for o in m.engine.optimizers.values() for g in o.param_groups)


@pytest.mark.parametrize("budget", [400, 402, 398, 5])
def test_no_step_of_the_run_has_a_zero_learning_rate(budget):
    """The schedule runs over the steps the loop takes, ceil(budget / batch): with a budget that is not a
    multiple of the batch the last step used to be past the schedule's end, at lr 0."""
    m = build_method(RunConfig(method="pix2pix", data=DataConfig(source="paired", size=32),
                               train=TrainConfig(budget=budget, batch=4), model={"g_channels": 8, "d_channels": 8}))
    steps = -(-budget // 4)
    assert m.context.total_steps == steps
    lrs = [m.lr_at(s) for s in range(steps)]
    assert min(lrs) > 0
    assert lrs[-1] < 2e-4 or steps == 1

def test_translate_keeps_running_statistics_and_mode():
    torch.manual_seed(0)
    m = method(test_dropout=True, test_batch_stats=True, dropout_layers=1)  # 32 px: the reference has none
    m.G.train()
    before = {k: v.clone() for k, v in m.G.state_dict().items()}
    x = torch.rand(2, 3, 20, 28) * 2 - 1  # not a multiple of 32: padded and cropped back
    torch.manual_seed(1)
    a = m.translate(x)
    torch.manual_seed(1)
    b = m.translate(x)
    torch.manual_seed(2)
    c = m.translate(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)  # dropout: seeded noise
    assert m.G.training
    assert all(torch.equal(v, m.G.state_dict()[k]) for k, v in before.items())
    det = method(test_dropout=False, test_batch_stats=False)
    assert torch.equal(det.translate(x), det.translate(x))
    # batch statistics are each image's own: a translation does not depend on the rest of its batch
    own = method(test_dropout=False, test_batch_stats=True)
    own.G.train()
    pair = torch.cat([x, -x])
    assert torch.allclose(own.translate(pair)[:2], own.translate(x), atol=1e-6)
    assert torch.allclose(own.translate(pair)[2:3], own.translate(-x[:1]), atol=1e-6)


# ---- training through the real loop --------------------------------------------------------------------
def make_pairs(root, n=10, size=32, seed=0):
    """A/ random discs on black, B/ the same image with colours inverted: a pixelwise, learnable mapping."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        for _ in range(3):
            cx, cy = rng.uniform(4, size - 4, 2)
            a[(xx - cx) ** 2 + (yy - cy) ** 2 < rng.uniform(4, 10) ** 2] = rng.integers(0, 256, 3)
        for side, img in (("A", a), ("B", 255 - a)):
            (root / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / side / f"{i:02d}.png")
    return root


def test_training_lowers_l1_and_the_checkpoint_translates(tmp_path):
    data = make_pairs(tmp_path / "pairs")
    cfg = RunConfig(method="pix2pix", out=str(tmp_path / "run"),
                    data=DataConfig(source="paired", paired=str(data), size=32, holdout=2),
                    train=TrainConfig(budget=320, batch=4, log_every=80, sample_every=0, checkpoint_every=0,
                                      monitor_every=80, seed=0),
                    model={"g_channels": 8, "d_channels": 8, "lr": 2e-3})
    trainer = Trainer(cfg)
    assert trainer.method.flip_together
    torch.manual_seed(0)
    start = trainer.monitors()["val_l1"]
    result = trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    end = rows[-1]["val_l1"]  # held-out pairs, never trained on
    assert start > 0.5 and end < 0.25 and end < 0.35 * start, (start, end)
    assert rows[-1]["l1"] < 0.25
    summary = (tmp_path / "run" / "summary.md").read_text()  # the method's own validation score, first and last
    first = next(r for r in rows if "val_l1" in r)
    assert f"val_l1: {first['val_l1']:.4g} at {first['images']:,} images -> {end:.4g} at 320 images" in summary
    # the sample grid: input, output and ground truth columns
    assert result["samples"] and Image.open(result["samples"]).size[0] == 3 * 32 + 4 * 2
    cols = trainer.method.sample_columns(trainer.holdout, 1, 0)
    assert len(cols) == 3 and torch.equal(cols[2], trainer.holdout["target"][:8].float() / 127.5 - 1)
    # save/load: the loaded translator reproduces the trained one and maps held-out inputs onto targets
    t = Translator.load(tmp_path / "run", device="cpu")
    assert isinstance(t.method, get_method("pix2pix")) and t.method.z_dim == 0
    x = trainer.holdout["input"].float() / 127.5 - 1
    y = trainer.holdout["target"].float() / 127.5 - 1
    loaded = t.translate_tensor(x, samples=1, seed=5)[:, 0]
    trainer.method.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5 * 7919)
        direct = trainer.method.translate(x).clamp(-1, 1)
    assert torch.allclose(loaded, direct, atol=1e-5)
    assert (loaded - y).abs().mean() < 0.25


def test_cli_train_and_translate(tmp_path, capsys):
    data = make_pairs(tmp_path / "pairs", n=4)
    ab = tmp_path / "ab"  # the same pairs in pix2pix's AB layout, B on the left so BtoA is the real direction
    ab.mkdir()
    for i in range(4):
        a, b = (np.asarray(Image.open(data / s / f"{i:02d}.png")) for s in "AB")
        Image.fromarray(np.concatenate([b, a], axis=1)).save(ab / f"{i}.png")
    run = tmp_path / "runs" / "p2p"
    rc = cli.main(["train", "--method", "pix2pix", "--paired", str(ab), "--direction", "BtoA", "--size", "32",
                   "--budget", "8", "--batch", "4", "--out", str(run), "--set", "model.g_channels=4",
                   "--set", "model.d_channels=4", "--set", "train.log_every=4"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["direction"] == "BtoA" and cfg["model"]["depth"] == 5 and cfg["model"]["test_dropout"]
    rc = cli.main(["translate", "--checkpoint", str(run), "--input", str(data / "A"), "--out", str(tmp_path / "o")])
    assert rc == 0
    outs = sorted((tmp_path / "o").glob("*.png"))
    assert [p.name for p in outs] == [f"{i:02d}.png" for i in range(4)]
    assert Image.open(outs[0]).size == (32, 32)

"""pix2pix (Isola et al., 2017): paired image-to-image translation with a conditional GAN.

G: a U-Net (`shapetex.nets.unet`, the reference implementation's unet_128/unet_256 layer for layer), dropout
its only noise. D: a conditional PatchGAN that sees the input
and an output (real target or G's) concatenated on channels. Loss: cGAN + lambda * L1 (lambda 100);
D's objective is halved, as in the paper. Weights start as the reference's: conv N(0, 0.02), batch
norm weights N(1, 0.02), biases 0. Adam (2e-4, beta1 0.5); the learning rate is constant for the
first half of the budget and decays linearly towards zero over the second half, computed from the step
number (so a resumed run gets the same rate).

The paper's ablations are settings: `loss` = cgan+l1 (default) | cgan | l1 | gan | gan+l1 ("gan" is the
unconditional D that sees the output only), `d_layers` = 3 (70x70 PatchGAN) | 0 (1x1 PixelGAN) |
5 (286x286) | ..., `gan_mode` = vanilla | lsgan | hinge, `norm` = batch | instance.
At test time the generator runs as in training, like the paper: dropout on (`test_dropout`) and batch norm
from each translated image's own statistics, as a batch of one would give (`test_batch_stats`); neither
updates any state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import ConfigError
from ..data.preprocess import REFERENCE_LOAD_RATIO
from ..engine import Engine
from ..nets.init import init_normal
from ..nets.layers import pad_to_multiple
from ..nets.patchgan import PatchDiscriminator
from ..nets.unet import UNetGenerator, depth_for_size
from .base import LinearDecayLR, Method
from .context import RunContext

LOSSES = ("cgan+l1", "cgan", "l1", "gan", "gan+l1")
GAN_MODES = ("vanilla", "lsgan", "hinge")  # of `shapetex.losses`' GAN losses (wgan-gp wants a penalty)


@dataclass
class Pix2PixSettings:
    depth: int | None = None  # U-Net down-sampling steps; None: down to 1x1 (log2 of the size: 8 at 256)
    g_channels: int = 64  # channels of the U-Net's first level (64-128-256-512-512-...)
    d_channels: int = 64
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 -> 70x70 patches, 0 -> 1x1 PixelGAN, 5 -> 286x286
    norm: str = "batch"  # batch | instance (G and D)
    dropout: float = 0.5  # on decoder layers 1 .. dropout_layers: the generator's noise
    dropout_layers: int | None = None  # None: the reference's, depth - 5 (unet_256: 3, unet_128: 2, 32 px: none)
    test_dropout: bool = True  # keep dropout on when translating (the paper does)
    test_batch_stats: bool = True  # batch norm from each translated image's own statistics (the paper does)
    loss: str = "cgan+l1"  # cgan+l1 | cgan | l1 | gan | gan+l1 (the paper's Table 1 ablations)
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"  # vanilla (non-saturating BCE) | lsgan | hinge
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_fraction: float = 0.5  # the last this fraction of the steps decays the lr linearly towards 0


@contextlib.contextmanager
def batch_statistics(net: nn.Module):
    """Batch norm layers normalize each image by its own statistics, as a batch of one would (the reference
    tests with batch 1), and leave their running averages alone. That is instance norm with the layer's affine
    parameters: one forward pass for the whole batch, and no image's statistics depend on its batch-mates."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def make(m):
        return lambda x: F.instance_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps)

    for m in bns:
        m.forward = make(m)
    try:
        yield
    finally:
        for m in bns:
            del m.forward


class Pix2Pix(LinearDecayLR, Method):
    name = "pix2pix"
    data_kind = "paired"
    sample_key = "input"
    flip_together = True
    load_ratio = REFERENCE_LOAD_RATIO  # the reference's 286 -> 256 jitter
    monitor_keys = ("val_l1",)
    Settings = Pix2PixSettings

    @classmethod
    def defaults(cls, s: Pix2PixSettings, context: RunContext) -> dict:
        return {"depth": depth_for_size(min(context.crop))}  # the shorter side of the training crops

    def __init__(self, settings: Pix2PixSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        s = settings
        side = min(context.crop)
        if s.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {s.loss!r}")
        if s.gan_mode not in GAN_MODES:
            raise ConfigError(f"gan_mode must be one of {GAN_MODES}, got {s.gan_mode!r}")
        if 2**s.depth > side:
            raise ConfigError(f"U-Net depth {s.depth} halves a {side}px image below 1 pixel")
        terms = s.loss.split("+")
        self.use_gan = "cgan" in terms or "gan" in terms
        self.conditional = "cgan" in terms
        self.use_l1 = "l1" in terms
        self.trained = ("G", "D") if self.use_gan else ("G",)
        self.G = UNetGenerator(s.depth, 3, 3, s.g_channels, s.norm, s.dropout, s.dropout_layers, s.test_dropout)
        self.D = PatchDiscriminator(6 if self.conditional else 3, s.d_layers, s.d_channels, s.norm) \
            if self.use_gan else None
        for net in (self.G, self.D):
            if net is not None:
                init_normal(net)

    @property
    def input_multiple(self) -> int:
        return self.G.multiple

    # ---- optimisation --------------------------------------------------------------------------
    def make_optimizers(self):
        s = self.settings
        opts = {"G": torch.optim.Adam(self.G.parameters(), lr=s.lr, betas=(s.beta1, s.beta2))}
        if self.D is not None:
            opts["D"] = torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=(s.beta1, s.beta2))
        return opts

    # ---- losses --------------------------------------------------------------------------------
    def d_input(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What D sees: the condition and an output on channels (cGAN), or the output alone (GAN)."""
        return torch.cat([x, y], dim=1) if self.conditional else y

    def generator_loss(self, x, y, fake, d=None) -> tuple[torch.Tensor, dict[str, float]]:
        """G's objective: [c]GAN term (when on) + lambda * L1 (when on). `d`: the discriminator to call."""
        s = self.settings
        logs = {}
        loss = fake.new_zeros((), dtype=torch.float32)
        if self.use_gan:
            d = d if d is not None else self.D
            with self.engine.autocast():
                logits = d(self.d_input(x, fake))
            loss_gan = losses.generator_loss(s.gan_mode, logits)
            loss = loss + loss_gan
            logs["loss_g_gan"] = loss_gan.detach()
        l1 = F.l1_loss(fake.float(), y.float())
        if self.use_l1:
            loss = loss + s.lambda_l1 * l1
        logs["l1"] = l1.detach()  # logged either way: the distance to the target is what pix2pix is judged by
        logs["loss_g"] = loss.detach()
        return loss, logs

    def discriminator_loss(self, x, y, fake, d=None) -> tuple[torch.Tensor, dict[str, float]]:
        """Half of D's objective on (x, y) real and (x, G(x)) fake, scored in separate passes (as the paper
        does; with batch norm, real and fake then do not share batch statistics)."""
        d = d if d is not None else self.D
        with self.engine.autocast():
            l_real = d(self.d_input(x, y))
            l_fake = d(self.d_input(x, fake.detach()))
        loss = 0.5 * losses.discriminator_loss(self.settings.gan_mode, l_real, l_fake)
        return loss, {"loss_d": loss.detach(), "d_real": l_real.float().mean().detach(),
                      "d_fake": l_fake.float().mean().detach()}

    def train_step(self, batch, step):
        e = self.engine
        lr = self.set_lr(step)
        x, y = batch["input"], batch["target"]
        with e.phase("G"):
            with e.autocast():
                fake = e.net("G")(x)
            loss_g, logs = self.generator_loss(x, y, fake, e.net("D") if self.use_gan else None)
            e.step(loss_g, "G")
        if self.use_gan:
            with e.phase("D"):
                loss_d, logs_d = self.discriminator_loss(x, y, fake, e.net("D"))
                e.step(loss_d, "D")
            logs.update(logs_d)
        logs["lr"] = lr
        return logs

    # ---- translation ---------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None, **kw) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1], any H and W (padded to the U-Net's multiple, cropped back).
        pix2pix has no latent: z is ignored; dropout (when `test_dropout`) draws from torch's global RNG."""
        h, w = x.shape[-2:]
        x, _ = pad_to_multiple(x, self.input_multiple)
        was_training = self.G.training
        self.G.eval()
        stats = batch_statistics(self.G) if self.settings.test_batch_stats else contextlib.nullcontext()
        try:
            with stats, self.engine.autocast():
                out = self.G(x)
        finally:
            self.G.train(was_training)
        return out.float()[..., :h, :w]

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int, seed: int) -> list[torch.Tensor]:
        """Sample-grid columns: input, output, ground truth."""
        e = self.engine
        x, y = e.prepare_images(holdout["input"][:8]), e.prepare_images(holdout["target"][:8])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the same dropout masks every time: grids over time are comparable
            out = self.translate(x)
        return [c.float().cpu() for c in (x, out, y)]

    @torch.no_grad()
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """L1 between the translation of the held-out inputs and their targets ([-1, 1] scale)."""
        out = self.translate(holdout["input"])
        return {"val_l1": F.l1_loss(out, holdout["target"].float()).item()}

"""The streamlined adversarial translator (arXiv 2411.10368).

G(x, z): plain conv encoder -> bottleneck features -> StyleGAN2 decoder styled by mapping(z).
D: StyleGAN2 residual discriminator; the texture set is its real data.
Loss: the non-saturating logistic GAN loss only, plus lazy R1 on reals; an EMA of G translates.
There is no reconstruction, cycle or identity term: whatever of the input survives, survives because
the generator finds it useful for fooling D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..engine import Engine
from ..nets.layers import pad_to_multiple
from ..nets.stylegan2 import Discriminator
from ..nets.translator import TranslatorGenerator
from ..run_summary import CONDITION_MONITORS, condition_summary
from .base import Method
from .context import RunContext


@dataclass
class AdversarialSettings:
    bottleneck_res: int = 16  # 16 (16x16x128, the paper's default) or 8 (the low-dimension variant)
    bottleneck_channels: int = 128  # channels of the encoder output
    z_dim: int | None = None  # latent size (None: 64 up to 64 px, else 128)
    w_dim: int | None = None  # style vector size after the mapping network
    mapping_layers: int | None = None  # layers of the mapping network z -> w
    widths: str = "auto"  # auto | stylegan2 | stylegan2-relative | cpu | cpu-small (width_preset); the four below win
    g_channel_base: int | None = None  # channels at resolution r: min(base / r, max)
    g_channel_max: int | None = None  # the generator's widest layer
    d_channel_base: int | None = None  # the discriminator's, as g_channel_base
    d_channel_max: int | None = None  # the discriminator's widest layer
    lr_g: float = 0.0025  # Adam learning rates (StyleGAN2's)
    lr_d: float = 0.0025  # (R1 on: scaled for lazy regularization, as StyleGAN2 does)
    beta1: float = 0.0  # Adam betas
    beta2: float = 0.99
    r1_gamma: float | None = None  # None: StyleGAN2-ADA's heuristic 0.0002 * size^2 / batch
    r1_interval: int = 16  # lazy regularization: R1 every this many steps, scaled up to match
    ema_kimg: float | None = None  # half-life of the EMA generator in thousands of images
    ema_rampup: float = 0.05  # EMA half-life at most this fraction of the images seen so far
    mbstd_group: int = 4  # minibatch standard deviation group size in D
    # Sinusoid inputs to the decoder, rotated and shifted by w (StyleGAN3's synthesis input); 0: the
    # paper's decoder, without them. See nets.translator.FourierFeatures for why they help z matter.
    fourier_features: int = 0  # number of sinusoid inputs (0: off)
    fourier_init: float = 0.0  # initial strength of the sinusoids at the output resolution (lower ones: 0)
    style_mixing: float = 0.0  # probability of StyleGAN2's style mixing per step (StyleGAN2: 0.9; 0: off)
    # NOT the paper's method: weight of MSGAN's mode-seeking term (Mao et al., CVPR 2019), which asks two z for
    # one input to give different outputs. 0 (the default) keeps the loss adversarial-only.
    mode_seeking: float = 0.0


# Channel widths, min(base / resolution, max): StyleGAN2's own (config F: base 32768, max 512) and a
# narrower one that trains in minutes on a CPU. "auto" takes StyleGAN2's from 128 px up.
WIDTH_PRESETS = {
    "stylegan2": dict(g_channel_base=32768, g_channel_max=512, d_channel_base=32768, d_channel_max=512),
    "cpu": dict(g_channel_base=8192, g_channel_max=256, d_channel_base=8192, d_channel_max=256),
    "cpu-small": dict(g_channel_base=2048, g_channel_max=128, d_channel_base=2048, d_channel_max=128),
}


PAPER_SIZE = 512  # the paper trains at 512 px


def width_preset(size: int, preset: str = "auto") -> dict:
    """Channel settings of a named preset. "stylegan2-relative" gives every layer the width StyleGAN2 has at the
    same depth of a 512 px network (base 32768 * size / 512): at 64 px D has 64 channels at 64x64 and 512 from
    8x8 down, as StyleGAN2's has at 512x512 and 64x64: the same discriminator, scaled to the image size."""
    if preset == "auto":
        preset = "cpu-small" if size <= 64 else "stylegan2"
    if preset == "stylegan2-relative":
        base = max(32768 * size // PAPER_SIZE, 1)
        return dict(g_channel_base=base, g_channel_max=512, d_channel_base=base, d_channel_max=512)
    if preset not in WIDTH_PRESETS:
        raise ConfigError(f"model.widths: unknown preset {preset!r}; choose auto, stylegan2-relative, "
                          f"{', '.join(WIDTH_PRESETS)}")
    return WIDTH_PRESETS[preset]


def size_defaults(size: int, batch: int, widths: str = "auto") -> dict:
    """Sensible defaults per resolution: small and fast on CPU at 32-64, StyleGAN2's at 128 and up."""
    small = size <= 64
    return dict(
        z_dim=64 if small else 128, w_dim=128 if small else 256 if size <= 128 else 512,
        mapping_layers=2 if small else 4 if size <= 128 else 8,
        **width_preset(size, widths),
        r1_gamma=0.0002 * size * size / batch, ema_kimg=batch * 10 / 32,
    )


class AdversarialTranslator(Method):
    name = "adversarial"
    data_kind = "unpaired"
    trained = ("G", "D")
    ema_of = {"G_ema": "G"}
    monitor_keys = CONDITION_MONITORS  # recon_mse, d_accuracy: the paper's two conditions (see `summary`)
    bf16_cpu_channels_last = True  # 256 px on a Zen 4: 6.4 s per batch of 8 in NHWC against 7.8 s in NCHW
    Settings = AdversarialSettings
    limits = {"z_dim": (1, 4096), "w_dim": (1, 4096), "bottleneck_channels": (1, 4096)}  # StyleGAN2: 512

    @classmethod
    def defaults(cls, s: AdversarialSettings, context: RunContext) -> dict:
        return size_defaults(context.size, context.batch, s.widths)

    def __init__(self, settings: AdversarialSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        h, w = context.crop
        if w != h:  # its discriminator is built for one square size
            raise ConfigError(f"{self.name} trains on square images: data.width {w} is not data.size {h} "
                              "(non-square crops: pix2pix, cyclegan, asymmetric, cut)")
        s = settings
        self.G = TranslatorGenerator(context.size, s.bottleneck_res, s.bottleneck_channels, s.z_dim, s.w_dim,
                                     s.mapping_layers, s.g_channel_base, s.g_channel_max, s.fourier_features,
                                     s.fourier_init)
        self.D = self.make_discriminator() if "D" in self.trained else None
        self.G_ema = None

    def make_discriminator(self) -> Discriminator:
        s = self.settings
        return Discriminator(self.context.size, s.d_channel_base, s.d_channel_max, s.mbstd_group)

    @property
    def z_dim(self) -> int:
        return self.settings.z_dim

    @property
    def input_multiple(self) -> int:
        return self.G.multiple

    def make_optimizers(self):
        s = self.settings
        # Lazy R1 runs every r1_interval steps; StyleGAN2 compensates in D's lr and betas.
        lazy_r1 = s.r1_interval > 0 and s.r1_gamma > 0  # r1_interval 0 or r1_gamma 0: R1 off, plain Adam
        ratio = s.r1_interval / (s.r1_interval + 1) if lazy_r1 else 1.0
        return {
            "G": torch.optim.Adam(self.G.parameters(), lr=s.lr_g, betas=(s.beta1, s.beta2), eps=1e-8, foreach=True),
            "D": torch.optim.Adam(self.D.parameters(), lr=s.lr_d * ratio,
                                  betas=(s.beta1**ratio, s.beta2**ratio), eps=1e-8, foreach=True),
        }

    def ema_beta(self, images_seen: int, global_batch: int) -> float:
        s = self.settings
        half_life = s.ema_kimg * 1000
        if s.ema_rampup:
            half_life = min(half_life, images_seen * s.ema_rampup)
        return 0.5 ** (global_batch / max(half_life, 1e-8))

    def train_step(self, batch, step):
        e = self.engine
        x, real = batch["shape"], batch["texture"]
        z = torch.randn(x.shape[0], self.z_dim, device=x.device)
        ms = self.settings.mode_seeking
        logs = {}
        # Generator phase first; its output is reused (detached) by the discriminator phase.
        with e.phase("G"):
            with e.autocast():
                if ms > 0:  # every input twice, under two z: [x; x] with [z; z2]
                    z = torch.cat([z, torch.randn_like(z)])
                    fakes = e.net("G")(torch.cat([x, x]), z, **self.style_mix(z))
                    logits_fake = e.net("D")(fakes)
                    fake = fakes[: x.shape[0]]
                else:
                    fake = e.net("G")(x, z, **self.style_mix(z))
                    logits_fake = e.net("D")(fake)
            loss_g = F.softplus(-logits_fake).mean()
            if ms > 0:
                ratio = mode_seeking_ratio(fakes.float(), z.float())
                loss_g = loss_g + ms / (ratio + 1e-5)
                logs["mode_seeking_ratio"] = ratio.detach()
            e.step(loss_g, "G")
        with e.phase("D"):
            # Two calls, as StyleGAN2: one batch of [fake; real] would let the minibatch-std layer put
            # fakes and reals in one group whenever a half is not a multiple of the group size.
            with e.autocast():
                l_fake = e.net("D")(fake.detach())
                l_real = e.net("D")(real)
            loss_d = F.softplus(l_fake).mean() + F.softplus(-l_real).mean()
            e.step(loss_d, "D")
            logs.update({"loss_g": loss_g.detach(), "loss_d": loss_d.detach(),
                         "d_real": l_real.mean().detach(), "d_fake": l_fake.mean().detach()})
            if self.settings.r1_interval > 0 and self.settings.r1_gamma > 0 and step % self.settings.r1_interval == 0:
                logs["r1"] = self.r1_step(real)
        return logs

    def style_mix(self, z: torch.Tensor) -> dict:
        """StyleGAN2's mixing regularisation: with probability `style_mixing`, the layers from a random
        cut-off on (one cut-off for the batch) are styled by a second z. Not a loss term."""
        p = self.settings.style_mixing
        if p <= 0 or float(torch.rand(())) >= p:
            return {}
        return {"mix_z": torch.randn_like(z), "mix_from": int(torch.randint(1, self.G.decoder.num_ws, ()))}

    def r1_penalty(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(||grad_x D(x)||^2 averaged over the batch, the logits) on real images, in fp32."""
        real = real.detach().requires_grad_(True)
        logits = self.engine.net("D")(real)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        return grad.square().sum(dim=[1, 2, 3]).mean(), logits

    def r1_step(self, real: torch.Tensor) -> torch.Tensor:
        s = self.settings
        penalty, logits = self.r1_penalty(real)
        # logits * 0 keeps every D parameter in the graph, as DDP requires.
        loss = penalty * (s.r1_gamma / 2) * s.r1_interval + logits.mean() * 0
        self.engine.step(loss, "D")
        return penalty.detach()

    # ---- translation -------------------------------------------------------------------------
    def translator_net(self):
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1], any H and W (padded to the encoder's multiple, cropped back)."""
        if z is None:
            z = torch.randn(x.shape[0], self.z_dim, device=x.device)
        x, (h, w) = pad_to_multiple(x, self.input_multiple)
        return self.translator_net()(x, z)[..., :h, :w]

    # ---- the paper's two conditions ----------------------------------------------------------
    @torch.no_grad()
    def summary(self, run_dir, rows: list[dict]) -> str:
        text = condition_summary(run_dir)  # the paper's two conditions, from the monitors below
        if self.settings.mode_seeking > 0:
            text += (f"\n\nNot the paper's adversarial-only loss: this run adds MSGAN's mode-seeking term "
                     f"(model.mode_seeking = {self.settings.mode_seeking:g}).")
        return text

    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Can G reconstruct its input, and can D tell real from generated? On held-out images."""
        x = holdout["shape"]
        z = torch.randn(x.shape[0], self.z_dim, device=x.device, generator=None)
        fake = self.translate(x, z)
        out = {"recon_mse": F.mse_loss(fake.float(), x.float()).item()}
        if self.D is not None and "texture" in holdout:
            out["d_accuracy"] = discriminator_accuracy(self.D, holdout["texture"], fake)
        return out


def mode_seeking_ratio(fakes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's ratio for [G(x, z1); G(x, z2)] and [z1; z2]: mean |G(x, z1) - G(x, z2)| / mean |z1 - z2|."""
    f1, f2 = fakes.chunk(2)
    z1, z2 = z.chunk(2)
    return (f1 - f2).abs().mean() / (z1 - z2).abs().mean()


@torch.no_grad()
def discriminator_accuracy(D, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fraction of held-out real images scored > 0 and generated images scored < 0."""
    was_training = D.training
    D.eval()
    lr, lf = D(real), D(fake)
    D.train(was_training)
    return float(((lr > 0).float().sum() + (lf < 0).float().sum()) / (len(lr) + len(lf)))

"""What the cycle-consistent models share: their settings (one dataclass per method name, whatever the data
mode), the defaults that depend on the data, and the loss terms, schedule and step skeleton of
AsymmetricGAN (Tang and Sebe, arXiv 1912.06931) and CycleGAN (Zhu et al. 2017).

The models themselves: `cycle.py` (two domains, unpaired or paired) and `multi_domain.py` (one conditional
generator pair for 3+ domains).

Losses, every weight a setting: adversarial (lsgan by default; vanilla, hinge, or wgan-gp, which also updates
G only every `g_every` steps), cycle consistency (the paper's colour loss: L1 per RGB channel, summed; or plain
L1 as in CycleGAN), 1 - MS-SSIM between input and reconstruction, identity preservation (G^t keeps an image
already in the target domain: weight identity_weight x cycle_weight, CycleGAN's convention).

Learning rate: Adam; constant, then linear decay to 0 over the last `decay_fraction` of the run, computed
from the step number each step (exact on resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..engine import Engine
from ..losses import channel_l1, check_gan_loss, discriminator_loss, ms_ssim
from ..nets.init import init_normal
from ..nets.layers import count_parameters
from .base import LinearDecayLR, Method
from .context import RunContext


@dataclass
class AsymmetricSettings:
    multi_domain: bool | None = None  # None: multi-domain with 3+ domain folders, two-domain with 2
    t_blocks: int | None = None  # residual blocks of the translation generator G^t (None: 6 below 256 px, else 9)
    r_blocks: int | None = None  # ... of the reconstruction generator G^r (None: 2 below 256 px, else 3)
    t_width: int = 64  # G^t's first-layer channels (x2 per down-sampling)
    r_width: int | None = None  # G^r's (None: as G^t)
    share: str = "none"  # parameters G^t and G^r share: none | encoder (down-sampling) | decoder (up-sampling)
    tie: bool = False  # G^r of one direction is the other direction's G^t (CycleGAN; StarGAN in multi-domain)
    downsampling: int = 2
    padding: str | None = None  # reflect | zeros | replicate (None: reflect two-domain, zeros multi-domain)
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 is the 70x70 PatchGAN
    d_width: int = 64
    d_norm: str = "auto"  # instance | none | auto (instance two-domain, none multi-domain as in StarGAN)
    d_arch: str = "patchgan"  # multi-domain D: patchgan (+ pooled linear classifier) | stargan (StarGAN's own D)
    gan_loss: str = "lsgan"  # lsgan | vanilla | hinge | wgan-gp
    gp_weight: float = 10.0  # wgan-gp only
    g_every: int | None = None  # update G every this many steps (None: 5 with wgan-gp, StarGAN's n_critic; else 1)
    cycle_loss: str = "channel"  # channel (L1 per colour channel, summed: the paper's colour loss) | l1
    cycle_weight: float = 10.0
    ssim_weight: float = 1.0  # weight of 1 - MS-SSIM(input, reconstruction)
    identity_weight: float = 0.5  # times cycle_weight
    cls_weight: float = 1.0  # multi-domain: domain classification, for D on reals and for G on fakes
    pool_size: int = 50  # two-domain: generated-image history per discriminator (0: off)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_fraction: float = 0.5  # the lr decays linearly to 0 over this last fraction of the budget
    init_std: float = 0.02  # conv weights N(0, std)
    pixel_weight: float = 100.0  # paired data only: weight of the cycle distance of each translation to its truth
    sample_rows: int = 4  # held-out images per domain in sample grids


@dataclass
class CycleGANSettings(AsymmetricSettings):
    t_blocks: int | None = None  # None: 6 below 256 px, else 9
    tie: bool = True
    cycle_loss: str = "l1"
    ssim_weight: float = 0.0


@dataclass
class AuthorsMultiDomainSettings(AsymmetricSettings):
    """The authors' released multi-domain configuration (AsymmetricGAN_multi, a StarGAN fork): WGAN-GP with
    5 critic steps per generator step, Adam 1e-4, StarGAN's discriminator, no identity term, a 6-block
    translation and a 2-block reconstruction generator. What still differs from their code: docs/methods.md."""

    multi_domain: bool | None = True  # always multi-domain, on two or more domain folders
    t_blocks: int | None = 6  # residual blocks of G^t (their G_xy: 6)
    r_blocks: int | None = 2  # ... of G^r (their G_yx: 2)
    d_arch: str = "stargan"  # StarGAN's discriminator, as theirs | patchgan
    d_layers: int = 6  # the StarGAN D's stride-2 layers (d_repeat_num): the size must be a multiple of 2^6
    gan_loss: str = "wgan-gp"
    g_every: int | None = 5  # update G every this many steps (StarGAN's n_critic)
    identity_weight: float = 0.0  # no identity term
    lr: float = 1e-4


class CycleConsistent(LinearDecayLR, Method):
    """The part every cycle-consistent model shares; a subclass builds `G` and `D` and writes its step."""

    Settings = AsymmetricSettings
    trained = ("G", "D")
    G_LOG_KEYS = ("loss_cycle", "loss_ssim", "loss_idt", "loss_cls_g", "loss_pixel")

    @classmethod
    def defaults(cls, s: AsymmetricSettings, context: RunContext) -> dict:
        multi = len(context.domains) >= 3 if s.multi_domain is None else s.multi_domain
        big = context.size >= 256
        return dict(multi_domain=multi, t_blocks=9 if big else 6, r_blocks=3 if big else 2, r_width=s.t_width,
                    padding="zeros" if multi else "reflect", d_norm="none" if multi else "instance",
                    g_every=5 if s.gan_loss == "wgan-gp" else 1)

    def __init__(self, settings: AsymmetricSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        s = settings
        self.names = list(context.domains)
        self.n_domains = len(self.names)
        if s.tie and s.share != "none":
            raise ConfigError("share applies to separate reconstruction generators; it cannot go with tie=true")
        check_gan_loss(s.gan_loss)
        if s.cycle_loss not in ("channel", "l1"):
            raise ConfigError(f"cycle_loss must be channel or l1, got {s.cycle_loss!r}")
        if s.d_arch not in ("patchgan", "stargan"):
            raise ConfigError(f"d_arch must be patchgan or stargan, got {s.d_arch!r}")
        self._last_g: dict[str, float] = {}

    def generator_kwargs(self, label_channels: int = 0) -> dict:
        s = self.settings
        return dict(t_blocks=s.t_blocks, r_blocks=s.r_blocks, t_width=s.t_width, r_width=s.r_width, share=s.share,
                    tie=s.tie, downsampling=s.downsampling, padding=s.padding, label_channels=label_channels)

    def init_networks(self, make_g, make_d) -> None:
        """G and D from the run's seed alone (the same initial weights for the same seed), at N(0, init_std)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.context.seed)
            self.G, self.D = make_g(), make_d()
            init_normal(self.G, self.settings.init_std)
            init_normal(self.D, self.settings.init_std)

    @property
    def input_multiple(self) -> int:
        return 2**self.settings.downsampling

    # ---- sizes ---------------------------------------------------------------------------------
    def generator_parameters(self) -> dict[str, int]:
        """Parameter counts: per translation / reconstruction generator (a shared part counted with its
        owner, G^t) and all generators together."""
        out = {k: count_parameters(v) for k, v in self.G.parts().items()}
        out["generators"] = count_parameters(self.G)
        out["discriminators"] = count_parameters(self.D)
        return out

    def parameter_counts(self) -> dict[str, int]:
        return self.generator_parameters()

    # ---- training ------------------------------------------------------------------------------
    def make_optimizers(self):
        s = self.settings
        betas = (s.beta1, s.beta2)
        # One optimizer per side: a shared module's parameters appear (and are stepped) once.
        return {"G": torch.optim.Adam(self.G.parameters(), lr=s.lr, betas=betas, foreach=True),
                "D": torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=betas, foreach=True)}

    def cycle_distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.settings.cycle_loss == "channel":
            return channel_l1(x, y)
        return F.l1_loss(x.float(), y.float())

    def reconstruction_losses(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Cycle and MS-SSIM terms summed over (reconstruction, original) pairs."""
        s = self.settings
        out = {"cycle": sum(self.cycle_distance(r, x) for r, x in pairs)}
        if s.ssim_weight:
            out["ssim"] = sum(1 - ms_ssim(r, x) for r, x in pairs)
        return out

    def train_step(self, batch, step):
        s = self.settings
        lr = self.set_lr(step)
        update_g = (step + 1) % s.g_every == 0
        logs = self.step_losses(batch, update_g)
        if update_g:
            self._last_g = {k: v for k, v in logs.items() if k.startswith("loss_g") or k in self.G_LOG_KEYS}
        else:  # G skipped this step: repeat its last values so the trainer's averages stay meaningful
            logs.update(self._last_g)
        logs["lr"] = lr
        return logs

    def step_losses(self, batch, update_g: bool) -> dict[str, float]:
        """One step: G's update when `update_g`, then D's; returns the logs."""
        raise NotImplementedError

    def _g_total(self, adv: torch.Tensor, rec: dict, idt: torch.Tensor | None, logs: dict,
                 cls: torch.Tensor | None = None) -> torch.Tensor:
        s = self.settings
        loss = adv + s.cycle_weight * rec["cycle"]
        logs.update(loss_g_adv=adv.detach(), loss_cycle=rec["cycle"].detach())
        if "ssim" in rec:
            loss = loss + s.ssim_weight * rec["ssim"]
            logs["loss_ssim"] = rec["ssim"].detach()
        if idt is not None:
            loss = loss + s.cycle_weight * s.identity_weight * idt
            logs["loss_idt"] = idt.detach()
        if cls is not None:
            loss = loss + s.cls_weight * cls
            logs["loss_cls_g"] = cls.detach()
        logs["loss_g"] = loss.detach()
        return loss

    def _d_adv(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # CycleGAN halves the discriminator's loss; StarGAN's WGAN-GP does not.
        scale = 1.0 if self.settings.gan_loss == "wgan-gp" else 0.5
        return scale * discriminator_loss(self.settings.gan_loss, real, fake)

    # ---- translation ---------------------------------------------------------------------------
    def domain_index(self, name) -> int:
        """A domain by index (0, "1"), letter ("A", "b") or folder name (its basename or the path given)."""
        if isinstance(name, int) and not isinstance(name, bool):
            index = name
        else:
            text = str(name).strip()
            paths = list(self.context.domain_folders)
            if text.isdigit():
                index = int(text)
            elif len(text) == 1 and text.isalpha():
                index = ord(text.upper()) - ord("A")
            elif text in self.names:
                index = self.names.index(text)
            elif str(Path(text)) in paths:
                index = paths.index(str(Path(text)))
            else:
                index = -1
        if not 0 <= index < self.n_domains:
            choices = ", ".join(f"{i}/{chr(65 + i)}/{n}" for i, n in enumerate(self.names))
            raise ConfigError(f"unknown target domain {name!r}; choose one of: {choices}")
        return index

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.prepare_images(x) if x.dtype == torch.uint8 else x.to(self.engine.device).float()

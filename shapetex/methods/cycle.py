"""Cycle-consistent translation: AsymmetricGAN (Tang and Sebe, arXiv 1912.06931; ACCV 2018) and CycleGAN
(Zhu et al. 2017) as its symmetric special case.

Generators. A translation generator G^t (source -> target) and a reconstruction generator G^r (target ->
source) whose sizes (residual blocks, width) are set independently: AsymmetricGAN makes G^r small (6 vs 2
blocks at 128 px by default). In two-domain mode there is one pair per direction:
    G_AB (A -> B) with R_BA (its fake B back to A),   G_BA (B -> A) with R_AB (its fake A back to B).
With `tie` the reconstruction generator of one direction *is* the other direction's translation
generator (R_BA = G_BA, R_AB = G_AB): that is CycleGAN, two generators in all. `share` lets G^t and G^r
of a pair run the very same encoder or decoder module.

Multi-domain mode (one folder per domain): one conditional pair, StarGAN-style: the target label is tiled
into one-hot maps concatenated to the input; G^t(x, target) translates, G^r(fake, source) reconstructs;
the discriminator has an auxiliary domain classifier. With `tie`, G^r = G^t (StarGAN itself).

Losses, every weight a setting: adversarial (lsgan by default; vanilla, hinge, or wgan-gp as in the paper's
multi-domain code, which also updates G only every `g_every` steps), cycle consistency (the paper's colour
loss: L1 per RGB channel, summed; or plain L1 as in CycleGAN), 1 - MS-SSIM between input and
reconstruction, identity preservation (G^t keeps an image already in the target domain: weight
identity_weight x cycle_weight, CycleGAN's convention), and domain classification (multi-domain).

Supervised mode (`--paired` data, pairs that correspond pixel for pixel): two-domain training on the
pairs' input (A) and target (B) sides, plus a pixel loss between each translation and its ground truth
(`pixel_weight`, with the cycle distance: AsymmetricGAN's supervised colour + pixel loss).

Image pool: in two-domain mode each discriminator sees a history of up to `pool_size` generated images
(CycleGAN's 50). The pool is part of the checkpoint, so resume is exact on one process (under DDP every
process restarts from the main process's pool). Multi-domain mode uses no pool.

Learning rate: Adam; constant, then linear decay to 0 over the last `decay_fraction` of the run, computed
from the step number each step (exact on resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RunConfig, resolve_method_config
from ..data.preprocess import REFERENCE_LOAD_RATIO
from ..engine import Engine
from ..losses import (
    channel_l1,
    check_gan_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    interpolate,
    ms_ssim,
)
from ..nets.init import init_normal
from ..nets.resnet_gen import ResnetGenerator, count_parameters, generator_pair
from ..nets.translator import pad_to_multiple
from .base import Method, linear_decay_lr, total_steps


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
    d_norm: str | None = None  # instance | none (None: instance two-domain, none multi-domain as in StarGAN)
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
    pixel_weight: float = 100.0  # supervised (paired data) only: translation vs ground truth
    sample_rows: int = 4  # held-out images per domain in sample grids


@dataclass
class CycleGANSettings(AsymmetricSettings):
    t_blocks: int | None = None  # None: 6 below 256 px, else 9
    tie: bool = True
    cycle_loss: str = "l1"
    ssim_weight: float = 0.0


# ---- networks --------------------------------------------------------------------------------------
class TwoDomainGenerators(nn.Module):
    """G_AB, G_BA (translation) and R_BA, R_AB (reconstruction; the other direction's G when tied)."""

    def __init__(self, s: AsymmetricSettings, **net):
        super().__init__()
        self.tied = s.tie
        if s.tie:
            self.G_AB = ResnetGenerator(s.t_blocks, s.t_width, **net)
            self.G_BA = ResnetGenerator(s.t_blocks, s.t_width, **net)
        else:
            self.G_AB, self.R_BA = generator_pair(s.t_blocks, s.r_blocks, s.t_width, s.r_width, s.share, **net)
            self.G_BA, self.R_AB = generator_pair(s.t_blocks, s.r_blocks, s.t_width, s.r_width, s.share, **net)

    def reconstructor(self, to: str) -> nn.Module:
        """The generator that brings a translation back to domain `to` ("A" or "B")."""
        if self.tied:
            return self.G_BA if to == "A" else self.G_AB
        return self.R_BA if to == "A" else self.R_AB

    def forward(self, a: torch.Tensor, b: torch.Tensor, cycle: bool = True, identity: bool = False) -> dict:
        out = {"fake_b": self.G_AB(a), "fake_a": self.G_BA(b)}
        if cycle:
            out["rec_a"] = self.reconstructor("A")(out["fake_b"])
            out["rec_b"] = self.reconstructor("B")(out["fake_a"])
        if identity:
            out["idt_b"] = self.G_AB(b)
            out["idt_a"] = self.G_BA(a)
        return out


class MultiDomainGenerators(nn.Module):
    """G (translation to a target label) and R (reconstruction to the source label; G itself when tied)."""

    def __init__(self, s: AsymmetricSettings, **net):
        super().__init__()
        self.tied = s.tie
        if s.tie:
            self.G = ResnetGenerator(s.t_blocks, s.t_width, **net)
        else:
            self.G, self.R = generator_pair(s.t_blocks, s.r_blocks, s.t_width, s.r_width, s.share, **net)

    def reconstructor(self) -> nn.Module:
        return self.G if self.tied else self.R

    def forward(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, cycle: bool = True,
                identity: bool = False) -> dict:
        out = {"fake": self.G(x, target)}
        if cycle:
            out["rec"] = self.reconstructor()(out["fake"], source)
        if identity:
            out["idt"] = self.G(x, source)
        return out


def patch_discriminator(in_channels: int, layers: int, width: int, norm: str) -> nn.Module:
    """pix2pix's PatchGAN (layers=3: 70x70 receptive field); CycleGAN's discriminator."""
    from ..nets.patchgan import PatchDiscriminator

    return PatchDiscriminator(in_channels, layers, width, norm)


class ClassifyingDiscriminator(nn.Module):
    """A PatchGAN whose last features also feed a domain classifier (global average pool, linear):
    x -> (patch logits N x 1 x h x w, domain logits N x n_domains)."""

    def __init__(self, n_domains: int, layers: int, width: int, norm: str, in_channels: int = 3):
        super().__init__()
        patch = patch_discriminator(in_channels, layers, width, norm)
        mods = list(patch.net)
        head = mods[-1]
        if not isinstance(head, nn.Conv2d) or head.out_channels != 1:
            raise TypeError("expected a PatchGAN ending in a 1-channel convolution")
        self.trunk = nn.Sequential(*mods[:-1])
        self.head = head
        self.classifier = nn.Linear(head.in_channels, n_domains)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.head(h), self.classifier(h.mean(dim=(2, 3)))


class TwoDomainDiscriminators(nn.Module):
    """D_A judges domain A images, D_B domain B; one call runs both (one DDP forward per step)."""

    def __init__(self, s: AsymmetricSettings):
        super().__init__()
        self.D_A = patch_discriminator(3, s.d_layers, s.d_width, s.d_norm)
        self.D_B = patch_discriminator(3, s.d_layers, s.d_width, s.d_norm)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.D_A(a), self.D_B(b)


class ImagePool(nn.Module):
    """CycleGAN's history of generated images (Shrivastava et al. 2017). While filling, every image goes
    in and comes back out; once full, each image is, with probability 1/2, swapped for a random stored one
    (which is returned instead), else returned as is. Randomness from torch's global RNG; the stored
    images are buffers, so the pool is saved and restored with the checkpoint."""

    def __init__(self, size: int, image_shape: tuple[int, ...]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        images = images.detach()
        out = []
        count = int(self.count)
        for img in images:
            if count < self.size:
                self.images[count] = img
                count += 1
                out.append(img)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i].to(img.dtype).clone())
                self.images[i] = img
            else:
                out.append(img)
        self.count.fill_(count)
        return torch.stack(out)


# ---- the method ------------------------------------------------------------------------------------
def domain_names(run: RunConfig) -> list[str]:
    d = run.data
    if d.source == "domains":
        return [Path(p).name or str(p) for p in d.domains]
    if d.source == "paired":
        return ["input", "target"]
    return ["shape", "texture"]


class AsymmetricGAN(Method):
    name = "asymmetric"
    Settings = AsymmetricSettings
    flip_together = False
    load_ratio = REFERENCE_LOAD_RATIO  # the reference's 286 -> 256 jitter (multi-domain mode: none, as StarGAN)
    trained = ("G", "D")

    def __init__(self, run: RunConfig, engine: Engine | None = None):
        super().__init__(run, engine)
        self.names = domain_names(run)
        n = len(self.names)
        size = run.data.size
        self.settings = s = resolve_method_config(self.Settings, run.model, **self.auto_settings(size, n))
        if s.tie and s.share != "none":
            raise ValueError("share applies to separate reconstruction generators; it cannot go with tie=true")
        if not s.multi_domain and n != 2:
            raise ValueError(f"two-domain mode needs exactly two domains, got {n}; set model.multi_domain=true")
        check_gan_loss(s.gan_loss)
        if s.cycle_loss not in ("channel", "l1"):
            raise ValueError(f"cycle_loss must be channel or l1, got {s.cycle_loss!r}")
        self.multi = bool(s.multi_domain)
        self.supervised = run.data.source == "paired"
        if self.supervised and self.multi:
            raise ValueError("paired (supervised) data has two domains: multi-domain mode does not apply")
        self.n_domains = n
        self.data_kind = "domain_labels" if self.multi else "paired" if self.supervised else "domains"
        self.flip_together = self.supervised
        if self.multi:
            self.load_ratio = 1.0
        self.keys = ("input", "target") if self.supervised else ("A", "B")  # batch keys of domains A and B
        self.sample_key = "0" if self.multi else self.keys[0]
        net = dict(downsampling=s.downsampling, padding=s.padding, label_channels=n if self.multi else 0)
        with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
            torch.manual_seed(run.train.seed)
            if self.multi:
                self.G = MultiDomainGenerators(s, **net)
                self.D = ClassifyingDiscriminator(n, s.d_layers, s.d_width, s.d_norm)
            else:
                self.G = TwoDomainGenerators(s, **net)
                self.D = TwoDomainDiscriminators(s)
            init_normal(self.G, s.init_std)
            init_normal(self.D, s.init_std)
        self.pools: nn.ModuleDict | None = None
        self._last_g: dict[str, float] = {}

    def auto_settings(self, size: int, n_domains: int) -> dict:
        multi = n_domains >= 3 if self.run.model.get("multi_domain") is None else self.run.model["multi_domain"]
        big = size >= 256
        s = dict(multi_domain=multi, t_blocks=9 if big else 6, r_blocks=3 if big else 2,
                 r_width=self.run.model.get("t_width", 64), padding="zeros" if multi else "reflect",
                 d_norm="none" if multi else "instance",
                 g_every=5 if self.run.model.get("gan_loss") == "wgan-gp" else 1)
        return s

    @property
    def input_multiple(self) -> int:
        return 2**self.settings.downsampling

    # ---- sizes ---------------------------------------------------------------------------------
    def generator_parameters(self) -> dict[str, int]:
        """Parameter counts: per translation / reconstruction generator (a shared part counted with its
        owner, G^t) and all generators together."""
        g = self.G
        if self.multi:
            parts = {"G_t": g.G} if g.tied else {"G_t": g.G, "G_r": g.R}
        else:
            parts = {"G_AB": g.G_AB, "G_BA": g.G_BA} if g.tied else {
                "G_AB": g.G_AB, "R_BA": g.R_BA, "G_BA": g.G_BA, "R_AB": g.R_AB}
        out = {k: count_parameters(v) for k, v in parts.items()}
        out["generators"] = count_parameters(g)
        out["discriminators"] = count_parameters(self.D)
        return out

    def parameter_counts(self) -> dict[str, int]:
        return self.generator_parameters()

    # ---- training ------------------------------------------------------------------------------
    def setup_training(self) -> None:
        super().setup_training()
        s = self.settings
        if not self.multi and s.pool_size > 0:
            shape = (3, self.run.data.size, self.run.data.width or self.run.data.size)
            self.pools = nn.ModuleDict({"A": ImagePool(s.pool_size, shape), "B": ImagePool(s.pool_size, shape)})
            self.pools.to(self.engine.device)

    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.pools is not None:
            nets["pools"] = self.pools
        return nets

    def make_optimizers(self):
        s = self.settings
        betas = (s.beta1, s.beta2)
        # One optimizer per side: a shared module's parameters appear (and are stepped) once.
        return {"G": torch.optim.Adam(self.G.parameters(), lr=s.lr, betas=betas, foreach=True),
                "D": torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=betas, foreach=True)}

    def total_steps(self) -> int:
        return total_steps(self.run)

    def lr_at(self, step: int) -> float:
        """Constant, then linear decay towards 0 over the last `decay_fraction` of the steps."""
        return linear_decay_lr(self.settings.lr, step, self.total_steps(), self.settings.decay_fraction)

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
        lr = self.lr_at(step)
        for opt in self.engine.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        update_g = (step + 1) % s.g_every == 0
        if self.multi:
            logs = self._multi_step(batch, update_g)
        else:
            logs = self._two_domain_step(batch, update_g)
        if update_g:
            self._last_g = {k: v for k, v in logs.items() if k.startswith("loss_g") or k in self.G_LOG_KEYS}
        else:  # G skipped this step: repeat its last values so the trainer's averages stay meaningful
            logs.update(self._last_g)
        logs["lr"] = lr
        return logs

    G_LOG_KEYS = ("loss_cycle", "loss_ssim", "loss_idt", "loss_cls_g", "loss_pixel")

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

    def _two_domain_step(self, batch, update_g: bool) -> dict[str, float]:
        e, s = self.engine, self.settings
        a, b = batch[self.keys[0]], batch[self.keys[1]]
        logs: dict[str, float] = {}
        if update_g:
            with e.phase("G"):
                identity = s.identity_weight > 0
                with e.autocast():
                    out = e.net("G")(a, b, cycle=True, identity=identity)
                    logits_a, logits_b = e.net("D")(out["fake_a"], out["fake_b"])
                adv = generator_loss(s.gan_loss, logits_a) + generator_loss(s.gan_loss, logits_b)
                rec = self.reconstruction_losses([(out["rec_a"], a), (out["rec_b"], b)])
                idt = None
                if identity:
                    idt = F.l1_loss(out["idt_a"].float(), a) + F.l1_loss(out["idt_b"].float(), b)
                loss = self._g_total(adv, rec, idt, logs)
                if self.supervised and s.pixel_weight:
                    pixel = self.cycle_distance(out["fake_b"], b) + self.cycle_distance(out["fake_a"], a)
                    loss = loss + s.pixel_weight * pixel
                    logs.update(loss_pixel=pixel.detach(), loss_g=loss.detach())
                e.step(loss, "G")
            fake_a, fake_b = out["fake_a"].detach(), out["fake_b"].detach()
        else:
            with torch.no_grad(), e.autocast():
                out = self.G(a, b, cycle=False)
            fake_a, fake_b = out["fake_a"], out["fake_b"]
        if self.pools is not None:
            fake_a, fake_b = self.pools["A"].query(fake_a), self.pools["B"].query(fake_b)
        n = a.shape[0]
        with e.phase("D"):
            wgan = s.gan_loss == "wgan-gp"
            ins_a, ins_b = [a, fake_a.to(a.dtype)], [b, fake_b.to(b.dtype)]
            if wgan:
                hat_a, hat_b = interpolate(a, fake_a), interpolate(b, fake_b)
                ins_a.append(hat_a)
                ins_b.append(hat_b)
            with e.autocast():
                la, lb = e.net("D")(torch.cat(ins_a), torch.cat(ins_b))
            la, lb = la.split(n), lb.split(n)
            loss_d = self._d_adv(la[0], la[1]) + self._d_adv(lb[0], lb[1])
            logs.update(loss_d=loss_d.detach(), d_real=(la[0].float().mean() + lb[0].float().mean()).detach() / 2,
                        d_fake=(la[1].float().mean() + lb[1].float().mean()).detach() / 2)
            if wgan:
                gp = gradient_penalty(hat_a, la[2]) + gradient_penalty(hat_b, lb[2])
                loss_d = loss_d + s.gp_weight * gp
                logs["loss_gp"] = gp.detach()
            e.step(loss_d, "D")
        return logs

    def _multi_step(self, batch, update_g: bool) -> dict[str, float]:
        e, s = self.engine, self.settings
        x, src, trg = batch["image"], batch["domain"], batch["target"]
        logs: dict[str, float] = {}
        if update_g:
            with e.phase("G"):
                identity = s.identity_weight > 0
                with e.autocast():
                    out = e.net("G")(x, src, trg, cycle=True, identity=identity)
                    adv_logits, cls_logits = e.net("D")(out["fake"])
                adv = generator_loss(s.gan_loss, adv_logits)
                cls = F.cross_entropy(cls_logits.float(), trg)
                rec = self.reconstruction_losses([(out["rec"], x)])
                idt = F.l1_loss(out["idt"].float(), x) if identity else None
                e.step(self._g_total(adv, rec, idt, logs, cls), "G")
            fake = out["fake"].detach()
        else:
            with torch.no_grad(), e.autocast():
                fake = self.G(x, src, trg, cycle=False)["fake"]
        n = x.shape[0]
        with e.phase("D"):
            wgan = s.gan_loss == "wgan-gp"
            ins = [x, fake.to(x.dtype)]
            if wgan:
                hat = interpolate(x, fake)
                ins.append(hat)
            with e.autocast():
                adv_logits, cls_logits = e.net("D")(torch.cat(ins))
            adv_logits = adv_logits.split(n)
            cls = F.cross_entropy(cls_logits[:n].float(), src)
            loss_d = self._d_adv(adv_logits[0], adv_logits[1]) + s.cls_weight * cls
            logs.update(loss_d=loss_d.detach(), loss_cls_d=cls.detach(), d_real=adv_logits[0].float().mean().detach(),
                        d_fake=adv_logits[1].float().mean().detach(),
                        d_cls_accuracy=(cls_logits[:n].argmax(1) == src).float().mean().detach())
            if wgan:
                gp = gradient_penalty(hat, adv_logits[2])
                loss_d = loss_d + s.gp_weight * gp
                logs["loss_gp"] = gp.detach()
            e.step(loss_d, "D")
        return logs

    # ---- translation ---------------------------------------------------------------------------
    def domain_index(self, name) -> int:
        """A domain by index (0, "1"), letter ("A", "b") or folder name (its basename or the path given)."""
        if isinstance(name, int) and not isinstance(name, bool):
            index = name
        else:
            text = str(name).strip()
            paths = [str(Path(p)) for p in self.run.data.domains] if self.run.data.source == "domains" else []
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
            raise ValueError(f"unknown target domain {name!r}; choose one of: {choices}")
        return index

    def translator_for(self, target: int) -> nn.Module:
        if self.multi:
            return self.G.G
        return self.G.G_AB if target == 1 else self.G.G_BA

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None, to=None) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] -> its translation to domain `to` (default: B, domain 1). In
        two-domain mode the input is taken to be from the other domain. `z` is ignored (deterministic)."""
        target = self.domain_index(1 if to is None else to)
        x, (h, w) = pad_to_multiple(x, self.input_multiple)
        if self.multi:
            out = self.G.G(x, torch.full((x.shape[0],), target, dtype=torch.long, device=x.device))
        else:
            out = self.translator_for(target)(x)
        return out[..., :h, :w]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.prepare_images(x) if x.dtype == torch.uint8 else x.to(self.engine.device).float()

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int = 1, seed: int = 0) -> list[torch.Tensor]:
        """Two-domain: rows of held-out A then B images; columns: input, translation, reconstruction back.
        Multi-domain: rows per domain; columns: input, its translation to every domain, then the
        reconstruction of its translation to the next domain. Float [-1, 1] CPU tensors."""
        k = self.settings.sample_rows
        g = self.G
        if not self.multi:
            a, b = self._prepare(holdout[self.keys[0]][:k]), self._prepare(holdout[self.keys[1]][:k])
            fake_b, fake_a = g.G_AB(a), g.G_BA(b)
            rec_a, rec_b = g.reconstructor("A")(fake_b), g.reconstructor("B")(fake_a)
            columns = [torch.cat([a, b]), torch.cat([fake_b, fake_a]), torch.cat([rec_a, rec_b])]
        else:
            rows: list[list[torch.Tensor]] = []
            for d in range(self.n_domains):
                if str(d) not in holdout:
                    continue
                x = self._prepare(holdout[str(d)][:k])
                label = lambda t: torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)  # noqa: B023
                outs = [g.G(x, label(t)) for t in range(self.n_domains)]
                nxt = (d + 1) % self.n_domains
                rows.append([x, *outs, g.reconstructor()(outs[nxt], label(d))])
            columns = [torch.cat(col) for col in zip(*rows)]
        return [c.float().cpu() for c in columns]

    @torch.no_grad()
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Cycle L1 of held-out images (and the discriminator's domain accuracy in multi-domain mode)."""
        g = self.G
        out = {}
        if not self.multi:
            for dom, key in zip(("A", "B"), self.keys):
                if key in holdout:
                    x = holdout[key].float()
                    fake = self.translator_for(1 if dom == "A" else 0)(x)
                    out[f"cycle_l1_{dom}"] = F.l1_loss(g.reconstructor(dom)(fake).float(), x).item()
                    if self.supervised:
                        truth = holdout[self.keys[1] if dom == "A" else self.keys[0]].float()
                        out[f"pixel_l1_{dom}"] = F.l1_loss(fake.float(), truth).item()
            return out
        errs, correct, total = [], 0, 0
        for d in range(self.n_domains):
            if str(d) not in holdout:
                continue
            x = holdout[str(d)].float()
            src = torch.full((x.shape[0],), d, dtype=torch.long, device=x.device)
            fake = g.G(x, (src + 1) % self.n_domains)
            errs.append(F.l1_loss(g.reconstructor()(fake, src).float(), x).item())
            correct += int((self.D(x)[1].argmax(1) == src).sum())
            total += x.shape[0]
        if errs:
            out["cycle_l1"] = sum(errs) / len(errs)
            out["d_cls_accuracy_holdout"] = correct / total
        return out


class CycleGAN(AsymmetricGAN):
    """CycleGAN: ResNet generators (9 blocks at 256 px, 6 below), 70x70 PatchGAN, LSGAN, cycle weight 10,
    identity 0.5, a pool of 50 generated images; the reconstruction generator of one direction is the
    other direction's translation generator."""

    name = "cyclegan"
    Settings = CycleGANSettings

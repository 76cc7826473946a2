"""Two-domain cycle-consistent translation: AsymmetricGAN (Tang and Sebe, arXiv 1912.06931; ACCV 2018), CycleGAN
(Zhu et al. 2017) as its symmetric special case, and both on paired data with a pixel loss.

`--method asymmetric`, `cyclegan` and `asymmetric-authors` name a family; `variant` picks the model from the
data: 3+ domain folders (or model.multi_domain) -> `multi_domain.MultiDomainAsymmetricGAN`; `--paired` data ->
`PairedAsymmetricGAN`; two unpaired domains -> the class itself.

Generators. A translation generator G^t (source -> target) and a reconstruction generator G^r (target ->
source) whose sizes (residual blocks, width) are set independently: AsymmetricGAN makes G^r small (6 vs 2
blocks at 128 px by default). One pair per direction:
    G_AB (A -> B) with R_BA (its fake B back to A),   G_BA (B -> A) with R_AB (its fake A back to B).
With `tie` the reconstruction generator of one direction *is* the other direction's translation
generator (R_BA = G_BA, R_AB = G_AB): that is CycleGAN, two generators in all. `share` lets G^t and G^r
of a pair run the very same encoder or decoder module. Discriminators: one 70x70 PatchGAN per domain.
Losses and schedule: `cycle_base`.

Image pool: each discriminator sees a history of up to `pool_size` generated images (CycleGAN's 50). The
pool is part of the checkpoint, so resume is exact on one process (under DDP every process restarts from the
main process's pool).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.preprocess import REFERENCE_LOAD_RATIO
from ..engine import Engine
from ..losses import generator_loss, gradient_penalty, interpolate
from ..nets.cycle_nets import TwoDomainDiscriminators, TwoDomainGenerators
from ..nets.layers import pad_to_multiple
from .base import Method
from .context import RunContext
from .cycle_base import AsymmetricSettings, AuthorsMultiDomainSettings, CycleConsistent, CycleGANSettings
from .image_pool import ImagePool
from .multi_domain import MultiDomainAsymmetricGAN


class AsymmetricGAN(CycleConsistent):
    """Two unpaired domains A and B: G^t and G^r per direction, a PatchGAN per domain, an image pool."""

    name = "asymmetric"
    data_kind = "domains"
    keys = ("A", "B")  # the batch keys of domains A and B
    sample_key = "A"
    load_ratio = REFERENCE_LOAD_RATIO  # the reference's 286 -> 256 jitter (multi-domain: none, as StarGAN)
    monitor_keys = ("cycle_l1_", "pixel_l1_")  # per domain; pixel_l1_ on pairs only (`truth_monitors`)

    @classmethod
    def variant(cls, s: AsymmetricSettings, context: RunContext) -> type[Method]:
        if s.multi_domain:
            if context.paired:
                raise ConfigError("paired data has two domains: multi-domain mode does not apply")
            return MultiDomainAsymmetricGAN
        return PairedAsymmetricGAN if context.paired else cls

    def __init__(self, settings: AsymmetricSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        s = settings
        if self.n_domains != 2:
            raise ConfigError(f"two-domain mode needs exactly two domains, got {self.n_domains}; "
                              "set model.multi_domain=true")
        if s.d_arch != "patchgan":
            raise ConfigError(f"d_arch={s.d_arch} is a multi-domain discriminator (it classifies domains); "
                              "two-domain runs use a PatchGAN per domain")
        self.init_networks(lambda: TwoDomainGenerators(**self.generator_kwargs()),
                           lambda: TwoDomainDiscriminators(s.d_layers, s.d_width, s.d_norm))
        self.pools: nn.ModuleDict | None = None

    # ---- training ------------------------------------------------------------------------------
    def setup_training(self) -> None:
        super().setup_training()
        s = self.settings
        if s.pool_size > 0:
            shape = (3, *self.context.crop)  # the training crops' shape (data.width: not square)
            self.pools = nn.ModuleDict({"A": ImagePool(s.pool_size, shape), "B": ImagePool(s.pool_size, shape)})
            self.pools.to(self.engine.device)

    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.pools is not None:
            nets["pools"] = self.pools
        return nets

    def supervision(self, loss: torch.Tensor, out: dict, a: torch.Tensor, b: torch.Tensor,
                    logs: dict) -> torch.Tensor:
        """G's loss with any term that needs ground truth (none: the domains are unpaired)."""
        return loss

    def step_losses(self, batch, update_g: bool) -> dict[str, float]:
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
                loss = self.supervision(self._g_total(adv, rec, idt, logs), out, a, b, logs)
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

    # ---- translation ---------------------------------------------------------------------------
    def translator_for(self, target: int) -> nn.Module:
        return self.G.G_AB if target == 1 else self.G.G_BA

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None, to=None) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] -> its translation to domain `to` (default: B, domain 1); the input is
        taken to be from the other domain. `z` is ignored (deterministic)."""
        target = self.domain_index(1 if to is None else to)
        x, (h, w) = pad_to_multiple(x, self.input_multiple)
        return self.translator_for(target)(x)[..., :h, :w]

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int = 1, seed: int = 0) -> list[torch.Tensor]:
        """Rows of held-out A then B images; columns: input, translation, reconstruction back. Float [-1, 1]
        CPU tensors."""
        k = self.settings.sample_rows
        g = self.G
        a, b = self._prepare(holdout[self.keys[0]][:k]), self._prepare(holdout[self.keys[1]][:k])
        fake_b, fake_a = g.G_AB(a), g.G_BA(b)
        rec_a, rec_b = g.reconstructor("A")(fake_b), g.reconstructor("B")(fake_a)
        columns = [torch.cat([a, b]), torch.cat([fake_b, fake_a]), torch.cat([rec_a, rec_b])]
        return [c.float().cpu() for c in columns]

    @torch.no_grad()
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Cycle L1 of held-out images, per domain."""
        out = {}
        for dom, key in zip(("A", "B"), self.keys):
            if key in holdout:
                x = holdout[key].float()
                fake = self.translator_for(1 if dom == "A" else 0)(x)
                out[f"cycle_l1_{dom}"] = F.l1_loss(self.G.reconstructor(dom)(fake).float(), x).item()
                out.update(self.truth_monitors(dom, fake, holdout))
        return out

    def truth_monitors(self, dom: str, fake: torch.Tensor, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Scores of domain `dom`'s held-out translations against ground truth (none: unpaired)."""
        return {}


class CycleGAN(AsymmetricGAN):
    """CycleGAN: ResNet generators (9 blocks at 256 px, 6 below), 70x70 PatchGAN, LSGAN, cycle weight 10,
    identity 0.5, a pool of 50 generated images; the reconstruction generator of one direction is the
    other direction's translation generator."""

    name = "cyclegan"
    Settings = CycleGANSettings


class AuthorsAsymmetricGAN(AsymmetricGAN):
    """AsymmetricGAN with the authors' released multi-domain settings (`AuthorsMultiDomainSettings`): always
    multi-domain, on two or more domain folders."""

    name = "asymmetric-authors"
    Settings = AuthorsMultiDomainSettings


class PairedAsymmetricGAN(AsymmetricGAN):
    """The two-domain model on pairs that correspond pixel for pixel (`--paired`): the pairs' input side is
    domain A, the target side domain B, flipped together; G's loss adds `pixel_weight` x the cycle distance of
    each translation to its ground truth (G_AB(a) to b and G_BA(b) to a).

    This is not the authors' supervised AsymmetricGAN: theirs (the repository's asymmetricgan_model, for
    hand-gesture translation) conditions every generator on a guidance image (a hand skeleton) concatenated
    to the input, judges with conditional discriminators that see the input beside the output (and the
    guidance), trains with the vanilla GAN loss and no image pool, and adds a VGG perceptual term and total
    variation. Here both discriminators are unconditional PatchGANs of one domain each, the loss LSGAN by
    default, the image pool on, and there is no perceptual or TV term: CycleGAN/AsymmetricGAN training with a
    pixel loss added."""

    data_kind = "paired"
    flip_together = True
    keys = ("input", "target")
    sample_key = "input"

    def supervision(self, loss, out, a, b, logs):
        s = self.settings
        if not s.pixel_weight:
            return loss
        pixel = self.cycle_distance(out["fake_b"], b) + self.cycle_distance(out["fake_a"], a)
        loss = loss + s.pixel_weight * pixel
        logs.update(loss_pixel=pixel.detach(), loss_g=loss.detach())
        return loss

    def truth_monitors(self, dom, fake, holdout):
        truth = holdout[self.keys[1] if dom == "A" else self.keys[0]].float()
        return {f"pixel_l1_{dom}": F.l1_loss(fake.float(), truth).item()}

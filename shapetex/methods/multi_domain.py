"""Multi-domain AsymmetricGAN (arXiv 1912.06931, its multi-domain experiments) and, tied, StarGAN-like training:
one folder per domain, one conditional generator pair for every direction.

The target label is tiled into one-hot maps concatenated to the input (zero padding, since reflection padding
and instance norm would erase a constant map); G^t(x, target) translates, G^r(fake, source) reconstructs; with
`tie`, G^r = G^t (StarGAN's one generator). The discriminator is a PatchGAN without norm whose last features
also feed a domain classifier: D classifies real images by their domain, G is trained so that D classifies its
translations as the target (`d_arch=stargan`: StarGAN's own discriminator instead). Chosen by `--method
asymmetric` (or `cyclegan`) with 3+ domain folders or model.multi_domain=true, and always by `--method
asymmetric-authors` (the authors' released settings). No image pool. Losses and schedule: `cycle_base`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import Engine
from ..losses import generator_loss, gradient_penalty, interpolate
from ..nets.cycle_nets import ClassifyingDiscriminator, MultiDomainGenerators, StarGANDiscriminator
from ..nets.layers import pad_to_multiple
from .context import RunContext
from .cycle_base import AsymmetricSettings, CycleConsistent


class MultiDomainAsymmetricGAN(CycleConsistent):
    name = "asymmetric"
    data_kind = "domain_labels"
    sample_key = "0"
    load_ratio = 1.0  # no random-crop jitter, as StarGAN (the two-domain models take the reference's)
    monitor_keys = ("cycle_l1", "d_cls_accuracy_holdout")

    def __init__(self, settings: AsymmetricSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        n = self.n_domains
        self.init_networks(lambda: MultiDomainGenerators(**self.generator_kwargs(label_channels=n)),
                           self.discriminator)

    def discriminator(self) -> nn.Module:
        s = self.settings
        if s.d_arch == "stargan":
            return StarGANDiscriminator(self.n_domains, self.context.crop, s.d_layers, s.d_width)
        return ClassifyingDiscriminator(self.n_domains, s.d_layers, s.d_width, s.d_norm)

    def step_losses(self, batch, update_g: bool) -> dict[str, float]:
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
    def translator_for(self, target: int) -> nn.Module:
        return self.G.G

    def _labels(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        return torch.full((x.shape[0],), domain, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None, to=None) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] -> its translation to domain `to` (default: domain 1). `z` is ignored."""
        target = self.domain_index(1 if to is None else to)
        x, (h, w) = pad_to_multiple(x, self.input_multiple)
        return self.G.G(x, self._labels(x, target))[..., :h, :w]

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int = 1, seed: int = 0) -> list[torch.Tensor]:
        """Rows per domain; columns: input, its translation to every domain, then the reconstruction of its
        translation to the next domain. Float [-1, 1] CPU tensors."""
        k = self.settings.sample_rows
        g = self.G
        rows: list[list[torch.Tensor]] = []
        for d in range(self.n_domains):
            if str(d) not in holdout:
                continue
            x = self._prepare(holdout[str(d)][:k])
            outs = [g.G(x, self._labels(x, t)) for t in range(self.n_domains)]
            nxt = (d + 1) % self.n_domains
            rows.append([x, *outs, g.reconstructor()(outs[nxt], self._labels(x, d))])
        columns = [torch.cat(col) for col in zip(*rows)]
        return [c.float().cpu() for c in columns]

    @torch.no_grad()
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Cycle L1 of held-out images (to the next domain and back) and the discriminator's domain accuracy."""
        g = self.G
        out = {}
        errs, correct, total = [], 0, 0
        for d in range(self.n_domains):
            if str(d) not in holdout:
                continue
            x = holdout[str(d)].float()
            src = self._labels(x, d)
            fake = g.G(x, (src + 1) % self.n_domains)
            errs.append(F.l1_loss(g.reconstructor()(fake, src).float(), x).item())
            correct += int((self.D(x)[1].argmax(1) == src).sum())
            total += x.shape[0]
        if errs:
            out["cycle_l1"] = sum(errs) / len(errs)
            out["d_cls_accuracy_holdout"] = correct / total
        return out

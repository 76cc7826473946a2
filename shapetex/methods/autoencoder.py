"""The autoencoder baseline: the adversarial translator's generator trained to reconstruct its input.

Same encoder, decoder, data, checkpoints and translation as `adversarial`; only the loss differs
(L1 or L2 between G(x, z) and x), and there is no discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError
from .adversarial import AdversarialSettings, AdversarialTranslator


@dataclass
class AutoencoderSettings(AdversarialSettings):
    recon_loss: str = "l2"  # l1 | l2
    lr_g: float = 0.002


class Autoencoder(AdversarialTranslator):
    name = "autoencoder"
    trained = ("G",)
    Settings = AutoencoderSettings

    def __init__(self, settings, context, engine=None):
        super().__init__(settings, context, engine)
        if self.settings.recon_loss not in ("l1", "l2"):
            raise ConfigError(f"recon_loss must be l1 or l2, got {self.settings.recon_loss!r}")

    def make_optimizers(self):
        s = self.settings
        return {"G": torch.optim.Adam(self.G.parameters(), lr=s.lr_g, betas=(s.beta1, s.beta2), foreach=True)}

    def train_step(self, batch, step):
        e = self.engine
        x = batch["shape"]
        z = torch.randn(x.shape[0], self.z_dim, device=x.device)
        with e.phase("G"):
            with e.autocast():
                out = e.net("G")(x, z)
            out = out.float()
            loss = F.l1_loss(out, x) if self.settings.recon_loss == "l1" else F.mse_loss(out, x)
            e.step(loss, "G")
        return {"loss_recon": loss.detach()}

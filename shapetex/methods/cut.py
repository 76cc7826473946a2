"""Contrastive Unpaired Translation: CUT and FastCUT (Park, Efros, Zhang and Zhu, ECCV 2020, arXiv 2007.15651).

One generator G (A -> B), no inverse mapping: content is kept by PatchNCE, a contrastive loss between patches
of the input x and of its translation G(x) taken at the same locations. Networks: CycleGAN's ResNet generator
(9 blocks at 256 px, 6 below: shapetex's rule), the 70x70 PatchGAN with instance norm, LSGAN, and F: one
two-layer MLP head per tapped generator layer (`shapetex.nets.patchnce`), trained with G.

PatchNCE: G's encoder runs on x (keys, detached) and on G(x) (queries); at each tapped layer `num_patches`
locations are drawn (the same for queries and keys, the same for every image of a batch), each feature goes
through its layer's head and is L2-normalised; per location the positive is the key at that location, the
negatives the keys at the other sampled locations of the same image, logits / temperature, cross-entropy
(`shapetex.losses.patch_nce_loss`). The loss is averaged over layers and weighted by nce_weight (lambda_NCE).

Tapped layers (`nce_layers`, indices into `ResnetGenerator.trunk()`: the encoder's modules, then the residual
blocks). The reference taps indices 0, 4, 8, 12, 16 of its sequential generator, whose down-sampling is an
antialiased stride-1 conv + norm + ReLU + BlurPool (4 modules each):
    reference 0  ReflectionPad2d(3): the padded input image (3 channels)   -> shapetex trunk 0  (encoder[0])
    reference 4  the first down-sampling conv (before its norm)           -> shapetex trunk 4  (encoder[4])
    reference 8  the second down-sampling conv (before its norm)          -> shapetex trunk 7  (encoder[7])
    reference 12 the output of residual block 1                           -> shapetex trunk 10 (blocks[0])
    reference 16 the output of residual block 5                           -> shapetex trunk 14 (blocks[4])
shapetex's down-sampling is a plain stride-2 conv + norm + ReLU (3 modules each; the reference's
--no_antialias layout), so the second down conv and the blocks sit at lower indices. With fewer than 5 blocks
the last block stands in for block 5. None computes this mapping for the generator's actual layout; with
`antialias` (the reference's blur-pool layout, off by default) it gives the reference's own 0, 4, 8, 12, 16.

CUT: nce_weight 1 plus the identity term (PatchNCE between y and G(y) for real B images y), the two averaged:
L = L_GAN + (L_NCE(x, G(x)) + L_NCE(y, G(y))) / 2. FastCUT: nce_weight 10, no identity term, and flip
equivariance: with probability 1/2 per step the input is flipped horizontally before G and the query features
are flipped back, so G(flip(x)) must match x patch for patch. Step order as in the reference: D first (on
G(x) detached), then G and F together against the updated D. No image pool (the reference's pool_size 0).

Learning rate: Adam 2e-4, betas (0.5, 0.999), constant then linear decay to 0 over the last `decay_fraction`
of the budget (in images, as for CycleGAN). CUT: the second half (the reference's 200 + 200 epochs); FastCUT:
the last quarter (its 150 + 50 epochs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError
from ..data.preprocess import REFERENCE_LOAD_RATIO
from ..engine import Engine
from ..losses import check_gan_loss, discriminator_loss, generator_loss, patch_nce_loss
from ..nets.init import INIT_KINDS, init_weights
from ..nets.layers import pad_to_multiple
from ..nets.patchgan import PatchDiscriminator
from ..nets.patchnce import PatchSampleMLP
from ..nets.resnet_gen import ResnetGenerator
from .base import LinearDecayLR, Method
from .context import RunContext


@dataclass
class CUTSettings:
    blocks: int | None = None  # residual blocks of G (None: 6 below 256 px, else 9)
    width: int = 64  # G's first-layer channels (x2 per down-sampling)
    downsampling: int = 2
    padding: str = "reflect"  # reflect | zeros | replicate
    antialias: bool = False  # blur-pool down/up-sampling in G, as in the reference (its taps are then 0,4,8,12,16)
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 is the 70x70 PatchGAN
    d_width: int = 64
    d_norm: str = "instance"  # instance | none
    gan_loss: str = "lsgan"  # lsgan | vanilla | hinge
    gan_weight: float = 1.0  # lambda_GAN
    nce_weight: float = 1.0  # lambda_NCE
    nce_identity: bool = True  # add PatchNCE(y, G(y)) on real target images (CUT; FastCUT: off)
    nce_layers: list[int] | None = None  # G trunk layers PatchNCE reads (None: the paper's five, mapped; see docs)
    num_patches: int = 256  # sampled locations per layer
    nce_units: int = 256  # width of the MLP heads
    temperature: float = 0.07
    flip_equivariance: bool = False  # FastCUT's random flip of G's input, flipped back for the queries
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_fraction: float = 0.5  # the lr decays linearly to 0 over this last fraction of the budget
    init: str = "xavier"  # the reference's --init_type: xavier (CUT's default) | normal
    init_std: float = 0.02  # the reference's --init_gain: Xavier's gain, or the normal init's std
    sample_rows: int = 4  # held-out images per domain in sample grids


@dataclass
class FastCUTSettings(CUTSettings):
    nce_weight: float = 10.0
    nce_identity: bool = False
    flip_equivariance: bool = True
    decay_fraction: float = 0.25  # the reference's 150 constant + 50 decaying epochs


def paper_nce_layers(gen: ResnetGenerator) -> list[int]:
    """The reference's taps 0, 4, 8, 12, 16 on shapetex's layout: the first trunk layer (the reflection-padded
    input), the first two down-sampling convs, and the outputs of residual blocks 1 and 5 (the last block
    when there are fewer)."""
    encoder = list(gen.encoder)
    downs = [i for i, m in enumerate(encoder) if isinstance(m, nn.Conv2d)][1:3]  # the convs after the 7x7
    if gen.n_blocks < 1:
        raise ConfigError("CUT needs at least one residual block")
    blocks = [len(encoder), len(encoder) + min(4, gen.n_blocks - 1)]
    return sorted({0, *downs, *blocks})


class CUT(LinearDecayLR, Method):
    """CUT: one A -> B generator, PatchNCE with the identity term, lambda_NCE 1."""

    name = "cut"
    Settings = CUTSettings
    data_kind = "domains"
    load_ratio = REFERENCE_LOAD_RATIO  # the reference's 286 -> 256 jitter
    sample_key = "A"
    monitor_keys = ("val_nce_",)  # val_nce_A, val_nce_B
    trained = ("G", "F", "D")

    @classmethod
    def defaults(cls, s: CUTSettings, context: RunContext) -> dict:
        blocks = s.blocks if s.blocks is not None else 9 if context.size >= 256 else 6
        if s.nce_layers is not None:
            return {"blocks": blocks}
        return {"blocks": blocks, "nce_layers": paper_nce_layers(cls.generator(s, blocks, device="meta"))}

    @staticmethod
    def generator(s: CUTSettings, blocks: int, device=None) -> ResnetGenerator:
        # device "meta": the layout alone, no weights (and no draw from the RNG)
        with torch.device(device) if device else contextlib.nullcontext():
            return ResnetGenerator(blocks, s.width, downsampling=s.downsampling, padding=s.padding,
                                   antialias=s.antialias)

    def __init__(self, settings: CUTSettings, context: RunContext, engine: Engine | None = None):
        super().__init__(settings, context, engine)
        if context.paired:
            raise ConfigError(f"{self.name} is unpaired: give two domains (--dataroot, --domains A B, or --data)")
        self.names = list(context.domains)
        if len(self.names) != 2:
            raise ConfigError(f"{self.name} translates between exactly two domains, got {len(self.names)}")
        s = settings
        check_gan_loss(s.gan_loss)
        if s.gan_loss == "wgan-gp":
            raise ConfigError(f"{self.name} supports lsgan, vanilla or hinge GAN losses, not wgan-gp")
        if s.init not in INIT_KINDS:
            raise ConfigError(f"model.init (the reference's --init_type) must be one of {', '.join(INIT_KINDS)}, "
                              f"got {s.init!r}")
        if s.num_patches < 1 or s.temperature <= 0:
            raise ConfigError("num_patches must be >= 1 and temperature > 0")
        with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
            torch.manual_seed(context.seed)
            self.G = self.generator(s, s.blocks)
            self.nce_layers = list(s.nce_layers)
            self.F = PatchSampleMLP(self.G.feature_channels(self.nce_layers), s.nce_units)
            self.D = PatchDiscriminator(3, s.d_layers, s.d_width, s.d_norm)
            for net in (self.G, self.F, self.D):
                init_weights(net, s.init, s.init_std)

    @property
    def input_multiple(self) -> int:
        return 2**self.settings.downsampling

    # ---- training ------------------------------------------------------------------------------
    def make_optimizers(self):
        s = self.settings
        betas = (s.beta1, s.beta2)
        return {n: torch.optim.Adam(getattr(self, n).parameters(), lr=s.lr, betas=betas, foreach=True)
                for n in ("G", "F", "D")}

    def nce_loss(self, src: torch.Tensor, out: torch.Tensor, flipped: bool = False) -> torch.Tensor:
        """PatchNCE between the input `src` (keys) and G's output `out` (queries), averaged over the tapped
        layers and weighted by nce_weight. `flipped`: `out` is G of the flipped input; its features are flipped
        back before sampling."""
        e, s = self.engine, self.settings
        n = src.shape[0]
        with e.autocast():
            with torch.no_grad():  # keys are detached in the loss: no graph needed
                keys, ids = self.F(self.G.features(src, self.nce_layers), s.num_patches)
            feats = e.net("G")(out, layers=self.nce_layers)
            if flipped:
                feats = [f.flip(-1) for f in feats]
            queries, _ = e.net("F")(feats, s.num_patches, ids)
        total = sum(patch_nce_loss(q, k, n, s.temperature) for q, k in zip(queries, keys))
        return s.nce_weight * total / len(self.nce_layers)

    def train_step(self, batch, step):
        e, s = self.engine, self.settings
        lr = self.set_lr(step)
        a, b = batch["A"], batch["B"]
        n = a.shape[0]
        identity = s.nce_identity and s.nce_weight > 0
        flipped = s.flip_equivariance and float(torch.rand(())) < 0.5
        real = torch.cat([a, b]) if identity else a
        if flipped:
            real = real.flip(-1)
        logs: dict = {}
        with e.phase("G", "F"):
            with e.autocast():
                generated = e.net("G")(real)
            fake = generated[:n]
        with e.phase("D"):
            with e.autocast():
                logits = e.net("D")(torch.cat([b, fake.detach().to(b.dtype)]))
            real_l, fake_l = logits.split(n)
            loss_d = 0.5 * discriminator_loss(s.gan_loss, real_l, fake_l)
            logs.update(loss_d=loss_d.detach(), d_real=real_l.float().mean().detach(),
                        d_fake=fake_l.float().mean().detach())
            e.step(loss_d, "D")
        with e.phase("G", "F"):
            with e.autocast():
                adv = generator_loss(s.gan_loss, e.net("D")(fake))
            loss = s.gan_weight * adv
            logs["loss_g_adv"] = adv.detach()
            if s.nce_weight > 0:
                nce = self.nce_loss(a, fake, flipped)
                logs["loss_nce"] = nce.detach()
                if identity:
                    nce_idt = self.nce_loss(b, generated[n:], flipped)
                    logs["loss_nce_idt"] = nce_idt.detach()
                    nce = (nce + nce_idt) / 2
                loss = loss + nce
            logs["loss_g"] = loss.detach()
            e.step(loss, "G", "F")
        logs["lr"] = lr
        return logs

    # ---- translation ---------------------------------------------------------------------------
    def check_target(self, to) -> None:
        """CUT learns A -> B only: `to` may be None, 1, "1", "B" or domain B's name."""
        if to is None or (isinstance(to, int) and not isinstance(to, bool) and to == 1):
            return
        text = str(to).strip()
        if text in ("1", "B", "b", self.names[1]):
            return
        raise ConfigError(f"{self.name} translates domain A ({self.names[0]}) to B ({self.names[1]}) only; "
                          f"--to {to!r} is not B")

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None, to=None) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] (domain A) -> G(x), domain B. `z` is ignored (deterministic)."""
        self.check_target(to)
        x, (h, w) = pad_to_multiple(x, self.input_multiple)
        return self.G(x)[..., :h, :w]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.prepare_images(x) if x.dtype == torch.uint8 else x.to(self.engine.device).float()

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int = 1, seed: int = 0) -> list[torch.Tensor]:
        """Rows: held-out A images, then B images; columns: input, G(input) (for B: the identity mapping)."""
        k = self.settings.sample_rows
        x = torch.cat([self._prepare(holdout[key][:k]) for key in ("A", "B") if key in holdout])
        return [x.float().cpu(), self.G(x).float().cpu()]

    @torch.no_grad()
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """PatchNCE (unweighted) between held-out A images and their translations, and for B images their
        identity mapping; patch locations from the trainer's fixed monitor seed."""
        s = self.settings
        out = {}
        for key in ("A", "B"):
            if key in holdout:
                x = holdout[key].float()
                keys, ids = self.F(self.G.features(x, self.nce_layers), s.num_patches)
                queries, _ = self.F(self.G.features(self.G(x), self.nce_layers), s.num_patches, ids)
                total = sum(patch_nce_loss(q, k, x.shape[0], s.temperature) for q, k in zip(queries, keys))
                out[f"val_nce_{key}"] = float(total) / len(self.nce_layers)
        return out


class FastCUT(CUT):
    """FastCUT: CUT without the identity term, lambda_NCE 10, flip-equivariance augmentation."""

    name = "fastcut"
    Settings = FastCUTSettings

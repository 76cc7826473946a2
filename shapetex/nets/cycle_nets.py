"""The networks of the cycle-consistent methods (AsymmetricGAN, CycleGAN, StarGAN-like multi-domain training):
the generator sets of two-domain and multi-domain translation and their discriminators, each one module so a
method trains it with one optimizer and one DDP wrapper.

Generators are `ResnetGenerator`s: a translation generator G^t (source -> target) and a reconstruction
generator G^r (target -> source) whose sizes are set independently (`generator_pair`). With `tie` the
reconstruction generator of one direction *is* the other direction's translation generator (CycleGAN; in
multi-domain mode G^r = G^t, StarGAN)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError
from .patchgan import PatchDiscriminator
from .resnet_gen import ResnetGenerator, generator_pair


class TwoDomainGenerators(nn.Module):
    """G_AB, G_BA (translation) and R_BA, R_AB (reconstruction; the other direction's G when tied)."""

    def __init__(self, t_blocks: int, r_blocks: int, t_width: int, r_width: int, share: str = "none",
                 tie: bool = False, **net):
        super().__init__()
        self.tied = tie
        if tie:
            self.G_AB = ResnetGenerator(t_blocks, t_width, **net)
            self.G_BA = ResnetGenerator(t_blocks, t_width, **net)
        else:
            self.G_AB, self.R_BA = generator_pair(t_blocks, r_blocks, t_width, r_width, share, **net)
            self.G_BA, self.R_AB = generator_pair(t_blocks, r_blocks, t_width, r_width, share, **net)

    def reconstructor(self, to: str) -> nn.Module:
        """The generator that brings a translation back to domain `to` ("A" or "B")."""
        if self.tied:
            return self.G_BA if to == "A" else self.G_AB
        return self.R_BA if to == "A" else self.R_AB

    def parts(self) -> dict[str, nn.Module]:
        """Each generator by name (the tied ones once)."""
        if self.tied:
            return {"G_AB": self.G_AB, "G_BA": self.G_BA}
        return {"G_AB": self.G_AB, "R_BA": self.R_BA, "G_BA": self.G_BA, "R_AB": self.R_AB}

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

    def __init__(self, t_blocks: int, r_blocks: int, t_width: int, r_width: int, share: str = "none",
                 tie: bool = False, **net):
        super().__init__()
        self.tied = tie
        if tie:
            self.G = ResnetGenerator(t_blocks, t_width, **net)
        else:
            self.G, self.R = generator_pair(t_blocks, r_blocks, t_width, r_width, share, **net)

    def reconstructor(self) -> nn.Module:
        return self.G if self.tied else self.R

    def parts(self) -> dict[str, nn.Module]:
        return {"G_t": self.G} if self.tied else {"G_t": self.G, "G_r": self.R}

    def forward(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, cycle: bool = True,
                identity: bool = False) -> dict:
        out = {"fake": self.G(x, target)}
        if cycle:
            out["rec"] = self.reconstructor()(out["fake"], source)
        if identity:
            out["idt"] = self.G(x, source)
        return out


class TwoDomainDiscriminators(nn.Module):
    """D_A judges domain A images, D_B domain B (70x70 PatchGANs at layers=3); one call runs both (one DDP
    forward per step)."""

    def __init__(self, layers: int, width: int, norm: str):
        super().__init__()
        self.D_A = PatchDiscriminator(3, layers, width, norm)
        self.D_B = PatchDiscriminator(3, layers, width, norm)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.D_A(a), self.D_B(b)


class ClassifyingDiscriminator(nn.Module):
    """A PatchGAN whose last features also feed a domain classifier (global average pool, linear):
    x -> (patch logits N x 1 x h x w, domain logits N x n_domains)."""

    def __init__(self, n_domains: int, layers: int, width: int, norm: str, in_channels: int = 3):
        super().__init__()
        patch = PatchDiscriminator(in_channels, layers, width, norm)
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


class StarGANDiscriminator(nn.Module):
    """StarGAN's discriminator (Choi et al. 2018), the one the AsymmetricGAN authors' multi-domain code trains:
    `layers` 4x4 stride-2 convolutions (width, then doubling at each, no cap) with LeakyReLU(0.01) and no norm;
    then a 3x3 convolution to one logit per position, and a convolution as large as the last feature map to the
    domain logits, both without bias. x (size x size, or h x w for `size` (h, w)) -> (patch logits N x 1 x h' x w',
    domain logits N x n)."""

    def __init__(self, n_domains: int, size: int | tuple[int, int], layers: int = 6, width: int = 64,
                 in_channels: int = 3):
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        if layers < 1 or h % 2**layers or w % 2**layers:
            shown = f"{h} px" if h == w else f"{h}x{w} px"
            raise ConfigError(f"the StarGAN discriminator halves the image d_layers={layers} times: the size "
                              f"({shown}) must be a multiple of {2**max(layers, 0)}")
        mods: list[nn.Module] = []
        c_in, c = in_channels, width
        for _ in range(layers):
            mods += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.01)]
            c_in, c = c, c * 2
        self.trunk = nn.Sequential(*mods)
        self.head = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        self.classifier = nn.Conv2d(c_in, n_domains, (h // 2**layers, w // 2**layers), bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.head(h), self.classifier(h).flatten(1)

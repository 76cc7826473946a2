"""The ResNet generator of CycleGAN (Johnson et al. 2016; Zhu et al. 2017) and StarGAN, with optional
target-label conditioning and parts shared between two generators (AsymmetricGAN).

Layout (width w, b residual blocks, 2 down-samplings):
    encoder  pad-3, conv 7x7 (in -> w), norm, ReLU; conv 3x3 stride 2 (w -> 2w), norm, ReLU; (2w -> 4w) again
    blocks   b x [pad-1, conv 3x3, norm, ReLU, pad-1, conv 3x3, norm] + identity
    decoder  transposed conv 3x3 stride 2 (4w -> 2w), norm, ReLU; (2w -> w) again; pad-3, conv 7x7 (w -> out), tanh
`antialias` (off by default; CUT's reference generator has it on): each down-sampling is a stride-1 conv, norm,
ReLU and a blurred stride-2 subsampling, each up-sampling a blurred 2x upsampling, a stride-1 conv, norm, ReLU
(`shapetex.nets.blurpool`).
Instance norm without affine parameters and convolutions with biases, as in CycleGAN. With
`label_channels` = n, a one-hot target label is tiled into n constant maps and concatenated to the input
(StarGAN); use zero padding then, since reflection padding and instance norm erase a constant map.

Sharing: a generator built with `encoder=` or `decoder=` another generator's part uses that very object
without registering it, so the part is saved, moved, counted and optimized once, by its owner.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError
from .blurpool import BlurDownsample, BlurUpsample
from .layers import norm_layer


def conv_padding(kind: str, amount: int) -> tuple[list[nn.Module], int]:
    """(explicit padding layers, the conv's own padding) for padding kind reflect | replicate | zeros."""
    if kind == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if kind == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if kind == "zeros":
        return [], amount
    raise ConfigError(f"padding must be reflect, replicate or zeros, got {kind!r}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, padding: str = "reflect", norm: str = "instance"):
        super().__init__()
        pad1, p1 = conv_padding(padding, 1)
        pad2, p2 = conv_padding(padding, 1)
        self.body = nn.Sequential(*pad1, nn.Conv2d(channels, channels, 3, padding=p1), norm_layer(norm, channels),
                                  nn.ReLU(inplace=True),
                                  *pad2, nn.Conv2d(channels, channels, 3, padding=p2), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_encoder(in_channels: int, width: int, downsampling: int, padding: str, norm: str,
                 antialias: bool = False) -> nn.Sequential:
    pad, p = conv_padding(padding, 3)
    layers: list[nn.Module] = [*pad, nn.Conv2d(in_channels, width, 7, padding=p), norm_layer(norm, width),
                               nn.ReLU(inplace=True)]
    ch = width
    for _ in range(downsampling):
        if antialias:  # CUT's reference: a stride-1 conv, norm, ReLU, then a blurred stride-2 subsampling
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=1, padding=1), norm_layer(norm, ch * 2), nn.ReLU(inplace=True),
                       BlurDownsample(ch * 2)]
        else:
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), norm_layer(norm, ch * 2),
                       nn.ReLU(inplace=True)]
        ch *= 2
    return nn.Sequential(*layers)


def make_decoder(out_channels: int, width: int, downsampling: int, padding: str, norm: str,
                 antialias: bool = False) -> nn.Sequential:
    ch = width * 2**downsampling
    layers: list[nn.Module] = []
    for _ in range(downsampling):
        if antialias:  # a blurred 2x upsampling, then a stride-1 conv
            layers += [BlurUpsample(ch), nn.Conv2d(ch, ch // 2, 3, stride=1, padding=1)]
        else:
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1)]
        layers += [norm_layer(norm, ch // 2), nn.ReLU(inplace=True)]
        ch //= 2
    pad, p = conv_padding(padding, 3)
    layers += [*pad, nn.Conv2d(ch, out_channels, 7, padding=p), nn.Tanh()]
    return nn.Sequential(*layers)


class ResnetGenerator(nn.Module):
    """x (N x 3 x H x W in [-1, 1], H and W multiples of 2^downsampling) [+ target labels] -> N x out x H x W."""

    def __init__(self, blocks: int = 9, width: int = 64, in_channels: int = 3, out_channels: int = 3,
                 label_channels: int = 0, downsampling: int = 2, padding: str = "reflect", norm: str = "instance",
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None, antialias: bool = False):
        super().__init__()
        self.label_channels = label_channels
        self.width, self.n_blocks, self.downsampling = width, blocks, downsampling
        self.multiple = 2**downsampling
        if encoder is None:
            self.encoder = make_encoder(in_channels + label_channels, width, downsampling, padding, norm, antialias)
        else:
            object.__setattr__(self, "encoder", encoder)  # shared: the owner registers it
        self.blocks = nn.Sequential(*[ResidualBlock(width * 2**downsampling, padding, norm) for _ in range(blocks)])
        if decoder is None:
            self.decoder = make_decoder(out_channels, width, downsampling, padding, norm, antialias)
        else:
            object.__setattr__(self, "decoder", decoder)
        self.shared = tuple(n for n, m in (("encoder", encoder), ("decoder", decoder)) if m is not None)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None, layers=None):
        """`label`: int64 N target domains, or float N x label_channels (one-hot or soft) when conditional.
        `layers`: return `features(x, layers)` instead (one call for DDP, like the reference's encode_only)."""
        if layers is not None:
            return self.features(x, layers)
        if self.label_channels:
            if label is None:
                raise ValueError("this generator is conditional: give the target domain labels")
            if label.dtype in (torch.int64, torch.int32):
                label = nn.functional.one_hot(label.long(), self.label_channels)
            maps = label.to(x.dtype).view(x.shape[0], self.label_channels, 1, 1).expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, maps], dim=1)
        return self.decoder(self.blocks(self.encoder(x)))

    def trunk(self) -> list[nn.Module]:
        """The encoder's modules then the residual blocks, in order: the layers `features` indexes."""
        return [*self.encoder, *self.blocks]

    def features(self, x: torch.Tensor, layers: list[int] | tuple[int, ...]) -> list[torch.Tensor]:
        """The outputs of trunk layers `layers` (indices into `trunk()`, ascending) for an unconditional input;
        the decoder does not run. CUT's PatchNCE reads these."""
        if self.label_channels:
            raise ValueError("features() is for unconditional generators")
        trunk = self.trunk()
        wanted = set(check_taps(trunk, layers))
        out = []
        for i, layer in enumerate(trunk[:max(layers) + 1]):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return out

    def feature_channels(self, layers: list[int] | tuple[int, ...]) -> list[int]:
        """Channels of each `features` output, from the layout alone (no forward pass)."""
        trunk = self.trunk()
        check_taps(trunk, layers)
        channels = []
        ch = next(m for m in self.encoder if isinstance(m, nn.Conv2d)).in_channels  # the input's channels
        for i, layer in enumerate(trunk):
            if isinstance(layer, nn.Conv2d):
                ch = layer.out_channels
            if i in layers:
                channels.append(ch)
        return channels


def check_taps(trunk: list[nn.Module], layers) -> list[int]:
    """Validate feature taps: ascending, in range, and not the output of a layer an in-place ReLU then overwrites."""
    layers = list(layers)
    if not layers or layers != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= len(trunk):
        raise ConfigError(f"feature layers must be ascending distinct indices in 0..{len(trunk) - 1}, got {layers}")
    for i in layers:
        nxt = trunk[i + 1] if i + 1 < len(trunk) else None
        if isinstance(nxt, nn.ReLU) and nxt.inplace:
            raise ConfigError(f"trunk layer {i} ({type(trunk[i]).__name__}) is overwritten by the in-place ReLU "
                              "after it; tap the ReLU's output or another layer")
    return layers


def generator_pair(t_blocks: int, r_blocks: int, t_width: int = 64, r_width: int = 64, share: str = "none",
                   **kwargs) -> tuple[ResnetGenerator, ResnetGenerator]:
    """AsymmetricGAN's (translation, reconstruction) generators of independent sizes; with share "encoder"
    or "decoder" the reconstruction generator runs the translation generator's part itself."""
    if share not in ("none", "encoder", "decoder"):
        raise ConfigError(f"share must be none, encoder or decoder, got {share!r}")
    if share != "none" and t_width != r_width:
        raise ConfigError(f"sharing the {share} needs equal widths, got {t_width} and {r_width}")
    g_t = ResnetGenerator(t_blocks, t_width, **kwargs)
    r = ResnetGenerator(r_blocks, r_width, encoder=g_t.encoder if share == "encoder" else None,
                        decoder=g_t.decoder if share == "decoder" else None, **kwargs)
    return g_t, r


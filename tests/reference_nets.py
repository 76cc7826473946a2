"""Small re-implementations of pytorch-CycleGAN-and-pix2pix's networks (models/networks.py), written from
their documented architecture for the tests: the module nesting, and so the state-dict key layout, is theirs;
the in-place activations are kept on purpose, since the U-Net's skip connections depend on them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefUnetBlock(nn.Module):
    """UnetSkipConnectionBlock: X -> [X, up(sub(down(X)))] (outermost: up(sub(down(X))))."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 batch_norm=True, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = not batch_norm
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.InstanceNorm2d(c))
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=use_bias)
            model = [downrelu, downconv, uprelu, upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=use_bias)
            model = [downrelu, downconv, norm(inner_nc), submodule, uprelu, upconv, norm(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # x is LeakyReLU'd in place by the time cat reads it


class RefUnet(nn.Module):
    """UnetGenerator(input_nc, output_nc, num_downs, ngf): unet_128 is num_downs 7, unet_256 8."""

    def __init__(self, num_downs, ngf=64, input_nc=3, output_nc=3, batch_norm=True, use_dropout=True):
        super().__init__()
        kw = dict(batch_norm=batch_norm)
        block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **kw)
        block = RefUnetBlock(ngf * 4, ngf * 8, submodule=block, **kw)
        block = RefUnetBlock(ngf * 2, ngf * 4, submodule=block, **kw)
        block = RefUnetBlock(ngf, ngf * 2, submodule=block, **kw)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **kw)

    def forward(self, x):
        return self.model(x)


class RefResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def _binomial(size: int) -> torch.Tensor:
    a = torch.tensor({3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size])
    f = a[:, None] * a[None, :]
    return f / f.sum()


class RefDownsample(nn.Module):
    """CUT's antialiased subsampling: reflect-pad 1, per-channel 3x3 binomial blur, stride 2 (`filt` persistent)."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer("filt", _binomial(3)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x):
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class RefUpsample(nn.Module):
    """CUT's antialiased 2x upsampling: replicate-pad 1, transposed 4x4 binomial blur x 4, trimmed."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer("filt", (_binomial(4) * 4)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x):
        y = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])[:, :, 1:, 1:]
        return y[:, :, :-1, :-1]


class RefResnet(nn.Module):
    """ResnetGenerator with instance norm (CycleGAN's resnet_6blocks / resnet_9blocks); `antialias`: CUT's
    default layout, each down-sampling a stride-1 conv, norm, ReLU, then a blurred subsampling, each
    up-sampling a blurred upsampling, then a stride-1 conv."""

    def __init__(self, n_blocks, ngf=64, input_nc=3, output_nc=3, antialias=False):
        super().__init__()
        m = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                m += [nn.Conv2d(c, 2 * c, 3, 1, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True), RefDownsample(2 * c)]
            else:
                m += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        m += [RefResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            up = ([RefUpsample(c), nn.Conv2d(c, c // 2, 3, 1, 1)] if antialias
                  else [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1)])
            m += [*up, nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x):
        return self.model(x)


class RefCutResnet(RefResnet):
    """CUT's ResnetGenerator with its default antialiased down- and up-sampling (instance norm, no dropout)."""

    def __init__(self, n_blocks, ngf=64, input_nc=3, output_nc=3):
        super().__init__(n_blocks, ngf, input_nc, output_nc, antialias=True)


class RefPatchSampleF(nn.Module):
    """CUT's PatchSampleF heads as its checkpoints hold them: mlp_<i> = Linear, ReLU, Linear per tapped layer."""

    def __init__(self, channels, nc=256):
        super().__init__()
        for i, c in enumerate(channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))


class RefNLayerD(nn.Module):
    """NLayerDiscriminator (the 70x70 PatchGAN at n_layers 3)."""

    def __init__(self, input_nc, ndf=64, n_layers=3, batch_norm=True):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else nn.InstanceNorm2d
        bias = not batch_norm
        seq = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=bias), norm(ndf * mult),
                    nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and batch-norm statistic random (far from the init), so a misplaced tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith(".filt"):  # CUT's fixed blur filters stay as they are
                continue
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(".weight") and t.ndim == 1:  # norm scale
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return net

import pytest
import torch

from shapetex.nets.stylegan2 import Discriminator, ModulatedConv2d, minibatch_stddev
from shapetex.nets.translator import Encoder, TranslatorGenerator


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("bottleneck", [16, 8])
def test_shapes_of_every_network(size, bottleneck):
    g = TranslatorGenerator(size, bottleneck_res=bottleneck, z_dim=16, w_dim=32, mapping_layers=2,
                            channel_base=512, channel_max=32)
    x = torch.randn(2, 3, size, size)
    z = torch.randn(2, 16)
    feats = g.encoder(x)
    assert feats.shape == (2, 128, bottleneck, bottleneck)  # the paper's 16x16x128 / 8x8x128
    w = g.mapping(z)
    assert w.shape == (2, 32)
    assert g.decoder(feats, w).shape == (2, 3, size, size)
    assert g(x, z).shape == (2, 3, size, size)
    d = Discriminator(size, channel_base=512, channel_max=32)
    assert d(x).shape == (2,)


def test_encoder_is_plain_conv_relu():
    enc = Encoder(64, 16)
    kinds = {type(m).__name__ for m in enc.modules()} - {"Encoder", "Sequential"}
    assert kinds == {"EqualConv2d", "ScaledReLU"}
    strides = [m.stride for m in enc.modules() if type(m).__name__ == "EqualConv2d"]
    assert strides.count(2) == 2  # 64 -> 32 -> 16


def test_z_is_a_source_of_variety():
    torch.manual_seed(0)
    g = TranslatorGenerator(32, z_dim=16, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32)
    for m in g.modules():  # turn noise inputs off: the difference must come from z alone
        if hasattr(m, "strength"):
            m.strength.data.zero_()
    x = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    z = torch.randn(2, 16)
    y = g(x, z)
    assert (y[0] - y[1]).abs().mean() > 1e-3
    same = g(x, z[:1].repeat(2, 1))
    torch.testing.assert_close(same[0], same[1])


def test_modulated_conv_equals_per_sample_weights():
    # the fast form (scale input, shared conv, scale output) must equal StyleGAN2's per-sample weights
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 5, 3, w_dim=6)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 6)
    fast = conv(x, w)
    style = conv.affine(w)
    for b in range(2):
        wb = conv.weight * conv.scale * style[b][None, :, None, None]
        wb = wb * torch.rsqrt(wb.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        ref = torch.nn.functional.conv2d(x[b:b + 1], wb, padding=1)
        torch.testing.assert_close(fast[b:b + 1], ref, rtol=1e-4, atol=1e-5)


def test_minibatch_std_groups_do_not_mix_halves():
    # [fake; real] in one batch: the statistic of the fake half must not depend on the real half
    a = torch.randn(4, 2, 4, 4)
    b1, b2 = torch.randn(4, 2, 4, 4), torch.randn(4, 2, 4, 4) * 10
    s1 = minibatch_stddev(torch.cat([a, b1]), group=4)[:4, -1]
    s2 = minibatch_stddev(torch.cat([a, b2]), group=4)[:4, -1]
    torch.testing.assert_close(s1, s2)

import pytest
import torch

from shapetex.nets.stylegan2 import Discriminator, ModulatedConv2d, minibatch_stddev
from shapetex.nets.translator import Encoder, FourierFeatures, TranslatorGenerator


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


def test_fourier_features_follow_w_and_never_alias():
    ff = FourierFeatures(16, w_dim=8, max_cycles=12.8)
    w = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    a, b = ff(w, 32), ff(w.clone(), 32)
    assert a.shape == (3, 16, 32, 32) and torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])  # another w: another rotation and shift
    low = ff(w, 16)
    too_fast = ff.freqs.norm(dim=1) > 0.45 * 16
    assert too_fast.any() and (low[:, too_fast] == 0).all() and (low[:, ~too_fast] != 0).any()


def test_fourier_features_off_by_default_is_the_papers_decoder():
    g = TranslatorGenerator(32, channel_max=32, z_dim=8, w_dim=16, mapping_layers=1)
    assert g.decoder.fourier is None and not any("fourier" in k for k in g.state_dict())
    gf = TranslatorGenerator(32, channel_max=32, z_dim=8, w_dim=16, mapping_layers=1, fourier_features=8)
    x, z = torch.randn(2, 3, 32, 32), torch.randn(2, 8)
    assert gf(x, z).shape == (2, 3, 32, 32)


def test_style_mixing_styles_only_the_layers_after_the_cutoff():
    torch.manual_seed(0)
    g = TranslatorGenerator(32, bottleneck_res=8, z_dim=16, w_dim=32, mapping_layers=2, channel_base=512,
                            channel_max=32)
    x, z, z2 = torch.randn(2, 3, 32, 32), torch.randn(2, 16), torch.randn(2, 16)
    noise_off = {m: torch.zeros(()) for m in g.modules() if type(m).__name__ == "NoiseInjection"}
    for m in noise_off:
        m.strength.data.zero_()
    assert g.decoder.num_ws == 6  # 8 -> 16 -> 32: two at the bottleneck, two per doubling
    plain = g(x, z)
    assert torch.allclose(g(x, z, mix_z=z, mix_from=1), plain, atol=1e-6)  # mixing z with itself: no change
    assert torch.equal(g(x, z, mix_z=z2, mix_from=6), plain)  # a cut-off past the last layer: no mixing
    # the 32 px toRGB is the last style: mixing only it changes the output, but less than mixing all of them
    last_only, all_mixed = g(x, z, mix_z=z2, mix_from=5), g(x, z, mix_z=z2, mix_from=1)
    assert not torch.allclose(last_only, plain)
    assert (last_only - plain).abs().mean() < (all_mixed - plain).abs().mean()
    # mixing from layer 1 leaves only the first conv with z's style: not the same as styling everything by z2
    assert not torch.allclose(all_mixed, g(x, z2), atol=1e-4)

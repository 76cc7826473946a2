"""shapetex's U-Net is the reference's UnetGenerator: the same tensors (mapped one by one from a state dict
in the reference's key layout) and the same outputs, checked against the independent re-implementation in
tests/reference_nets.py; and pix2pix starts from the reference's initialisation."""

from __future__ import annotations

import pytest
import torch
from reference_nets import RefUnet, randomize
from torch import nn

from shapetex.config import DataConfig, RunConfig
from shapetex.methods import build_method
from shapetex.nets.unet import UNetGenerator
from shapetex.reference_weights import match_reference, to_reference, unet_name

NGF = 4


def expected_reference_keys(num_downs: int) -> list[str]:
    """The reference's UnetGenerator state-dict keys with batch norm, written out from its documented nesting:
    outermost [downconv, sub, ReLU, upconv, Tanh]; middle [LeakyReLU, downconv, norm, sub, ReLU, upconv, norm,
    (Dropout)]; innermost [LeakyReLU, downconv, ReLU, upconv, norm]."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["model.model.0.weight"]  # no bias: batch norm follows on the way up
    prefix = "model.model.1.model."
    inner: list[str] = []
    for level in range(1, num_downs):
        if level < num_downs - 1:
            keys += [f"{prefix}1.weight"] + [f"{prefix}2.{t}" for t in bn]
            inner = [f"{prefix}5.weight"] + [f"{prefix}6.{t}" for t in bn] + inner
            prefix += "3.model."
        else:  # innermost: no down norm
            keys += [f"{prefix}1.weight"]
            inner = [f"{prefix}3.weight"] + [f"{prefix}4.{t}" for t in bn] + inner
    return keys + inner + ["model.model.3.weight", "model.model.3.bias"]


@pytest.mark.parametrize("num_downs", [7, 8])  # unet_128, unet_256
def test_reference_state_dict_maps_tensor_by_tensor(num_downs):
    ref = randomize(RefUnet(num_downs, NGF))
    ref_sd = ref.state_dict()
    assert sorted(ref_sd) == sorted(expected_reference_keys(num_downs))  # the test's reference is the documented one
    g = UNetGenerator(num_downs, base_channels=NGF)
    own = g.state_dict()
    assert len(own) == len(ref_sd)
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in ref.parameters())
    for k, v in own.items():  # every shapetex tensor has its reference counterpart, with its shape
        assert tuple(ref_sd[unet_name(k, num_downs)].shape) == tuple(v.shape), k
    mapped, notes = match_reference(ref_sd, g, f"unet_{2**num_downs}")
    assert notes == []
    g.load_state_dict(mapped)
    for k, v in g.state_dict().items():
        assert torch.equal(v, ref_sd[unet_name(k, num_downs)]), k
    assert set(to_reference(g)) == set(ref_sd)


def forward_pair(num_downs: int, seed: int = 0):
    ref = randomize(RefUnet(num_downs, NGF), seed)
    g = UNetGenerator(num_downs, base_channels=NGF, test_dropout=False)
    g.load_state_dict(match_reference(ref.state_dict(), g, "unet")[0])
    return ref, g


@pytest.mark.parametrize("num_downs", [7, 8])
def test_forward_equals_the_reference(num_downs):
    ref, g = forward_pair(num_downs)
    n_dropout = sum(isinstance(m, nn.Dropout) for m in ref.modules())
    assert n_dropout == num_downs - 5 and len(g.dropout_at) == n_dropout  # unet_128: 2, unet_256: 3
    x = torch.rand(2, 3, 2**num_downs, 2**num_downs) * 2 - 1
    with torch.no_grad():
        ref.eval(), g.eval()
        a, b = ref(x.clone()), g(x)
        assert 0.05 < a.abs().mean() < 0.95  # not saturated: the comparison sees the network
        assert (a - b).abs().max() <= 1e-6
        ref.train(), g.train()  # batch statistics, and dropout: the same masks in the same order
        torch.manual_seed(3)
        a = ref(x.clone())
        torch.manual_seed(3)
        b = g(x)
        assert (a - b).abs().max() <= 1e-6
        torch.manual_seed(4)
        assert (g(x) - b).abs().max() > 1e-3  # dropout on: the masks matter


def test_skip_sees_relu_of_the_encoder_feature_before_the_decoder():
    """The reference's in-place LeakyReLU/ReLU: its decoder reads ReLU(skip), [skip, below] in that order."""
    _, g = forward_pair(7)
    g.eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        feats = g.encode(x)
        flipped = list(feats)
        flipped[0] = torch.minimum(feats[0], torch.zeros_like(feats[0])) * 3  # change only the negative part
        kept = g.decode([torch.maximum(feats[0], torch.zeros_like(feats[0])), *feats[1:]])
        assert torch.equal(g.decode(feats), kept)
        assert torch.equal(g.decode(flipped), g.decode([torch.zeros_like(feats[0]), *feats[1:]]))


def test_pix2pix_starts_from_the_reference_init():
    torch.manual_seed(0)
    m = build_method(RunConfig(method="pix2pix", data=DataConfig(source="paired", size=128),
                          model={"g_channels": 8, "d_channels": 8}))
    for net in (m.G, m.D):
        for mod in net.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                assert abs(mod.weight.std().item() - 0.02) < 0.004 and abs(mod.weight.mean().item()) < 0.004
                assert mod.bias is None or torch.count_nonzero(mod.bias) == 0
            if isinstance(mod, nn.BatchNorm2d):
                assert torch.count_nonzero(mod.bias) == 0 and abs(mod.weight.mean().item() - 1) < 0.01
                assert 0 < mod.weight.std().item() < 0.05
    assert m.G.encoder[0][0].bias is None and m.G.encoder[-1][0].bias is None and m.G.final.bias is not None

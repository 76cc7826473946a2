import math

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.tiling import tile_starts, tiled_apply
from shapetex.train import Trainer


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("tiling") / "run"
    Trainer(tiny_config(run, budget=16)).run()
    return Translator.load(run, device="cpu")


def test_tile_starts_cover_the_image_aligned_and_flush():
    for length, tile, overlap, align in [(600, 128, 32, 4), (1008, 256, 64, 16), (123, 64, 16, 1), (50, 64, 8, 2)]:
        starts = tile_starts(length, min(tile, length), overlap, align)
        covered = np.zeros(length, bool)
        for s in starts:
            assert s % align == 0
            covered[s:s + min(tile, length)] = True
            assert s + min(tile, length) <= length
        assert covered.all() and starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= min(tile, length) - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("ramp", ["linear", "cosine"])
def test_blend_weights_cross_fade_along_the_ramp(ramp):
    # Two tiles along the width (starts 0 and 32, overlap [32, 48)); each tile "translates" to its own
    # constant, so the blended value in the overlap is exactly the second tile's weight share.
    x = torch.zeros(1, 1, 8, 80)
    out = tiled_apply(x, lambda part, origin: torch.full_like(part, float(origin[1])), tile=48, overlap=16,
                      margin=4, ramp=ramp)[0, 0]
    assert torch.allclose(out, out[:1].expand_as(out))  # one tile vertically: rows identical
    row = out[0] / 32
    assert torch.allclose(row[:36], torch.zeros(36), atol=1e-3)  # first tile alone, and the second's margin
    assert torch.allclose(row[44:], torch.ones(36), atol=1e-3)  # the first tile's margin, then the second alone
    for p in range(36, 44):
        t = (p - 36 + 0.5) / 8
        expected = t if ramp == "linear" else 0.5 - 0.5 * math.cos(math.pi * t)
        assert abs(row[p].item() - expected) < 1e-4, (p, row[p].item(), expected)
    assert (row[1:] >= row[:-1] - 1e-6).all()  # a monotone cross-fade: no seam


def test_tiling_a_pointwise_function_is_exact_at_odd_sizes():
    torch.manual_seed(0)
    for h, w in [(123, 257), (600, 1000)]:
        x = torch.rand(2, 3, h, w) * 2 - 1
        fn = lambda part, origin: torch.tanh(3 * part) * 0.7 + part.mean(1, keepdim=True) * 0.2  # noqa: E731
        out = tiled_apply(x, fn, tile=96, overlap=24, align=4)
        assert out.shape == (2, 3, h, w)
        assert torch.allclose(out, fn(x, (0, 0)), atol=1e-5)


def test_tiled_translation_matches_untiled_including_noise(translator):
    torch.manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 127, 261) * 2 - 1, 5, 1)  # 123 x 257, smooth
    noise_layers = translator._noise.layers
    old = [float(n.strength) for n in noise_layers]
    try:
        for n in noise_layers:  # strong noise: per-tile noise draws would show
            n.strength.data.fill_(0.5)
        full = translator.translate_tensor(x, 2, seed=3)
        tiled = translator.translate_tensor(x, 2, seed=3, tile=64, overlap=32)
        zero = translator.translate_tensor(x, 2, seed=3, noise="zero")
    finally:
        for n, s in zip(noise_layers, old):
            n.strength.data.fill_(s)
    assert tiled.shape == full.shape == (1, 2, 3, 123, 257)
    assert (full - zero).abs().mean() > 0.01  # the noise inputs matter in this check
    assert (full[:, 0] - full[:, 1]).abs().mean() > 0.01  # so does z
    assert (tiled - full).abs().max() < 2e-3


def test_constant_input_gives_constant_output_without_seams(translator):
    img = Image.new("RGB", (1000, 600), (90, 140, 200))
    out = translator(img, tile=128, overlap=32, noise="zero")[0]
    assert out.size == (1000, 600) and out.mode == "RGB"
    inner = np.asarray(out, dtype=np.int16)[24:-24, 24:-24]  # the image border sees padding
    assert (inner.max(axis=(0, 1)) - inner.min(axis=(0, 1))).max() <= 1
    # without blending (no overlap) the tile borders show as seams: the check above can fail
    seams = np.asarray(translator(img, tile=128, overlap=0, noise="zero")[0], dtype=np.int16)[24:-24, 24:-24]
    assert (seams.max(axis=(0, 1)) - seams.min(axis=(0, 1))).max() > 10


def test_odd_sizes_keep_their_size_natively_tiled_or_not(translator):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (123, 257, 3), dtype=np.uint8))
    native = translator(img, samples=2, native=True)
    tiled = translator(img, samples=2, tile=64, overlap=16)
    resized = translator(img, samples=1)
    assert [o.size for o in native + tiled + resized] == [(257, 123)] * 5
    assert np.abs(np.asarray(native[0], float) - np.asarray(tiled[0], float)).mean() < 2
    with pytest.raises(ValueError, match="smaller than the network's input multiple"):
        translator(img, tile=1)

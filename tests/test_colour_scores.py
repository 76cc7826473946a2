"""The colours task's scores: which family a fill comes from, and the hue spread over z."""

import colorsys

import numpy as np
import pytest
import torch

from shapetex.data.builtin import (
    BACKGROUND,
    SHAPE_HUES,
    TEXTURE_HUES,
    builtin_images,
    hsv_colour,
    render,
    sample_params,
    translated_version,
)
from shapetex.data.images import uint8_to_float
from shapetex.metrics.colours import colour_z_spread, fill_colours, fill_family, hue_distance, rgb_to_hsv, texture_taken
from shapetex.metrics.shapes import silhouette_score


def _f(x):
    return uint8_to_float(x)


def test_rgb_to_hsv_matches_colorsys():
    rgb = torch.rand(200, 3, generator=torch.Generator().manual_seed(0))
    hue, sat, val = rgb_to_hsv(rgb)
    want = np.array([colorsys.rgb_to_hsv(*c) for c in rgb.tolist()])
    assert np.allclose(hue.numpy(), want[:, 0] * 360, atol=1e-3)
    assert np.allclose(sat.numpy(), want[:, 1], atol=1e-5) and np.allclose(val.numpy(), want[:, 2], atol=1e-6)


def test_hue_distance_wraps_around_the_circle():
    hues = torch.tensor([10.0, 350.0, 100.0, 250.0])
    assert hue_distance(hues, SHAPE_HUES).tolist() == pytest.approx([0.0, 10.0, 55.0, 110.0])
    assert hue_distance(hues, TEXTURE_HUES).tolist() == pytest.approx([50.0, 30.0, 80.0, 0.0])


def test_the_two_sets_fill_from_disjoint_families_far_from_the_background():
    shapes, textures = builtin_images("shape", 64, 32, seed=3), builtin_images("texture", 64, 32, seed=3)
    assert set(fill_family(_f(shapes))) == {"shape"} and set(fill_family(_f(textures))) == {"texture"}
    hues = rgb_to_hsv(fill_colours(_f(textures))[0])[0]
    assert hues.max() - hues.min() > 100  # the texture set varies in hue: something for z to choose
    bg = np.asarray(BACKGROUND, np.float32)
    for h in np.linspace(*TEXTURE_HUES, 30).tolist() + np.linspace(*SHAPE_HUES, 10).tolist():
        assert np.abs(hsv_colour(h, 0.6, 0.65) - bg).max() > 0.3 * 127.5  # the foreground threshold


def test_texture_taken_separates_good_from_bad_translations():
    x = _f(builtin_images("shape-holdout", 32, 32, seed=7))
    correct = _f(translated_version("shape-holdout", 32, 32, seed=7))
    assert silhouette_score(x, correct) > 0.95
    assert texture_taken(correct) == 1.0 and texture_taken(x) == 0.0
    background = _f(torch.tensor(BACKGROUND, dtype=torch.uint8)[None, :, None, None].expand(4, 3, 32, 32))
    assert texture_taken(background) == 0.0  # nothing drawn: no family
    grey = x.clone()
    grey[:, :] = grey.mean(1, keepdim=True)  # the silhouettes kept, the fill drained of colour
    assert texture_taken(grey) == 0.0
    half = torch.cat([correct[:16], x[16:]])
    assert texture_taken(half) == 0.5


def test_hue_spread_is_zero_for_a_z_blind_translator_and_large_when_z_picks_the_hue():
    n, k = 16, 4
    x = _f(builtin_images("shape-holdout", n, 32, seed=1))
    blind = _f(translated_version("shape-holdout", n, 32, seed=1))[:, None].expand(n, k, 3, 32, 32)
    assert colour_z_spread(blind)["hue_spread"] == 0.0 and colour_z_spread(blind)["pixel_diversity"] == 0.0
    params = [sample_params(np.random.default_rng(i)) for i in range(n)]
    hues = (200.0, 240.0, 280.0, 310.0)
    by_z = torch.stack([torch.stack([_f(torch.from_numpy(render(
        p.__class__(**{**p.__dict__, "texture_hue": h}), 32, "cool").transpose(2, 0, 1).copy()))
        for h in hues]) for p in params])
    resultant = np.abs(np.exp(1j * np.deg2rad(hues)).mean())
    # the fills' hues come back through rendering and rounding to within a degree or two
    assert colour_z_spread(by_z)["hue_spread"] == pytest.approx(float(np.rad2deg(np.sqrt(-2 * np.log(resultant)))),
                                                               abs=2.0)
    texture_set = _f(builtin_images("texture-holdout", n * k, 32, seed=2)).reshape(n, k, 3, 32, 32)
    assert 25 < colour_z_spread(texture_set)["hue_spread"] < 60
    assert colour_z_spread(x[:, None].expand(n, k, 3, 32, 32))["hue_spread"] == 0.0

import dataclasses

import numpy as np
import torch

from shapetex.data.builtin import builtin_params, render
from shapetex.metrics.stripes import circular_spread_deg, stripe_angles, stripe_periods, z_spread


def _images(params, size=32):
    arr = np.stack([render(p, size, "stripes") for p in params]).transpose(0, 3, 1, 2).copy()
    return torch.from_numpy(arr).float() / 127.5 - 1


def _axial_error(a, b):
    d = (a - b).abs() % 180
    return torch.minimum(d, 180 - d)


def test_angle_and_period_match_the_renderer():
    params = builtin_params("texture-holdout", 32, seed=3)
    imgs = _images(params)
    angle, coherence = stripe_angles(imgs)
    true = torch.tensor([np.degrees(p.stripe_angle) for p in params], dtype=torch.float32)
    assert _axial_error(angle, true).median() < 6 and _axial_error(angle, true).max() < 12
    assert coherence.min() > 0.9
    period = stripe_periods(imgs)
    true_period = torch.tensor([p.stripe_period for p in params])
    assert ((period - true_period).abs() < 0.02).float().mean() > 0.75  # a few land on a harmonic at 32 px


def test_plain_fill_has_no_coherent_stripes():
    params = builtin_params("shape-holdout", 16, seed=1)
    arr = np.stack([render(p, 32, "plain") for p in params]).transpose(0, 3, 1, 2).copy()
    plain = torch.from_numpy(arr).float() / 127.5 - 1
    plain = plain + 0.05 * torch.randn(plain.shape, generator=torch.Generator().manual_seed(0))
    assert stripe_angles(plain)[1].mean() < 0.5


def test_circular_spread():
    assert circular_spread_deg(torch.tensor([[30.0, 30.0, 30.0, 30.0]])).item() < 0.1
    # axial: 1 and 179 degrees are 2 degrees apart, not 178
    assert circular_spread_deg(torch.tensor([[1.0, 179.0]])).item() < 1.5
    assert circular_spread_deg(torch.tensor([[0.0, 45.0, 90.0, 135.0]])).item() > 60


def test_z_spread_separates_fixed_from_random_stripe_angles():
    """Hand-made "translations": for each input silhouette, 4 outputs whose stripes have one fixed angle
    (a translator that ignores z) or angles drawn across the half-circle (one that uses z)."""
    rng = np.random.default_rng(0)
    base = builtin_params("shape-holdout", 24, seed=2)
    fixed, varied = [], []
    for p in base:
        fixed.append([dataclasses.replace(p, stripe_angle=0.7) for _ in range(4)])
        varied.append([dataclasses.replace(p, stripe_angle=float(a)) for a in rng.uniform(0, np.pi, 4)])
    f = _images([q for row in fixed for q in row]).reshape(24, 4, 3, 32, 32)
    v = _images([q for row in varied for q in row]).reshape(24, 4, 3, 32, 32)
    sf, sv = z_spread(f), z_spread(v)
    assert sf["angle_spread"] < 3 and sv["angle_spread"] > 25
    assert sf["pixel_diversity"] == 0 and sv["pixel_diversity"] > 0.1
    assert sv["stripe_coherence"] > 0.9


def test_period_is_zero_without_texture_frequencies():
    """An output with no foreground, or a flat one, has no period (not 1 / 0)."""
    params = builtin_params("shape-holdout", 2, seed=1)
    arr = np.stack([render(p, 32, "plain") for p in params]).transpose(0, 3, 1, 2).copy()
    plain = torch.from_numpy(arr).float() / 127.5 - 1
    background = plain.clone()
    background[:] = plain[:, :, :1, :1]  # every pixel the background colour
    assert stripe_periods(torch.cat([plain, background])).tolist() == [0.0] * 4

"""SSIM against an independent NumPy implementation (Wang et al. 2004) on textured images: a wrong sigma, K1, K2
or window size would change the value, so this test would catch it (flat images cannot)."""

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from shapetex.metrics import image_scores as S


def reference_ssim(x: np.ndarray, y: np.ndarray, data_range=2.0, win=11, sigma=1.5, k1=0.01, k2=0.03) -> float:
    """Mean SSIM of two C x H x W images: Gaussian-weighted local statistics over every full window."""
    r = np.arange(win) - (win - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    maps = []
    for a, b in zip(x.astype(np.float64), y.astype(np.float64)):
        pa, pb = sliding_window_view(a, (win, win)), sliding_window_view(b, (win, win))
        mean_a, mean_b = (pa * w).sum((-1, -2)), (pb * w).sum((-1, -2))
        var_a = (pa**2 * w).sum((-1, -2)) - mean_a**2
        var_b = (pb**2 * w).sum((-1, -2)) - mean_b**2
        cov = (pa * pb * w).sum((-1, -2)) - mean_a * mean_b
        maps.append((2 * mean_a * mean_b + c1) * (2 * cov + c2) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(maps))


def _textured(seed, h=26, w=31):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, (3, h, w))
    yy, xx = np.mgrid[:h, :w]
    stripes = 0.5 * np.sin(xx / 2.3 + yy / 3.1)[None]
    return np.clip(0.5 * base + stripes, -1, 1)


@pytest.mark.parametrize("noise", [0.05, 0.3, 1.0])
def test_ssim_matches_an_independent_reference_on_textured_images(noise):
    x = _textured(0)
    y = np.clip(x + noise * np.random.default_rng(1).normal(size=x.shape), -1, 1)
    got = float(S.ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None]))
    want = reference_ssim(x, y)
    assert got == pytest.approx(want, abs=1e-5)
    # the reference is sensitive to each constant, so a wrong one in shapetex would fail the line above
    for wrong in ({"sigma": 1.0}, {"k2": 0.05}, {"k1": 0.05}, {"win": 7}):
        assert abs(reference_ssim(x, y, **wrong) - want) > 1e-4, wrong  # 10x the tolerance above


def test_ssim_parameters_are_used():
    x = torch.from_numpy(_textured(2))[None]
    y = torch.from_numpy(_textured(3))[None]
    base = float(S.ssim(x, y))
    assert float(S.ssim(x, y, sigma=1.0)) != pytest.approx(base, abs=1e-4)
    assert float(S.ssim(x, y, k2=0.05)) != pytest.approx(base, abs=1e-4)
    assert float(S.ssim(x, y, window_size=7)) != pytest.approx(base, abs=1e-4)
    assert float(S.ssim(x, y, sigma=1.5, k1=0.01, k2=0.03, window_size=11)) == pytest.approx(
        reference_ssim(x[0].numpy(), y[0].numpy()), abs=1e-5)

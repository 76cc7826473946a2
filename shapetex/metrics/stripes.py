"""What z changes, on the built-in data: the stripe orientation and period inside each output's silhouette.

The texture set's stripes vary in angle over the whole half-circle and in period, so a translator that
uses z should draw, for one input, stripes of different angles for different z. For each output:

- angle: the dominant gradient orientation inside the eroded foreground (structure tensor; stripes are
  axial, so angles live in [0, 180) degrees), which is the built-in renderer's `stripe_angle`;
- period: the wavelength at the peak of the power spectrum of the foreground's luminance, as a fraction
  of the image side (the renderer's `stripe_period`).

`z_spread` turns K outputs per input into per-input spreads: the circular standard deviation of the
angles (axial statistics: angles doubled, then halved back) and the standard deviation of the periods.
Images are float tensors in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .image_scores import pixel_diversity
from .shapes import eroded_foreground, luminance

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def stripe_angles(images: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(angle in degrees in [0, 180), coherence in [0, 1]) per image, N x 3 x H x W in.

    Coherence is 1 for perfectly parallel stripes and 0 where gradients point every way (or there is
    no foreground); it says how much the angle means. `mask`: the eroded foreground, if already known."""
    lum = luminance(images).unsqueeze(1)
    gx = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), _SOBEL[None, None])
    gy = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), _SOBEL.t()[None, None])
    m = (eroded_foreground(images) if mask is None else mask).unsqueeze(1).float()
    jxx, jyy, jxy = ((gx * gx * m).sum((1, 2, 3)), (gy * gy * m).sum((1, 2, 3)), (gx * gy * m).sum((1, 2, 3)))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * jxy, jxx - jyy)) % 180.0
    coherence = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy).clamp_min(1e-12)
    return angle, coherence


def stripe_periods(images: torch.Tensor, pad: int = 4, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Wavelength at the spectral peak of the foreground's luminance, as a fraction of the side (N,).

    The luminance inside the eroded foreground, minus its mean, zero-padded `pad` times for a finer
    frequency grid; 0 where there is no foreground."""
    lum = luminance(images)
    mask = eroded_foreground(images) if mask is None else mask
    m = mask.float()
    area = m.sum((1, 2)).clamp_min(1)
    centred = (lum - (lum * m).sum((1, 2), keepdim=True) / area[:, None, None]) * m
    side = images.shape[-1]
    n = side * pad
    power = torch.fft.rfft2(centred, s=(n, n)).abs().square()
    # frequencies in cycles per pixel (zero-padding refines the grid, it does not change the units)
    freq = torch.sqrt(torch.fft.fftfreq(n)[:, None] ** 2 + torch.fft.rfftfreq(n)[None, :] ** 2)
    # below 2 cycles per side is the silhouette's own outline, not a texture
    power = power.masked_fill(freq * side < 2.0, 0)
    peak_power, peak = power.flatten(1).max(1)
    period = 1.0 / (freq.flatten()[peak].clamp_min(1e-12) * side)
    # no foreground, or one too small to hold any texture frequency: no period (not 1 / 0)
    return torch.where(peak_power > 0, period, torch.zeros_like(period))


def circular_spread_deg(angles_deg: torch.Tensor) -> torch.Tensor:
    """N x K axial angles in degrees -> per row (N,), the circular standard deviation in degrees.

    Angles are doubled (so 0 and 180 are the same direction), the mean resultant length R of the unit
    vectors gives sqrt(-2 ln R), and halving returns to stripe degrees: 0 for equal angles, about 34
    for four angles drawn uniformly from the half-circle, growing without bound as R -> 0."""
    a = torch.deg2rad(angles_deg.double()) * 2
    r = torch.sqrt(torch.cos(a).mean(1) ** 2 + torch.sin(a).mean(1) ** 2).clamp(1e-6, 1.0)
    return torch.rad2deg(torch.sqrt(-2 * torch.log(r)) / 2).float()


def z_spread(outputs: torch.Tensor) -> dict[str, float]:
    """outputs: N x K x 3 x H x W (K outputs per input, different z). Means over the N inputs of the
    stripe-angle spread (degrees), the stripe-period spread (standard deviation, fraction of the side),
    the pixel diversity (mean absolute difference over pairs of outputs) and the mean stripe coherence
    (how much the angles mean: noise also has a spread of angles, but a coherence near 0)."""
    n, k = outputs.shape[:2]
    flat = outputs.reshape(n * k, *outputs.shape[2:]).float()
    mask = eroded_foreground(flat)
    angles, coherence = stripe_angles(flat, mask=mask)
    periods = stripe_periods(flat, mask=mask).reshape(n, k)
    return {"angle_spread": float(circular_spread_deg(angles.reshape(n, k)).mean()),
            "period_spread": float(periods.std(1, unbiased=False).mean()),
            "stripe_coherence": float(coherence.mean()),
            "pixel_diversity": float(pixel_diversity(outputs).mean())}


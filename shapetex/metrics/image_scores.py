"""Per-image scores on float images in [-1, 1] (N x 3 x H x W): SSIM, PSNR, L1, reconstruction MSE, structure
preservation without labels (SSIM of edge maps or of low-passed grayscale), and the diversity of several outputs
for one input (pixel, feature and, when available, LPIPS distance)."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import losses

DATA_RANGE = 2.0  # images in [-1, 1]


# ---- SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid region) -----
def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE, window_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM per image (N,), channels averaged, computed in float64 (`shapetex.losses.ssim`). Images
    smaller than the window use the largest odd window that fits."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    return losses.ssim(x, y, data_range, window_size, sigma, k1, k2, reduction="none", dtype=torch.float64).float()


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.double() - y.double()).pow(2).flatten(1).mean(1).float()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.double() - y.double()).abs().flatten(1).mean(1).float()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """10 log10(range^2 / MSE) per image; identical images give 100 dB rather than infinity."""
    err = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / err.clamp_min(data_range**2 * 1e-10))).float()


def reconstruction_mse(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean squared error between inputs and their reconstructions, over all images and pixels."""
    return float(mse(inputs, outputs).mean())


def paired_scores(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Mean L1, PSNR and SSIM of outputs against their ground truth."""
    return {"l1": float(l1(fake, real).mean()), "psnr": float(psnr(fake, real).mean()),
            "ssim": float(ssim(fake, real).mean())}


# ---- structure preservation ---------------------------------------------------------------------------
def grayscale(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True) if x.shape[1] == 3 else x.mean(1, keepdim=True)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the grayscale image (N x 1 x H x W), Sobel kernels, edges replicated."""
    g = F.pad(grayscale(x.float()), (1, 1, 1, 1), mode="replicate")
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device)
    k = torch.stack([kx, kx.t()])[:, None]
    d = F.conv2d(g, k)
    return d.pow(2).sum(1, keepdim=True).sqrt()


def _match_size(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if a.shape[-2:] == like.shape[-2:]:
        return a
    return F.interpolate(a.float(), size=like.shape[-2:], mode="bilinear", align_corners=False, antialias=True)


def structure_ssim(inputs: torch.Tensor, outputs: torch.Tensor, mode: str = "edges") -> torch.Tensor:
    """How much of the input's layout survives in the output, per image (N,), 1 = all of it.

    "edges": SSIM between the Sobel edge maps, each scaled to [0, 1] by its own maximum, so that a change of
    colour, brightness or contrast alone keeps the score at 1 while moved, lost or new edges lower it.
    "lowpass": SSIM between grayscale images blurred and reduced 4x (coarse layout, insensitive to texture)."""
    outputs = outputs.float()
    inputs = _match_size(inputs.float(), outputs)
    if mode == "edges":
        ea, eb = sobel_magnitude(inputs), sobel_magnitude(outputs)
        ea = ea / ea.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
        eb = eb / eb.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
        return ssim(ea, eb, data_range=1.0)
    if mode == "lowpass":
        factor = 4 if min(outputs.shape[-2:]) >= 64 else 2

        def low(t):
            return F.avg_pool2d(grayscale(t), factor)

        return ssim(low(inputs), low(outputs), data_range=DATA_RANGE)
    raise ValueError(f"structure_ssim: mode is 'edges' or 'lowpass', not {mode!r}")


def input_match_rate(inputs: torch.Tensor, outputs: torch.Tensor, similarity=None, shifts: int = 7) -> float:
    """How often an output resembles its own input more than another input: for each output i and each shift
    r in 1..shifts, whether similarity(x_i, y_i) > similarity(x_(i+r mod N), y_i) (ties count a half).
    1.0: every output is told apart by its input; about 0.5: the outputs ignore their inputs (noise, one image
    for all, or speckle), however much they vary. `similarity(x, y) -> (N,)` defaults to the coarse layout
    (structure_ssim in "lowpass" mode)."""
    sim = similarity or (lambda a, b: structure_ssim(a, b, mode="lowpass"))
    n = len(inputs)
    if n < 2:
        return float("nan")
    own = sim(inputs, outputs)
    wins = []
    for r in range(1, min(shifts, n - 1) + 1):
        other = sim(torch.roll(inputs, r, dims=0), outputs)
        wins.append((own > other).float() + 0.5 * (own == other).float())
    return float(torch.stack(wins).mean())


# ---- diversity ---------------------------------------------------------------------------------------
def _pairs(k: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(k), 2))


def pixel_diversity(outputs: torch.Tensor) -> torch.Tensor:
    """outputs: N x K x C x H x W (K outputs per input, different z) -> per input (N,), the mean over the
    K(K-1)/2 pairs of the mean absolute pixel difference (in [-1, 1] units; 0 when all outputs are equal)."""
    if outputs.ndim != 5 or outputs.shape[1] < 2:
        raise ValueError("pixel_diversity wants N x K x C x H x W with K >= 2")
    o = outputs.double()
    d = [(o[:, i] - o[:, j]).abs().flatten(1).mean(1) for i, j in _pairs(o.shape[1])]
    return torch.stack(d, 1).mean(1).float()


def feature_diversity(features: torch.Tensor) -> torch.Tensor:
    """features: N x K x D -> per input (N,), the mean Euclidean distance over pairs of outputs."""
    if features.ndim != 3 or features.shape[1] < 2:
        raise ValueError("feature_diversity wants N x K x D with K >= 2")
    f = torch.as_tensor(features).double()
    d = [(f[:, i] - f[:, j]).norm(dim=1) for i, j in _pairs(f.shape[1])]
    return torch.stack(d, 1).mean(1).float()


def load_lpips(device: str | torch.device = "cpu"):
    """The LPIPS (AlexNet) distance when the `lpips` package is installed and torchvision's AlexNet weights are
    already in the torch hub cache (nothing is downloaded); else None."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return None
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(checkpoints.glob("alexnet-*.pth")):
        return None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lpips.LPIPS(net="alex", verbose=False).to(device).eval()
    except Exception:  # noqa: BLE001 - an optional extra; any failure means "not available"
        return None


@torch.no_grad()
def lpips_diversity(outputs: torch.Tensor, model) -> torch.Tensor:
    """outputs: N x K x 3 x H x W in [-1, 1] -> per input (N,), mean LPIPS over pairs of outputs."""
    dev = next(model.parameters()).device
    d = [model(outputs[:, i].float().to(dev), outputs[:, j].float().to(dev)).flatten().cpu()
         for i, j in _pairs(outputs.shape[1])]
    return torch.stack(d, 1).mean(1)


"""Loss functions shared by methods: adversarial objectives, gradient penalty, cycle and structure terms.

Everything takes float tensors (images in [-1, 1] unless a data range is given) and returns a scalar.
Nothing here knows about a method or a network's structure, so any method can use it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .config import ConfigError

GAN_LOSSES = ("lsgan", "vanilla", "hinge", "wgan-gp")

# Wang, Simoncelli and Bovik (2003), "Multi-scale structural similarity for image quality assessment".
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# ---- adversarial -------------------------------------------------------------------------------------
def check_gan_loss(kind: str) -> str:
    if kind not in GAN_LOSSES:
        raise ConfigError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")
    return kind


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss for one real and one fake batch of logits (any shape, e.g. patch maps).

    lsgan: (D(x) - 1)^2 + D(G(z))^2; vanilla: the logistic loss (binary cross-entropy on the logits, as the
    reference implementations of pix2pix, CycleGAN and CUT compute it); hinge: relu(1 - D(x)) + relu(1 + D(G(z)));
    wgan-gp: D(G(z)) - D(x) (add `gradient_penalty` yourself). Every term is a mean over all elements.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "lsgan":
        return (real_logits - 1).square().mean() + fake_logits.square().mean()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss for the discriminator's logits on generated images.

    lsgan: (D(G(z)) - 1)^2; vanilla: the non-saturating logistic loss; hinge and wgan-gp: -D(G(z)).
    """
    fake_logits = fake_logits.float()
    if kind == "lsgan":
        return (fake_logits - 1).square().mean()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def interpolate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Random points on the lines between real and fake samples (one uniform factor per sample, drawn
    from torch's global RNG), ready for `gradient_penalty`."""
    alpha = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device)
    return (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)


def gradient_penalty(x_hat: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): mean over samples of (||d logits / d x_hat||_2 - 1)^2.

    `x_hat` must require grad (see `interpolate`) and `logits` be computed from it; the penalty keeps
    the graph, so it can be added to the discriminator's loss."""
    (grad,) = torch.autograd.grad(logits.float().sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).square().sum(1).add(1e-12).sqrt()
    return (norm - 1).square().mean()


def penalized_logits(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor):
    """(gradient penalty, logits on the interpolates) for a discriminator callable `d`."""
    x_hat = interpolate(real, fake)
    logits = d(x_hat)
    return gradient_penalty(x_hat, logits), logits


# ---- reconstruction ----------------------------------------------------------------------------------
def channel_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The colour cycle-consistency loss of AsymmetricGAN: the L1 distance computed separately for each
    colour channel (mean over batch and pixels), summed over the channels. For RGB it is 3 x the plain
    L1 mean; it is written per channel to match the paper's definition and to allow other channel counts."""
    x, y = x.float(), y.float()
    return sum((x[:, c] - y[:, c]).abs().mean() for c in range(x.shape[1]))


# ---- structural similarity ---------------------------------------------------------------------------
def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype: torch.dtype = torch.float32
                    ) -> torch.Tensor:
    """A normalized 1-D Gaussian of `size` taps."""
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma * sigma))
    return g / g.sum()


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every channel of N x C x H x W."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float, k1: float, k2: float):
    """(luminance x contrast-structure, contrast-structure), each averaged over pixels: N x C."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    sxx = _filter(x * x, window) - mu_x * mu_x
    syy = _filter(y * y, window) - mu_y * mu_y
    sxy = _filter(x * y, window) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    lum_map = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return (lum_map * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def _window_for(side: int, window_size: int) -> int:
    size = min(window_size, side)
    return size if size % 2 else size - 1


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, reduction: str = "mean", dtype: torch.dtype = torch.float32
         ) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of two N x C x H x W batches, Gaussian window, no padding (the valid
    region); an image smaller than the window gets the largest odd window that fits. `data_range` is max - min
    of the pixel values (2 for [-1, 1] images). Computed in `dtype` (fp32; the image scores use float64), the
    result in it too. reduction "none": one value per image (N,), channels averaged."""
    with torch.autocast(x.device.type, enabled=False):
        x, y = x.to(dtype), y.to(dtype)
        window = gaussian_window(_window_for(min(x.shape[-2:]), window_size), sigma, x.device, dtype)
        per_channel = _ssim_terms(x, y, window, data_range, k1, k2)[0]
    return per_channel.mean(1) if reduction == "none" else per_channel.mean()


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS, k1: float = 0.01, k2: float = 0.03,
            reduction: str = "mean") -> torch.Tensor:
    """Multi-scale SSIM (Wang, Simoncelli and Bovik 2003) of two N x C x H x W batches.

    MS-SSIM = prod_{j<M} cs_j^{w_j} * (l_M cs_M)^{w_M}, per image and channel, then averaged over channels
    (and over the batch with reduction "mean"; "none" gives one value per image). Scales are 2x average-pooled.
    Small images: only the scales whose shorter side still holds the window are used, with their
    weights renormalized to sum to 1 (five scales need a side of at least 16 x window_size = 176 px);
    an image smaller than the window gets a window of its own side. Negative contrast-structure values
    are clamped to a small positive number so that fractional powers and their gradients stay finite.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ms_ssim wants two N x C x H x W batches of equal shape: {tuple(x.shape)}, {tuple(y.shape)}")
    with torch.autocast(x.device.type, enabled=False):
        x, y = x.float(), y.float()
        side = min(x.shape[-2:])
        win = _window_for(side, window_size)
        levels = 1
        while levels < len(weights) and side // 2**levels >= win:
            levels += 1
        w = torch.tensor(weights[:levels], dtype=torch.float32, device=x.device)
        w = w / w.sum()
        window = gaussian_window(win, sigma, x.device)
        values = []
        for level in range(levels):
            full, cs = _ssim_terms(x, y, window, data_range, k1, k2)
            values.append((full if level == levels - 1 else cs).clamp_min(1e-6))
            if level < levels - 1:
                x = F.avg_pool2d(x, 2)
                y = F.avg_pool2d(y, 2)
        stacked = torch.stack(values, dim=0)  # levels x N x C
        per_image = stacked.pow(w.view(-1, 1, 1)).prod(dim=0).mean(dim=1)
    if reduction == "none":
        return per_image
    return per_image.mean()


def ms_ssim_loss(x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    """1 - MS-SSIM: 0 for identical images."""
    return 1 - ms_ssim(x, y, **kwargs)


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, images: int, temperature: float = 0.07
                   ) -> torch.Tensor:
    """CUT's PatchNCE loss (Park et al. 2020) for one layer, averaged over patches.

    query, key: (images * P) x C L2-normalised features at the same P sampled locations of each image (query
    from the output, key from the input; keys are detached). For patch i the positive is key i, the negatives
    the keys of the other P - 1 locations of the same image: logits [q_i.k_i, q_i.k_j (j != i)] / temperature,
    cross-entropy with the positive as the class. As in the reference, the diagonal of the negatives is set to
    -10 (before the temperature) instead of being removed."""
    key = key.detach()
    dim = query.shape[1]
    q, k = query.float(), key.float()
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (images*P) x 1
    q, k = q.view(images, -1, dim), k.view(images, -1, dim)
    patches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(1, 2))  # images x P x P
    eye = torch.eye(patches, device=q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(eye, -10.0).view(-1, patches)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)

"""Scale presets of the paper's experiments: what their claims depend on, kept at the size that is trained.

The paper trains at 512 px with a 16x16x128 encoder output (the default) and 8x8x128 (the low-dimension
variant): 4.17% and 1.04% of the input's 512 * 512 * 3 values, 32x and 64x spatial downsampling, and
StyleGAN2's discriminator. Training the same networks at 32 or 64 px keeps none of that: 16x16x128 holds
10.7x a 32 px input's values. So:

- "cpu" (scale-true) keeps the shares and the downsampling factors at any size: the bottleneck is
  (size / 32)^2 x 128 and (size / 64)^2 x 128; where that resolution falls below 1x1 it stays 1x1 and the
  channels shrink to keep the share. The discriminator has StyleGAN2's widths relative to the image size
  (channel base 32768 * size / 512, max 512: at 32 px 64 channels at 32x32 and 512 at 4x4, as StyleGAN2's
  D has at 512x512 and 32x32). The generator keeps the method's narrow CPU widths: at StyleGAN2's relative
  widths it is 27M parameters and a step costs 2.7x as much (docs/experiments.md has the measurement).
- "paper": the literal setting (512 px, 16x16x128 and 8x8x128, StyleGAN2's widths), for GPUs.
- "custom": neither; the bottleneck is `model.bottleneck_res` as given (16 or 8) with narrow networks, the
  setting of the earlier runs and of the tests.
"""

from __future__ import annotations

from ..methods.adversarial import PAPER_SIZE

PAPER_BOTTLENECKS = {"default": (16, 128), "low": (8, 128)}  # (resolution, channels) at 512 px
SCALES = ("cpu", "paper", "custom")
CPU_SIZE = 64  # the size the scale-true preset is documented at


def share(size: int, res: int, channels: int) -> float:
    """The bottleneck's values as a fraction of the RGB input's."""
    return res * res * channels / (3 * size * size)


def scale_true_bottleneck(size: int, variant: str = "default") -> tuple[int, int]:
    """(resolution, channels) holding the paper's share of a size x size input, for 'default' or 'low'."""
    if variant not in PAPER_BOTTLENECKS:
        raise ValueError(f"bottleneck variant is one of {sorted(PAPER_BOTTLENECKS)}, not {variant!r}")
    if size < 1 or size & (size - 1):
        raise ValueError(f"the scale-true preset needs a power-of-two image size, not {size}")
    res0, ch0 = PAPER_BOTTLENECKS[variant]
    exact = res0 * size / PAPER_SIZE  # the paper's downsampling factor at this size
    if exact >= 1:
        return int(exact), ch0
    return 1, max(1, round(ch0 * exact * exact))  # below 1x1: fewer channels, the same share


def paper_share(variant: str = "default") -> float:
    res, ch = PAPER_BOTTLENECKS[variant]
    return share(PAPER_SIZE, res, ch)


def preset_overrides(scale: str, size: int, variant: str = "default") -> dict[str, object]:
    """model.* settings of a scale preset for one bottleneck variant (size: the trained size)."""
    if scale == "cpu":
        res, ch = scale_true_bottleneck(size, variant)
        return {"bottleneck_res": res, "bottleneck_channels": ch, "d_channel_base": max(32768 * size // PAPER_SIZE, 1),
                "d_channel_max": 512, "r1_gamma": 0.1}
    if scale == "paper":
        res, ch = PAPER_BOTTLENECKS[variant]
        return {"bottleneck_res": res, "bottleneck_channels": ch, "widths": "stylegan2"}
    if scale == "custom":
        return {"bottleneck_res": PAPER_BOTTLENECKS[variant][0], "g_channel_max": 64, "d_channel_max": 64,
                "r1_gamma": 0.1}
    raise ValueError(f"--scale is one of {', '.join(SCALES)}, not {scale!r}")


def describe(size: int, res: int, channels: int) -> str:
    """'2x2x128 (4.17% of the 64 px input's values)'."""
    return f"{res}x{res}x{channels} ({share(size, res, channels):.2%} of the {size} px input's values)"

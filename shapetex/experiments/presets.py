"""Scale presets of the paper's experiments: what their claims depend on, kept at the size that is trained.

The paper trains at 512 px with a 16x16x128 encoder output (the default) and 8x8x128 (the low-dimension
variant): 4.17% and 1.04% of the input's 512 * 512 * 3 values, the variants a factor 2 apart in resolution
with equal channels, and StyleGAN2's discriminator. Training the same networks at 32 or 64 px keeps none of
that: 16x16x128 holds 10.7x a 32 px input's values. So:

- "cpu" (scale-true) keeps the two shares and the variants' relation (resolution halved, channels equal):
  the default bottleneck is (size / 4)^2 x c and the low one (size / 8)^2 x c, with c chosen for the paper's
  share (c = 2 at every size). Keeping the paper's 128 channels instead would force a 1x1 (32 px) or 2x2
  (64 px) bottleneck; at 32 px that collapsed to plain background in all six settings tried
  (docs/experiments.md has the table), a 4x4 and an 8x8 one trained. The discriminator has StyleGAN2's widths
  relative to the image size (channel base 32768 * size / 512, max 512: at 32 px 64 channels at 32x32 and 512
  at 4x4, as StyleGAN2's D has at 512x512 and 32x32); R1 gamma 1.0, measured to keep the runs from collapsing
  (0.1 did not). The generator keeps the method's narrow CPU widths: at StyleGAN2's relative widths it is 27M
  parameters and a step costs 2.7x as much.
- "paper": the literal setting (512 px, 16x16x128 and 8x8x128, StyleGAN2's widths), for GPUs.
- "custom": neither; the bottleneck is 16x16x128 or 8x8x128 whatever the size, with narrow networks, the
  setting of the earlier runs.
"""

from ..config import ConfigError
from ..methods.adversarial import PAPER_SIZE

PAPER_BOTTLENECKS = {"default": (16, 128), "low": (8, 128)}  # (resolution, channels) at 512 px
SCALES = ("cpu", "paper", "custom")
CPU_SIZE = 64  # the size the scale-true preset is documented at


def share(size: int, res: int, channels: int) -> float:
    """The bottleneck's values as a fraction of the RGB input's."""
    return res * res * channels / (3 * size * size)


CPU_DOWNSAMPLING = {"default": 4, "low": 8}  # the variants' resolution: size / this


def scale_true_bottleneck(size: int, variant: str = "default") -> tuple[int, int]:
    """(resolution, channels) holding the paper's share of a size x size input, for 'default' or 'low'."""
    if variant not in PAPER_BOTTLENECKS:
        raise ValueError(f"bottleneck variant is one of {sorted(PAPER_BOTTLENECKS)}, not {variant!r}")
    if size < 8 or size & (size - 1):
        raise ConfigError(f"the scale-true preset needs a power-of-two image size of at least 8, not {size}")
    res = size // CPU_DOWNSAMPLING[variant]
    return res, max(1, round(paper_share(variant) * 3 * size * size / (res * res)))


def paper_share(variant: str = "default") -> float:
    res, ch = PAPER_BOTTLENECKS[variant]
    return share(PAPER_SIZE, res, ch)


def preset_overrides(scale: str, size: int, variant: str = "default") -> dict[str, object]:
    """model.* settings of a scale preset for one bottleneck variant (size: the trained size)."""
    if scale == "cpu":
        res, ch = scale_true_bottleneck(size, variant)
        return {"bottleneck_res": res, "bottleneck_channels": ch, "d_channel_base": max(32768 * size // PAPER_SIZE, 1),
                "d_channel_max": 512, "r1_gamma": 1.0}
    if scale == "paper":
        res, ch = PAPER_BOTTLENECKS[variant]
        return {"bottleneck_res": res, "bottleneck_channels": ch, "widths": "stylegan2"}
    if scale == "custom":
        return {"bottleneck_res": PAPER_BOTTLENECKS[variant][0], "g_channel_max": 64, "d_channel_max": 64,
                "r1_gamma": 0.1}
    raise ValueError(f"--scale is one of {', '.join(SCALES)}, not {scale!r}")


def describe(size: int, res: int, channels: int) -> str:
    """'8x8x2 (4.17% of the 32 px input's values)'."""
    return f"{res}x{res}x{channels} ({share(size, res, channels):.2%} of the {size} px input's values)"

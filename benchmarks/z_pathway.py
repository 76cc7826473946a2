"""Where does z stop mattering? Per decoder layer of a trained streamlined translator, the share of the
activations' variance that comes from z (the rest comes from the input).

    python benchmarks/z_pathway.py runs/quickstart [--inputs 32 --samples 8]

For N held-out built-in shapes under K z each (the noise inputs fixed, so only z differs), every styled conv's
output h(x, z) is split as var_total = var_over_x(mean_z h) + mean_x(var_over_z h); the printed share is the
second part over the total, averaged over channels and pixels. 0 means the layer ignores z, 1 that it ignores
the input. The learned noise and sinusoid strengths are printed too: they say which other sources the decoder kept.
"""

from __future__ import annotations

import argparse

import torch

from shapetex.api import Translator
from shapetex.data.builtin import builtin_images


def z_share(h: torch.Tensor) -> float:
    """h: N x K x ... (N inputs, K z). Share of the variance that is across z within an input."""
    within = h.var(dim=1, unbiased=False).mean()
    total = h.flatten(0, 1).var(dim=0, unbiased=False).mean()
    return float(within / total.clamp_min(1e-12))


@torch.no_grad()
def layer_z_shares(run: str, inputs: int = 32, samples: int = 8, seed: int = 0) -> list[tuple[str, float]]:
    t = Translator.load(run, device="cpu")
    g = t.method.G_ema if getattr(t.method, "G_ema", None) is not None else t.method.G
    x = builtin_images("shape-holdout", inputs, t.size, seed + 1, t.config.data.builtin_task).float() / 127.5 - 1
    z = torch.randn(samples, t.z_dim, generator=torch.Generator().manual_seed(seed))
    captured: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, name=name: captured.setdefault(name, []).append(out))
             for name, m in g.decoder.named_modules() if type(m).__name__ in ("StyledConv", "ToRGB")]
    outs = []
    for k in range(samples):  # the same noise inputs for every z: only z differs between the K outputs
        torch.manual_seed(seed)
        outs.append(g(x, z[k].expand(inputs, -1)))
    for h in hooks:
        h.remove()
    rows = [(name, z_share(torch.stack(hs, 1))) for name, hs in captured.items()]
    rows.append(("output", z_share(torch.stack(outs, 1))))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--inputs", type=int, default=32)
    p.add_argument("--samples", type=int, default=8)
    a = p.parse_args()
    print("| layer | share of variance from z |\n| --- | --- |")
    for name, share in layer_z_shares(a.run, a.inputs, a.samples):
        print(f"| {name} | {share:.3f} |")
    g = Translator.load(a.run, device="cpu").method.G
    noise = {n: float(m.strength) for n, m in g.decoder.named_modules() if type(m).__name__ == "NoiseInjection"}
    print("noise strengths:", ", ".join(f"{n.removesuffix('.noise')} {v:+.3f}" for n, v in noise.items()))
    if getattr(g.decoder, "fourier", None) is not None:
        print("sinusoid strengths:", [round(float(v), 3) for v in g.decoder.fourier_strength])


if __name__ == "__main__":
    main()

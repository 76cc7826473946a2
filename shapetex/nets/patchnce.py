"""CUT's patch sampler and projection heads (Park et al., ECCV 2020, arXiv 2007.15651; the reference's
PatchSampleF): from each tapped generator feature map, the features at sampled locations go through a
two-layer MLP head (Linear-ReLU-Linear, `units` wide) and are L2-normalised.

The reference creates its heads lazily on the first forward pass; here they are built from the known channel
counts of the tapped layers, so checkpoints and optimizers are plain from the start.
"""

from __future__ import annotations

import torch
from torch import nn


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (||x||_2 + eps) over the last dimension (the reference's Normalize(2))."""
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


def sample_locations(feat: torch.Tensor, count: int, ids: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """feat N x C x H x W -> (N*P x C features at P locations, the P flat location ids). The same locations for
    every image of the batch; `ids` None: P = min(count, H*W) locations drawn without replacement (torch's
    global RNG), else exactly those."""
    flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # N x HW x C
    if ids is None:
        ids = torch.randperm(flat.shape[1], device=feat.device)[:min(count, flat.shape[1])]
    return flat[:, ids, :].flatten(0, 1), ids


class PatchSampleMLP(nn.Module):
    """One MLP head per tapped layer: (feature maps, patch count[, ids]) -> (N*P x units L2-normalised per
    layer, the location ids used per layer). Pass the ids of one call (the keys') to another (the queries')
    to sample the very same locations."""

    def __init__(self, channels: list[int], units: int = 256):
        super().__init__()
        self.channels, self.units = list(channels), units
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units))
                                   for c in channels)

    def forward(self, feats: list[torch.Tensor], count: int, ids: list[torch.Tensor] | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(feats) != len(self.heads):
            raise ValueError(f"expected {len(self.heads)} feature maps, got {len(feats)}")
        out, used = [], []
        for i, (feat, head) in enumerate(zip(feats, self.heads)):
            x, layer_ids = sample_locations(feat, count, None if ids is None else ids[i])
            out.append(l2_normalize(head(x)))
            used.append(layer_ids)
        return out, used

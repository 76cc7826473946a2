"""What several test files build: a tiny run config and small TorchScript feature networks for the scores.
Imported as `from helpers import ...` (pytest puts tests/ on sys.path, as for reference_nets.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from shapetex.config import RunConfig


def tiny_config(out, size=32, budget=64, batch=8, **model) -> RunConfig:
    """The adversarial translator at its smallest: fast enough for a few real steps in a test."""
    cfg = RunConfig(method="adversarial", out=str(out))
    cfg.data.size = size
    cfg.data.builtin_count = 64
    cfg.train.batch = batch
    cfg.train.budget = budget
    cfg.train.log_every = batch * 2
    cfg.train.sample_every = 0
    cfg.train.checkpoint_every = 0
    cfg.train.monitor_every = 0
    cfg.model = {"g_channel_max": 32, "d_channel_max": 32, "z_dim": 16, "w_dim": 32, "mapping_layers": 1, **model}
    return cfg


def exact_config(out, budget=48) -> RunConfig:
    """tiny_config for tests that compare weights bit for bit across runs: one thread. With two, CPU kernels can
    round a reduction differently from one run to the next (measured: the last bit of 6 of D's 32 first-layer
    biases after one step, torch 2.14 on an AMD EPYC Zen 3), which is not what these tests are about."""
    cfg = tiny_config(out, budget=budget)
    cfg.train.threads = 1
    return cfg


def decodes(path: Path) -> bool:
    """Whether an image file decodes whole (a write cut short does not)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return True
    except OSError:
        return False


class StatsFeatures(nn.Module):
    """A feature network without weights: per-channel mean and standard deviation of each image."""

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def save_torchscript(net: nn.Module, path: Path) -> Path:
    """`net` scripted and saved to `path` (a --feature-net file); torch's FutureWarning about TorchScript
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    return path

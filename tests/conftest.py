import pytest
import torch

from shapetex.config import RunConfig


@pytest.fixture(autouse=True)
def _threads():
    # tests share a 2-core machine; one thread keeps them predictable
    torch.set_num_threads(1)


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

"""On an NVIDIA GPU: training in fp32 and bf16, and a GPU-trained run translating on the CPU (the GPU's forward
against the CPU's is tests/test_api.py::test_gpu_matches_cpu). Skipped without a GPU; `benchmarks/gpu.sh` runs
them (`pytest -m cuda`)."""

import json

import pytest
import torch
from helpers import tiny_config

from shapetex.api import Translator
from shapetex.train import Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _losses(run_dir, which: int) -> dict:
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[which])
    return {k: v for k, v in row.items() if k.startswith("loss")}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_gpu_run_trains_and_translates_on_the_cpu(tmp_path, precision):
    cfg = tiny_config(tmp_path / precision, budget=64)
    cfg.train.device, cfg.train.precision = "cuda", precision
    Trainer(cfg).run()
    for which in (0, -1):  # the first and the last logged steps
        losses = _losses(tmp_path / precision, which)
        assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    y = Translator.load(tmp_path / precision, device="cpu").translate_tensor(torch.rand(2, 3, 32, 32) * 2 - 1, 2)
    assert y.shape == (2, 2, 3, 32, 32) and torch.isfinite(y).all()


import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    # tests share a 2-core machine; one thread keeps them predictable
    torch.set_num_threads(1)


import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    # tests share a 2-core machine; one thread keeps them predictable
    torch.set_num_threads(1)



@pytest.fixture(autouse=True, scope="session")
def _no_native_bf16():
    # Translation picks bf16 where the CPU computes it natively (precision auto): tests compare outputs at fp32
    # tolerances, so in-process they see a CPU without it whatever machine runs them; tests of the choice itself
    # set the capability they need
    import shapetex.engine

    # (session scope: it must be in place before module-scoped fixtures load their translators)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shapetex.engine, "cpu_bf16_native", lambda: False)
        yield

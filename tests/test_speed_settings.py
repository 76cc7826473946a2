"""Speed settings keep the maths: fused optimizers, compiled networks with an eager path for double backward,
one-sync step skipping, device-tensor logs, and the bf16 capability check."""

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config
from torch import nn

from shapetex.engine import Engine, available_cores
from shapetex.methods import build_method
from shapetex.methods.adversarial import AdversarialTranslator
from shapetex.train import Trainer


def _trained_weights(tmp_path, name, fused, steps=3, channels_last=False):
    cfg = tiny_config(tmp_path / name, budget=8 * steps)
    cfg.train.fused_optimizers = fused
    cfg.train.channels_last = channels_last
    tr = Trainer(cfg)
    tr.run()
    return tr, {k: v.detach().clone() for k, v in tr.method.G.state_dict().items()}


def test_fused_adam_takes_the_same_steps_as_the_plain_loop(tmp_path):
    fused, w_fused = _trained_weights(tmp_path, "fused", True)
    plain, w_plain = _trained_weights(tmp_path, "plain", False)
    assert all(g["fused"] for o in fused.engine.optimizers.values() for g in o.param_groups)
    assert not any(g.get("fused") for o in plain.engine.optimizers.values() for g in o.param_groups)
    for k in w_fused:
        torch.testing.assert_close(w_fused[k], w_plain[k], rtol=1e-4, atol=1e-5, msg=k)
    fresh = build_method(tiny_config(tmp_path / "fresh")).G.state_dict()
    moved = max((w_fused[k] - fresh[k]).abs().max().item() for k in fresh)
    assert moved > 1e-3  # the weights did move: the comparison above is not between two untrained nets


def _gan_gradients(tmp_path, name, channels_last):
    """G's gradients of the adversarial loss for one fixed batch, through the engine's own input path."""
    cfg = tiny_config(tmp_path / name)
    cfg.train.channels_last = channels_last
    tr = Trainer(cfg)
    e, G = tr.engine, tr.method.G
    gen = torch.Generator().manual_seed(1)
    x = e.prepare_images(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=gen))
    z = torch.randn(4, 16, generator=gen)
    F.softplus(-e.net("D")(e.net("G")(x, z))).mean().backward()
    return tr, x, {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}


def test_channels_last_computes_the_same_gradients_as_nchw(tmp_path):
    nhwc, x, g_nhwc = _gan_gradients(tmp_path, "nhwc", True)
    nchw, _, g_nchw = _gan_gradients(tmp_path, "nchw", False)
    conv = next(v for v in nhwc.method.G.state_dict().values() if v.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)  # the setting did change the layout
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert g_nhwc.keys() == g_nchw.keys() and len(g_nchw) > 5
    # Gradients, not weights after Adam steps: Adam divides by the gradient's own scale, so the NHWC kernels'
    # other summation order moved near-zero-gradient weights by a fraction of a step on some CPUs. A real
    # difference in the maths (a permuted channel, a wrong stride) changes gradients by O(their size).
    for k in g_nchw:
        scale = g_nchw[k].abs().max().item()
        torch.testing.assert_close(g_nhwc[k], g_nchw[k], rtol=1e-3, atol=1e-4 * scale, msg=k)


def test_fusing_keeps_hyperparameters_and_leaves_stepped_optimizers_alone(tmp_path):
    cfg = tiny_config(tmp_path / "p2p", size=32)
    cfg.method = "pix2pix"
    cfg.model = {"g_channels": 8, "d_channels": 8}
    method = build_method(cfg)
    method.setup_training()
    e = method.engine
    before = {n: {k: v for k, v in o.param_groups[0].items() if k not in ("params", "fused", "foreach")}
              for n, o in e.optimizers.items()}
    # one step of D first: a stepped optimizer keeps its state and stays as it is
    loss = method.D(torch.randn(1, 6, 32, 32)).mean()
    loss.backward()
    e.optimizers["D"].step()
    d_opt = e.optimizers["D"]
    assert e.fuse_optimizers() == ["G"]
    assert e.optimizers["D"] is d_opt
    g = e.optimizers["G"].param_groups[0]
    assert g["fused"] and {k: v for k, v in g.items() if k not in ("params", "fused", "foreach")} == before["G"]
    assert [id(p) for p in g["params"]] == [id(p) for p in method.G.parameters()]


def test_non_finite_gradient_skips_a_fused_step(tmp_path):
    cfg = tiny_config(tmp_path / "skip")
    tr = Trainer(cfg)
    e, G = tr.engine, tr.method.G
    before = [p.detach().clone() for p in G.parameters()]
    with e.phase("G"):
        out = e.net("G")(torch.randn(2, 3, 32, 32), torch.randn(2, 16))
        loss = out.mean() * float("nan")  # finite nowhere: every gradient is nan
        assert e.step(loss, "G") is False
    assert e.skipped_steps == 1 and e.consecutive_bad == 1
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))
    with e.phase("G"):
        loss = e.net("G")(torch.randn(2, 3, 32, 32), torch.randn(2, 16)).square().mean()
        assert e.step(loss, "G") is True
    assert e.consecutive_bad == 0 and any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))


class _Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        return self.c2(F.softplus(self.c1(x))).mean(dim=(1, 2, 3))


def _r1_grads(engine, net, x):
    """One R1-style step: the squared input gradient, differentiated again for the weights."""
    engine.register({"D": net})
    with engine.phase("D"):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(engine.net("D")(x).sum(), x, create_graph=True)
        g.square().sum().backward()
        plain = engine.net("D")(x.detach()).mean()  # an ordinary call: input without gradients
    # a bias after the last nonlinearity does not change the input gradient: its grad stays None
    return [None if p.grad is None else p.grad.clone() for p in net.parameters()], plain.detach()


def test_compiled_network_runs_gradient_penalties_eagerly():
    torch.manual_seed(0)
    net = _Critic()
    x = torch.randn(2, 3, 8, 8)
    twin = _Critic()
    twin.load_state_dict(net.state_dict())
    compiled = Engine(compile=True, compile_backend="aot_eager")
    grads, out = _r1_grads(compiled, net, x)
    assert compiled.compiled == {"D"}
    reference, ref_out = _r1_grads(Engine(), twin, x)
    assert sum(g is not None for g in grads) >= 3
    for a, b in zip(grads, reference):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(out, ref_out)
    # without the engine's eager path the same double backward fails: the test above exercises something real
    x = x.detach().requires_grad_(True)
    with pytest.raises(RuntimeError, match="double backward"):
        (g,) = torch.autograd.grad(compiled.nets["D"](x).sum(), x, create_graph=True)
        g.square().sum().backward()


def test_trainer_averages_device_tensor_logs_and_logs_non_finite_ones_as_null(tmp_path):
    class TensorLogs(AdversarialTranslator):
        calls = 0

        def train_step(self, batch, step):
            logs = super().train_step(batch, step)
            TensorLogs.calls += 1
            bad = float("inf") if TensorLogs.calls == 1 else 2.0
            return {"loss_g": logs["loss_g"], "odd": torch.tensor(bad), "plain": 1.0}

    cfg = tiny_config(tmp_path / "logs", budget=16)  # 2 steps, one log line (log_every = 16)
    tr = Trainer(cfg)
    tr.method.__class__ = TensorLogs  # the same networks and optimizers; train_step returns tensors
    tr.run()
    rows = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 2
    assert rows[0]["odd"] is None  # an inf step makes the window's mean inf: null, never a plausible number
    assert rows[0]["plain"] == pytest.approx(1.0) and isinstance(rows[0]["loss_g"], float)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_cpu_warns_exactly_when_the_cpu_lacks_native_bf16(caplog, monkeypatch, native):
    import shapetex.engine

    monkeypatch.setattr(shapetex.engine, "cpu_bf16_native", lambda: native)
    with caplog.at_level(logging.WARNING, logger="shapetex.engine"):
        Engine(torch.device("cpu"), "bf16")
    warned = any("native bf16" in r.getMessage() for r in caplog.records)
    assert warned == (not native)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shapetex.engine"):
        Engine(torch.device("cpu"), "fp32")
    assert not caplog.records


def test_available_cores_respects_the_affinity_mask():
    import os

    n = available_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))

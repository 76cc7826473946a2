import json

import torch
import torch.nn.functional as F
from helpers import tiny_config

from shapetex.data.builtin import builtin_images
from shapetex.methods import build_method
from shapetex.train import Trainer


def _batch(trainer, step=0):
    raw = trainer.source.batch(step)
    return {k: trainer.engine.prepare_images(v) for k, v in raw.items()}


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_generator_gradient_is_zero_when_discriminator_is_constant(tmp_path):
    """No reconstruction, cycle or identity term: with a D that ignores its input, G learns nothing."""
    tr = Trainer(tiny_config(tmp_path / "run"))
    m = tr.method
    with torch.no_grad():
        m.D.out.weight.zero_()  # D(x) = bias: constant
    before = _params(m.G)
    logs = m.train_step(_batch(tr), step=1)
    assert torch.isfinite(torch.as_tensor(logs["loss_g"]))
    for p0, p1 in zip(before, m.G.parameters()):
        torch.testing.assert_close(p0, p1, rtol=0, atol=0)


def test_generator_learns_when_discriminator_is_not_constant(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run"))
    before = _params(tr.method.G)
    tr.method.train_step(_batch(tr), step=1)
    changed = sum(not torch.equal(p0, p1) for p0, p1 in zip(before, tr.method.G.parameters()))
    assert changed > len(before) // 2


def test_generator_loss_is_nonsaturating_logistic(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run"))
    m = tr.method
    b = _batch(tr)
    torch.manual_seed(5)
    logs = m.train_step(b, step=1)
    torch.manual_seed(5)
    z = torch.randn(b["shape"].shape[0], m.z_dim)
    # recompute G's loss with the same z from a fresh trainer (same seed -> same initial weights)
    tr2 = Trainer(tiny_config(tmp_path / "run2"))
    with torch.no_grad():
        expected = F.softplus(-tr2.method.D(tr2.method.G(b["shape"], z))).mean()
    assert abs(logs["loss_g"] - expected.item()) < 1e-5


def test_r1_penalty_is_squared_input_gradient(tmp_path):
    """For a linear critic D(x) = <w, x>, grad_x D = w, so the penalty is ||w||^2 for every sample."""
    m = build_method(tiny_config(tmp_path / "run"))
    w = torch.randn(3, 8, 8)
    linear = torch.nn.Module()
    linear.forward = lambda x: (x * w).flatten(1).sum(1)
    m.engine.nets["D"] = linear
    penalty, logits = m.r1_penalty(torch.randn(4, 3, 8, 8))
    torch.testing.assert_close(penalty, w.square().sum())
    assert logits.shape == (4,)


def test_r1_is_lazy_and_strengthens_with_gamma(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run", r1_interval=4, r1_gamma=100.0))
    m = tr.method
    with_r1 = [("r1" in m.train_step(_batch(tr, s), step=s)) for s in range(8)]
    assert with_r1 == [True, False, False, False, True, False, False, False]
    # a large gamma flattens D around the reals: the penalty falls after repeated R1 steps
    real = _batch(tr, 0)["texture"]
    start = m.r1_penalty(real)[0].item()
    for _ in range(10):
        m.r1_step(real)
    assert m.r1_penalty(real)[0].item() < start * 0.5


def test_ema_follows_the_generator_with_the_specified_beta(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run"))
    m = tr.method
    old = _params(m.G_ema)
    with torch.no_grad():
        for p in m.G.parameters():
            p.add_(1.0)
    m.update_ema(0.75)
    for p_old, p_ema, p in zip(old, m.G_ema.parameters(), m.G.parameters()):
        torch.testing.assert_close(p_ema, 0.75 * p_old + 0.25 * p)
    # beta: half-life of ema_kimg thousand images, ramped up to a fraction of the images seen
    s = m.settings
    assert abs(m.ema_beta(10**9, 8) - 0.5 ** (8 / (s.ema_kimg * 1000))) < 1e-12
    assert abs(m.ema_beta(1000, 8) - 0.5 ** (8 / (1000 * s.ema_rampup))) < 1e-12
    assert m.ema_beta(1000, 8) < m.ema_beta(10**6, 8)


def test_translation_uses_the_ema_generator(tmp_path):
    tr = Trainer(tiny_config(tmp_path / "run"))
    m = tr.method
    x = builtin_images("shape-holdout", 2, 32).float() / 127.5 - 1
    z = torch.randn(2, m.z_dim)
    torch.manual_seed(0)
    a = m.translate(x, z)
    with torch.no_grad():
        for p in m.G.parameters():
            p.add_(0.5)
    torch.manual_seed(0)
    torch.testing.assert_close(m.translate(x, z), a)  # G changed, G_ema did not


def _d_inputs_during_step(tr, step):
    """Every batch D saw during one train_step, with the step's real (texture) batch."""
    seen = []
    hook = tr.method.D.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    batch = _batch(tr)
    try:
        tr.method.train_step(batch, step=step)
    finally:
        hook.remove()
    return seen, batch["texture"]


def _is_real(rows, real):
    return [any(torch.equal(r, q) for q in real) for r in rows]


def test_discriminator_never_sees_fakes_and_reals_in_one_call(tmp_path):
    """The minibatch-std layer groups consecutive samples: a call on [fake; real] with halves of 2 (or
    any half not a multiple of the group) would put fakes and reals in one group. Every batch size,
    including R1 steps, must give each D call only fakes or only reals."""
    for batch in (1, 2, 3, 6):
        tr = Trainer(tiny_config(tmp_path / f"run{batch}", batch=batch))
        for step in (1, tr.method.settings.r1_interval):  # a plain step and a lazy-R1 step
            seen, real = _d_inputs_during_step(tr, step)
            assert seen
            for inputs in seen:
                flags = _is_real(inputs, real)
                assert all(flags) or not any(flags), f"batch {batch}: D saw {flags} (True = real) in one call"


def test_r1_interval_zero_trains_with_r1_off(tmp_path):
    cfg = tiny_config(tmp_path / "run", budget=32, r1_interval=0)
    tr = Trainer(cfg)
    opt = tr.method.make_optimizers()["D"]
    assert opt.param_groups[0]["betas"] == (0.0, 0.99)  # no lazy-regularization adjustment
    tr.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows and not any("r1" in r for r in rows)


def test_style_mixing_setting_mixes_in_the_generator_phase(tmp_path):
    calls = []
    for prob in (0.0, 1.0):
        tr = Trainer(tiny_config(tmp_path / f"run{prob}", style_mixing=prob))
        record = lambda m, a, kw, prob=prob: calls.append((prob, kw))  # noqa: E731
        hook = tr.method.G.register_forward_pre_hook(record, with_kwargs=True)
        batch = {"shape": torch.rand(4, 3, 32, 32) * 2 - 1, "texture": torch.rand(4, 3, 32, 32) * 2 - 1}
        tr.method.train_step(batch, 1)
        hook.remove()
    off, on = [kw for p, kw in calls if p == 0.0], [kw for p, kw in calls if p == 1.0]
    assert off and all("mix_z" not in kw for kw in off)
    assert on and all(1 <= kw["mix_from"] < tr.method.G.decoder.num_ws for kw in on)


def test_every_hook_the_loop_calls_is_declared_on_method():
    """The loop calls hooks, never hasattr/getattr on a method, and never names a method's log keys."""
    from pathlib import Path

    from shapetex.methods import METHODS
    from shapetex.methods.base import Method

    for hook in ("monitors", "summary", "sample_columns", "ema_beta", "flip_together"):
        assert hasattr(Method, hook), hook
        for cls in METHODS.values():
            assert hasattr(cls, hook)
    loop = (Path(__file__).parent.parent / "shapetex" / "train.py").read_text()
    assert "hasattr(self.method" not in loop and "getattr(self.method" not in loop
    assert "recon_mse" not in loop and "d_accuracy" not in loop

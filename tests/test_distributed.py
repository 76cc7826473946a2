"""Real multi-process training: torchrun starts 2 processes (gloo on CPU) that train every method for a few
steps through the real Trainer. The ranks must hold identical weights after every step, match a
single-process computation on the same global batch, leave every file to rank 0, and write checkpoints
that a single process resumes.

The processes are launched once for the module (the launch, not the training, is what costs time); this
file is also the script they run (see `worker` at the bottom).

Why the adversarial comparison needs care: every process seeds its step's randomness (z, noise inputs) from
(seed, step, rank), so a 2 x 4 run draws different z than a 1 x 8 run, and no single-process run of the
method can reproduce them. The reference is therefore the step computed by hand in one process on the
global batch of 8, with the z and noise each rank drew (re-drawn from the same per-rank seeds). The
StyleGAN2 discriminator's minibatch-std layer pools over groups of consecutive samples within a call, so
the groups must not straddle ranks: with mbstd_group 4 = the per-process batch, every group in the
2 x 4 run (a rank's 4 fakes, its 4 reals) is also a group of the reference's one call on
[fakes of rank 0, fakes of rank 1, reals of rank 0, reals of rank 1]. CycleGAN's step is a
deterministic function of the batch (instance norm, no noise; the image pool returns its inputs
while it fills), so there the reference is simply a 1-process Trainer run with the same global batch.
One exception: a convolution's bias right before an instance norm is cancelled by the norm, so its
gradient is zero up to rounding, and Adam (which divides by the gradient's own size) turns that rounding
noise into full-size steps of either sign. Such biases cannot change any output; they are compared
through the networks' outputs instead of one by one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config
from torch import nn

from shapetex.config import RunConfig
from shapetex.methods import METHODS

STEPS = 3
BATCH = 8  # global; 4 per process


def configs(root: Path) -> dict[str, RunConfig]:
    """Tiny runs of every method on the built-in data; flips off so a batch is a pure function of the step."""
    out = {}
    adv = tiny_config(root / "adversarial", batch=BATCH, budget=BATCH * STEPS, r1_interval=2, mbstd_group=4)
    # Adam's first update is lr * g / (|g| + eps): on the colours data one D weight's gradient is near eps, where
    # the two summation orders' rounding moves its update by 6e-5 (of 9,216 weights, the only one past 1e-5)
    adv.data.builtin_task = "stripes"
    out["adversarial"] = adv
    ae = tiny_config(root / "autoencoder", batch=BATCH, budget=BATCH * 2)
    ae.method = "autoencoder"
    out["autoencoder"] = ae
    tiny_cycle = dict(t_width=4, t_blocks=1, r_blocks=1, d_width=4, d_layers=2, sample_rows=2)
    for name, model, steps in (("cyclegan", tiny_cycle, STEPS),
                               ("asymmetric", {**tiny_cycle, "ssim_weight": 0.0}, 2),
                               ("pix2pix", dict(g_channels=4, d_channels=4, d_layers=2), 2),
                               ("cut", dict(width=4, blocks=1, d_width=4, d_layers=2, num_patches=8, nce_units=8,
                                            sample_rows=2), 2)):
        cfg = RunConfig(method=name, out=str(root / name))
        cfg.data.size, cfg.data.builtin_count = 16, 32
        cfg.train.batch, cfg.train.budget = BATCH, BATCH * steps
        cfg.train.log_every, cfg.train.sample_every, cfg.train.monitor_every = BATCH, 0, 0
        cfg.model = model
        out[name] = cfg
    for cfg in out.values():
        cfg.data.flip = False
        cfg.train.device, cfg.train.threads, cfg.train.checkpoint_every = "cpu", 1, 0
    return {k: v for k, v in out.items() if k in METHODS}


def parameters(method) -> dict[str, torch.Tensor]:
    """Every trained and EMA parameter (buffers such as the image pool or batch-norm statistics are
    per process by design)."""
    return {f"{n}.{k}": v.detach().clone() for n, net in method.networks().items() if n != "pools"
            for k, v in net.named_parameters()}


def normalised_away(method) -> set[str]:
    """Parameter names of convolution biases directly followed by an instance norm."""
    out = set()
    for n, net in method.networks().items():
        for prefix, mod in net.named_modules():
            if isinstance(mod, nn.Sequential):
                kids = list(mod.named_children())
                for (name, a), (_, b) in zip(kids, kids[1:]):
                    if isinstance(a, nn.Conv2d | nn.ConvTranspose2d) and a.bias is not None and \
                            isinstance(b, nn.InstanceNorm2d):
                        out.add(".".join(x for x in (n, prefix, name, "bias") if x))
    return out


def assert_same_cyclegan(method, weights: dict[str, torch.Tensor], what: str, start: dict[str, torch.Tensor],
                         steps: int) -> None:
    """`method`'s parameters match `weights` (but for biases an instance norm cancels), and so do the outputs
    of the generators and discriminators when they carry `weights`.

    After the first step every element agrees to float rounding. Later, Adam amplifies rounding: it divides
    each gradient by its running RMS, so an element whose gradient is near zero steps by up to about lr
    whatever that gradient's rounding, and a sum over 2 processes rounds differently from one over 1. On an
    AVX-512 CPU (session 11's Zen 4) 6 of the elements differed by 2e-5 after step 2 and 74 by up to 1.3e-4
    after step 3, which moved outputs by up to 6.5e-4. So from step 2 on the test compares what training did:
    the two runs' updates since the shared start differ by at most 5% of their size (0.8% measured at step
    3). Gradients that were not averaged, or a wrong split of the batch, change the update itself."""
    skip = normalised_away(method)
    assert len(skip) >= 4
    mine = parameters(method)
    keys = sorted(mine.keys() - skip)
    if steps == 1:
        for key in keys:
            torch.testing.assert_close(weights[key], mine[key], rtol=1e-4, atol=1e-5, msg=f"{what}: {key}")
    a, b, s0 = (torch.cat([w[k].flatten() for k in keys]) for w in (weights, mine, start))
    moved = (b - s0).norm()
    assert moved > 0, f"{what}: training did not move the weights"
    off = float((a - b).norm() / moved)
    assert off <= 0.05, f"{what}: the 2-process update differs from the 1-process one by {off:.1%} of its size"
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if steps == 1 else {"rtol": 1e-2, "atol": 5e-3}
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        want = [*method.G(a, b, cycle=True, identity=True).values(), *method.D(a, b)]
        saved = {k: v.clone() for k, v in mine.items()}
        for k, p in [(f"{n}.{k}", p) for n in ("G", "D") for k, p in getattr(method, n).named_parameters()]:
            p.copy_(weights[k])
        got = [*method.G(a, b, cycle=True, identity=True).values(), *method.D(a, b)]
        for k, p in [(f"{n}.{k}", p) for n in ("G", "D") for k, p in getattr(method, n).named_parameters()]:
            p.copy_(saved[k])
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, **tolerance, msg=f"{what}: outputs")


def steps_of(cfg: RunConfig) -> int:
    return cfg.train.budget // cfg.train.batch


# ---- the launch --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           "--worker", str(root)]
    proc = subprocess.run(cmd, cwd=Path(__file__).parent, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return root, proc.stdout


def dumped(root: Path, name: str, rank: int, step: int) -> dict[str, torch.Tensor]:
    return torch.load(root / "weights" / f"{name}-r{rank}-{step}.pt")


def test_every_method_trains_and_ranks_stay_identical(ddp):
    root, _ = ddp
    for name, cfg in configs(root).items():
        before = dumped(root, name, 0, 0)
        for k in range(1, steps_of(cfg) + 1):
            a, b = dumped(root, name, 0, k), dumped(root, name, 1, k)
            assert a.keys() == b.keys()
            for key in a:
                assert torch.equal(a[key], b[key]), f"{name} step {k}: {key} differs between ranks"
        moved = [key for key in before if not torch.equal(before[key], a[key])]
        assert len(moved) > len(before) // 2, f"{name}: training changed only {len(moved)} of {len(before)} tensors"


def test_only_rank0_writes_files(ddp):
    root, stdout = ddp
    for cfg in configs(root).values():
        main, other = Path(cfg.out + "-rank0"), Path(cfg.out + "-rank1")
        assert not other.exists(), f"rank 1 wrote {sorted(p.name for p in other.rglob('*'))}"
        assert (main / "config.json").exists() and (main / "metrics.jsonl").exists()
        ckpts = sorted(p.name for p in (main / "checkpoints").iterdir())
        assert len(ckpts) == steps_of(cfg) and not any(c.startswith(".tmp") for c in ckpts)
        rows = [json.loads(line) for line in (main / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["images"] == cfg.train.budget
    # every run() prints the global and per-process batch and the learning rates, on rank 0 only
    runs = sum(steps_of(c) for c in configs(root).values()) + 2  # and the two of the stop test
    assert stdout.count("global batch 8 (4 per process x 2)") == runs
    assert "lr G 0.0025" in stdout


def test_a_stop_request_on_one_rank_stops_all_after_the_same_step(ddp):
    root, stdout = ddp
    assert [(root / "weights" / f"stopped-r{r}.txt").read_text() for r in (0, 1)] == [str(BATCH)] * 2
    assert f"stopped on request at {BATCH} images" in stdout and not (root / "stopped-rank1").exists()
    assert (root / "stopped-rank0" / "checkpoints" / f"ckpt-{BATCH:010d}").is_dir()


def test_adversarial_with_r1_matches_one_process_on_the_global_batch(ddp):
    root, _ = ddp
    from shapetex.data import build_data
    from shapetex.train import Trainer, step_seed

    cfg = configs(root)["adversarial"]
    cfg.out = str(root / "reference")
    tr = Trainer(cfg)  # one process: the same initial weights as the ranks
    m, e, seed = tr.method, tr.engine, cfg.train.seed
    assert m.settings.mbstd_group == BATCH // 2 and m.settings.r1_interval == 2
    ranks = [build_data(cfg.data, "unpaired", BATCH, seed, rank=r, world=2)[0] for r in (0, 1)]
    r1_steps = 0
    for step in range(STEPS):
        x, real, fakes = [], [], []
        with e.phase("G"):
            for r, source in enumerate(ranks):
                b = source.batch(step)
                x.append(e.prepare_images(b["shape"]))
                real.append(e.prepare_images(b["texture"]))
                torch.manual_seed(step_seed(seed, step, r))  # what rank r drew: z, then the noise inputs
                z = torch.randn(BATCH // 2, m.z_dim)
                fakes.append(m.G(x[r], z))
            fake = torch.cat(fakes)
            e.step(F.softplus(-m.D(fake)).mean(), "G")
        with e.phase("D"):
            logits = m.D(torch.cat([fake.detach(), *real]))
            l_fake, l_real = logits.split(BATCH)
            e.step(F.softplus(l_fake).mean() + F.softplus(-l_real).mean(), "D")
            if step % m.settings.r1_interval == 0:
                m.r1_step(torch.cat(real))
                r1_steps += 1
        m.update_ema(m.ema_beta(BATCH * (step + 1), BATCH))
        got, want = dumped(root, "adversarial", 0, step + 1), parameters(m)
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=f"step {step + 1}: {key}")
    assert r1_steps == 2


def test_cyclegan_matches_a_one_process_run_with_the_same_global_batch(ddp):
    root, _ = ddp
    if "cyclegan" not in METHODS:
        pytest.skip("the cyclegan method is not registered")
    from shapetex.train import Trainer

    cfg = configs(root)["cyclegan"]
    cfg.out = str(root / "cyclegan-single")
    tr = Trainer(cfg)
    for k in range(1, STEPS + 1):
        tr.run(stop_after_images=BATCH * k)
        assert_same_cyclegan(tr.method, dumped(root, "cyclegan", 0, k), f"step {k}", dumped(root, "cyclegan", 0, 0), k)


def test_two_process_checkpoint_resumes_in_one_process(ddp):
    """CycleGAN, written by 2 processes after step 2, resumed by 1 process: its step 3 is the 2-process
    run's step 3. The adversarial run resumes too (its later steps draw other z, so only the state is
    compared)."""
    root, _ = ddp
    from shapetex.checkpoint import list_checkpoints
    from shapetex.train import Trainer

    for name in ("cyclegan", "adversarial"):
        if name not in METHODS:
            continue
        cfg = configs(root)[name]
        src, dst = Path(cfg.out + "-rank0"), root / f"{name}-resumed"
        dst.mkdir()
        shutil.copy(src / "config.json", dst / "config.json")
        ckpt = list_checkpoints(src)[1]  # the one written after step 2
        shutil.copytree(ckpt, dst / "checkpoints" / ckpt.name)
        cfg = RunConfig.load(dst / "config.json")
        cfg.out = str(dst)
        tr = Trainer(cfg, resume=True)
        assert (tr.step, tr.images_seen, tr.world) == (2, 2 * BATCH, 1)
        loaded = parameters(tr.method)
        for key, value in dumped(root, name, 1, 2).items():  # rank 1's copy: identical to what rank 0 saved
            assert torch.equal(loaded[key], value), key
        result = tr.run()
        assert result["images_seen"] == STEPS * BATCH
        if name == "cyclegan":
            assert_same_cyclegan(tr.method, dumped(root, name, 0, STEPS), "resumed", dumped(root, name, 0, 0), STEPS)


# ---- the command line ----------------------------------------------------------------------------------
def torchrun_train(run: Path, *args: str, nproc: int = 2, device: str = "cpu") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
           "shapetex", "train", "--method", "pix2pix", "--data", "builtin", "--size", "16", "--batch", "8",
           "--out", str(run), "--device", device, "--set", "data.builtin_count=16", "--set", "model.g_channels=4",
           "--set", "model.d_channels=4", "--set", "model.d_layers=2", "--set", "train.log_every=8",
           "--set", "train.sample_every=0", "--set", "train.monitor_every=0", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_command_line_then_resume_in_one_process(tmp_path):
    run = tmp_path / "run"
    first = torchrun_train(run, "--budget", "16")
    assert first.returncode == 0, first.stderr[-4000:]
    assert first.stdout.count("run folder:") == 1 and "global batch 8 (4 per process x 2)" in first.stdout
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    second = subprocess.run([sys.executable, "-m", "shapetex", "train", "--resume", str(run), "--budget", "32"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "at 16 images (step 2)" in second.stdout and "global batch 8 (8 per process x 1)" in second.stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["images"] for r in rows] == [8, 16, 24, 32]


def test_torchrun_adversarial_starts_without_the_grad_strides_warning(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "shapetex",
           "train", "--data", "builtin", "--size", "16", "--batch", "4", "--budget", "8", "--out", str(tmp_path / "r"),
           "--device", "cpu", "--set", "data.builtin_count=8", "--set", "model.g_channel_max=16",
           "--set", "model.d_channel_max=16", "--set", "model.bottleneck_res=8", "--set", "train.sample_every=0",
           "--set", "train.monitor_every=0"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    # D's last layer (weight 1 x C) used to get its gradient with strides (1, 1), and DDP warned at every start
    assert "Grad strides do not match" not in result.stderr


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (SyncBatchNorm runs on GPUs only)")
def test_batch_norm_is_synchronised_on_gpus(tmp_path):
    result = torchrun_train(tmp_path / "run", "--budget", "16", device="cuda")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "statistics are per process" not in result.stderr


# ---- what each process runs ----------------------------------------------------------------------------
def worker(root: Path) -> None:
    from shapetex.train import Trainer

    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    (root / "weights").mkdir(exist_ok=True)
    for name, cfg in configs(root).items():
        cfg.out += f"-rank{rank}"  # only rank 0 may write: rank 1's folder must never appear
        tr = Trainer(cfg)
        torch.save(parameters(tr.method), root / "weights" / f"{name}-r{rank}-0.pt")
        for k in range(1, steps_of(cfg) + 1):
            tr.run(stop_after_images=BATCH * k)  # one step; every run() ends with a checkpoint
            torch.save(parameters(tr.method), root / "weights" / f"{name}-r{rank}-{k}.pt")
    # a stop request (SIGTERM) that reaches one process only stops all of them after the same step
    cfg = configs(root)["autoencoder"]
    cfg.out, cfg.train.budget = str(root / f"stopped-rank{rank}"), 3 * BATCH
    tr = Trainer(cfg)
    tr.run(stop_after_images=BATCH)
    tr._stop_requested = rank == 1
    (root / "weights" / f"stopped-r{rank}.txt").write_text(str(tr.run()["images_seen"]))


if __name__ == "__main__" and "--worker" in sys.argv:
    worker(Path(sys.argv[sys.argv.index("--worker") + 1]))

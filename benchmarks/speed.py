"""Training and translation speed of shapetex, per method, size and speed setting, with peak memory.

    python benchmarks/speed.py                 # the full CPU table (~40 min on 2 quiet cores)
    python benchmarks/speed.py --quick         # a smoke run: two rows, two settings, few steps (~3 min)
    python benchmarks/speed.py --device cuda   # the same table on a GPU, plus 256/512 px bf16 rows
    python benchmarks/speed.py --rows cyclegan-r9-128 --settings fp32,fast --json out.json
    python benchmarks/speed.py --micro         # kernels only: bf16 vs fp32 conv/matmul, Adam loop vs fused

Every (row, setting) runs in its own subprocess, so the peak resident memory (ru_maxrss of the child) is that
row's alone. A row builds the real `Trainer` (built-in data: no decoding is timed), prepares batches the way
`Trainer.run` does, runs warm-up steps (compilation happens there) and times the training step itself:
`method.train_step` plus the EMA update, with the trainer's per-step seeding. The streamlined translator runs
lazy R1 every 16 steps; the timed window holds one R1 step, and its extra time counts 1/16 per step:
s/iter = mean(other steps) + (R1 step - mean(other steps)) / 16.

GFLOP/step is counted once per row with torch.utils.flop_counter.FlopCounterMode on an eager step (not an R1
one); "% of peak" divides the achieved FLOP/s by a dense matmul's FLOP/s measured at the start (CPU) or by the
GPU's data-sheet bf16 peak (CUDA). A row near that peak cannot get much faster without changing its maths.

Settings ("fp32" is the plain path every speed-up is measured against; each other one changes train.* options):
    fp32           eager, NCHW tensors, PyTorch's thread count, each method's own optimizers (unfused)
    channels_last  train.channels_last=true
    threads        train.threads=<physical cores> (the default already caps at the usable cores)
    fused_adam     train.fused_optimizers=true
    compile        train.compile=true (torch.compile of the trained networks; the first steps compile)
    bf16           train.precision=bf16 (autocast); skipped on a CPU without native bf16
    fast           what `shapetex train` does by default (TrainConfig's defaults: fused Adam, capped threads)
    fast+passive   the defaults, with OMP_WAIT_POLICY=PASSIVE in the environment (idle OpenMP threads sleep
                   instead of spinning: a large gain when the cores are shared with other work)
    fast+compile, fast+bf16, fast+bf16+channels_last, fast+bf16+compile: combinations

Reference figures (pytorch-CycleGAN-and-pix2pix and CUT, batch 1, 128 px, fp32) are inputs measured on the same
machine (--reference cyclegan=4.95:1900, or --reference-json); "vs reference" divides by them. The translation
table times the streamlined translator's generator forward at 256 px, batch 8, against its plain fp32 eager
forward (torch.no_grad, NCHW).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What each reference row is compared with. The figures themselves are inputs (--reference / --reference-json),
# measured on the machine that runs this benchmark: a constant from another CPU compares nothing.
REFERENCE_WHAT = {
    "cyclegan": "pytorch-CycleGAN-and-pix2pix CycleGAN (resnet_9blocks, 70x70 PatchGAN, LSGAN, pool, identity)",
    "pix2pix": "pytorch-CycleGAN-and-pix2pix pix2pix (unet_128, 70x70 PatchGAN, cGAN + 100 L1)",
    "cut": "CUT (resnet_9blocks, 70x70 PatchGAN, PatchNCE)",
}


def parse_references(items: list[str], json_path: str | None) -> dict[str, dict]:
    """--reference cyclegan=4.95[:1900] (s/iter, optional peak MB) and/or a JSON file {name: {s_per_iter,
    peak_mb}}; the flags win. Names are REFERENCE_WHAT's."""
    refs: dict[str, dict] = {}
    if json_path:
        for name, v in json.loads(Path(json_path).read_text()).items():
            refs[name] = {"s_per_iter": float(v["s_per_iter"]), "peak_mb": v.get("peak_mb")}
    for item in items:
        name, sep, value = item.partition("=")
        seconds, _, mb = value.partition(":")
        try:
            if not sep:
                raise ValueError(item)
            refs[name] = {"s_per_iter": float(seconds), "peak_mb": float(mb) if mb else None}
        except ValueError:
            raise SystemExit(f"--reference {item!r}: expected NAME=S_PER_ITER[:PEAK_MB], "
                             "e.g. cyclegan=4.95:1900") from None
    if unknown := sorted(set(refs) - set(REFERENCE_WHAT)):
        raise SystemExit(f"--reference: unknown names {unknown}; known: {sorted(REFERENCE_WHAT)}")
    return refs


# Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets), matched against torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0),
                    ("RTX 3090", 71.0)]


@dataclass
class Row:
    name: str
    method: str
    size: int
    batch: int
    model: dict = field(default_factory=dict)
    ref: str | None = None  # key into REFERENCE_WHAT
    gpu_only: bool = False


# The quickstart's run and the 64 px scale-true experiment preset (shapetex.experiments.presets, --scale cpu)
QUICKSTART_MODEL = {"g_channel_max": 64, "d_channel_max": 64, "r1_gamma": 0.1, "fourier_features": 0}
EXPERIMENT_64_MODEL = {"bottleneck_res": 16, "bottleneck_channels": 2, "d_channel_base": 4096, "d_channel_max": 512,
                       "r1_gamma": 1.0}

ROWS = [
    Row("quickstart-32", "adversarial", 32, 4, QUICKSTART_MODEL),
    Row("experiment-64", "adversarial", 64, 16, EXPERIMENT_64_MODEL),
    Row("adversarial-64", "adversarial", 64, 8),
    Row("adversarial-128", "adversarial", 128, 8),
    Row("pix2pix-unet128", "pix2pix", 128, 1, {"depth": 7}, ref="pix2pix"),
    Row("cyclegan-r9-128", "cyclegan", 128, 1, {"t_blocks": 9}, ref="cyclegan"),
    Row("asymmetric-128", "asymmetric", 128, 1),
    Row("cut-r9-128", "cut", 128, 1, {"blocks": 9}, ref="cut"),
    Row("adversarial-256", "adversarial", 256, 16, gpu_only=True),
    Row("adversarial-512", "adversarial", 512, 8, gpu_only=True),
]


def settings_table(device: str) -> dict[str, dict]:
    """name -> train.* options (plus "env": environment variables of the child process)."""
    from shapetex.config import TrainConfig
    from shapetex.engine import available_cores

    d = TrainConfig()
    fast = {"channels_last": d.channels_last, "threads": d.threads, "fused_optimizers": d.fused_optimizers,
            "compile": d.compile, "precision": d.precision}
    plain = {"channels_last": False, "threads": 0, "fused_optimizers": False, "compile": False, "precision": "fp32"}
    table = {
        "fp32": {},
        "channels_last": {"channels_last": True},
        "threads": {"threads": available_cores()},
        "fused_adam": {"fused_optimizers": True},
        "compile": {"compile": True},
        "bf16": {"precision": "bf16"},
        "fast": dict(fast),
        "fast+passive": {**fast, "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
        "fast+compile": {**fast, "compile": True},
        "fast+bf16": {**fast, "precision": "bf16"},
        "fast+bf16+channels_last": {**fast, "precision": "bf16", "channels_last": True},
        "fast+bf16+compile": {**fast, "precision": "bf16", "compile": True},
    }
    return {k: {**plain, **v} for k, v in table.items()}


DEFAULT_SETTINGS = {
    "cpu": ["fp32", "channels_last", "compile", "bf16", "fast", "fast+passive"],
    "cuda": ["fp32", "channels_last", "compile", "bf16", "fast", "fast+bf16", "fast+bf16+channels_last",
             "fast+bf16+compile"],
}
GPU_ONLY_SETTINGS = ["fp32", "fast+bf16", "fast+bf16+channels_last", "fast+bf16+compile"]


# ---- children ----------------------------------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory(device) -> dict:
    import torch

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: kilobytes
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# Operator families for the profile's summary: the first pattern that a name contains wins.
OP_FAMILIES = [
    ("transposed conv", ("(transposed)", "conv_transpose", "convolution_transpose", "slow_conv_transpose")),
    ("convolution", ("convolution", "conv2d", "mkldnn_conv", "_conv_depthwise", "slow_conv", "conv1d")),
    ("normalisation", ("batch_norm", "instance_norm", "group_norm", "layer_norm", "native_norm")),
    ("optimizer", ("(in ", "adam", "_foreach_")),
    ("resampling", ("upsample", "interpolate", "avg_pool", "max_pool", "grid_sampler")),
    ("matmul / linear", ("aten::addmm", "aten::matmul", "aten::linear", "aten::mm", "aten::bmm")),
    ("activation", ("relu", "leaky", "tanh", "sigmoid", "gelu", "threshold")),
    ("copy / layout", ("copy_", "contiguous", "to_dense", "clone", "aten::cat", "pad", "reflection_pad")),
]


def op_family(name: str) -> str:
    low = name.lower()
    for family, patterns in OP_FAMILIES:
        if any(p in low for p in patterns):
            return family
    return "other"


# Where the `transposed` flag sits among the recorded scalar arguments of PyTorch's generic convolution ops:
# the same op names run both kinds, so the flag is what tells a transposed convolution's time apart.
TRANSPOSED_ARG = {"aten::convolution": 6, "aten::_convolution": 6, "aten::convolution_backward": 7}


def _op_key(event) -> str:
    parent = event.cpu_parent
    while parent is not None:  # PyTorch labels every optimizer step "Optimizer.step#Adam.step"
        if parent.name.startswith("Optimizer.step#"):
            return f"{event.name} (in {parent.name.split('#', 1)[1]})"
        parent = parent.cpu_parent
    at = TRANSPOSED_ARG.get(event.name)
    args = getattr(event, "concrete_inputs", None) or []
    if at is not None and len(args) > at and args[at] is True:
        return event.name + " (transposed)"
    return event.name


def profile_steps(run_step, steps: int, top: int = 10, device: str = "cpu") -> dict:
    """Self time per operator over `steps` calls of run_step() (torch.profiler): the `top` operators and the
    families of OP_FAMILIES, each as ms per step and a share of the profiled time. On CPU the time is the ops'
    self CPU time; on CUDA it is the GPU time of the kernels each op launched (its self device time), so the
    host's waits at sync points do not count. Only the ATen ops (CPU events) are read: kernel events repeat
    the time their launching op already holds."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, record_shapes=True) as prof:  # shapes: the convolutions' transposed flag
        for i in range(steps):
            run_step(i)
        if cuda:
            torch.cuda.synchronize()
    self_us: dict[str, float] = {}
    calls: dict[str, int] = {}
    for e in prof.events():
        if e.device_type != DeviceType.CPU:
            continue
        t = e.self_device_time_total if cuda else e.self_cpu_time_total
        if t > 0:
            key = _op_key(e)
            self_us[key] = self_us.get(key, 0.0) + t
            calls[key] = calls.get(key, 0) + 1
    total = sum(self_us.values()) or 1.0
    families: dict[str, float] = {}
    for key, t in self_us.items():
        families[op_family(key)] = families.get(op_family(key), 0.0) + t
    ops = sorted(self_us, key=self_us.get, reverse=True)
    return {"steps": steps, "total_ms_per_step": total / 1e3 / steps,
            "top": [{"op": k, "ms_per_step": self_us[k] / 1e3 / steps, "share": self_us[k] / total,
                     "calls_per_step": calls[k] / steps} for k in ops[:top]],
            "families": {k: {"ms_per_step": v / 1e3 / steps, "share": v / total}
                         for k, v in sorted(families.items(), key=lambda kv: -kv[1])}}


def _train_options(t, setting: dict) -> None:
    for key, value in setting.items():
        if key == "env":
            continue
        if hasattr(t, key):
            setattr(t, key, value)
        elif value:  # an option this checkout's TrainConfig does not have
            raise SystemExit(f"this shapetex has no train.{key}")


def child_train(job: dict) -> dict:
    import torch

    from shapetex.config import RunConfig
    from shapetex.train import Trainer, flip_batch, step_seed

    cfg = RunConfig(method=job["method"], out=job["out"])
    cfg.data.size = job["size"]
    cfg.data.builtin_count = max(16, 2 * job["batch"])
    t = cfg.train
    t.batch, t.budget, t.device, t.seed = job["batch"], 10**9, job["device"], 0
    t.sample_every = t.checkpoint_every = t.monitor_every = 0
    _train_options(t, job["setting"])
    cfg.model = dict(job["model"])
    trainer = Trainer(cfg)
    method, e = trainer.method, trainer.engine
    batches = []
    for step in range(4):
        raw = trainer.source.batch(step)
        batch = {k: e.prepare_images(v) if v.dtype == torch.uint8 else v.to(e.device) for k, v in raw.items()}
        flip_batch(batch, getattr(method, "flip_together", False), torch.Generator().manual_seed(step))
        batches.append(batch)
    for net in method.networks().values():
        net.train()
    r1_every = getattr(method.settings, "r1_interval", 0) or 0

    def one_step(step: int) -> bool:
        """One training step as Trainer.run takes it; True when it ran lazy R1."""
        torch.manual_seed(step_seed(t.seed, step, 0))
        logs = method.train_step(batches[step % len(batches)], step)
        if method.ema_of:
            method.update_ema(method.ema_beta((step + 1) * t.batch, t.batch))
        return "r1" in logs

    warmup, steps = job["warmup"], job["steps"]
    # warm-up: steps 0.. (step 0 runs R1 too); the timed window [first, first + steps) holds exactly one R1 step
    first = warmup
    if r1_every:
        first = r1_every - steps // 2
        while first < warmup:
            first += r1_every
    start = time.perf_counter()
    for step in range(warmup):
        one_step(step)
    _sync(e.device)
    warm_s = time.perf_counter() - start
    plain, r1 = [], []
    for step in range(first, first + steps):
        s0 = time.perf_counter()
        had_r1 = one_step(step)
        _sync(e.device)
        (r1 if had_r1 else plain).append(time.perf_counter() - s0)
    mean = sum(plain) / len(plain)
    s_per_iter = mean + (sum(r1) / len(r1) - mean) / r1_every if r1 and r1_every else mean
    out = {"s_per_iter": s_per_iter, "median_s": statistics.median(plain), "min_s": min(plain),
           "r1_step_s": r1[0] if r1 else None, "warmup_s": warm_s, "threads": torch.get_num_threads(),
           "steps": steps, "compiled": sorted(getattr(e, "compiled", ())),
           "fused": sorted(n for n, o in e.optimizers.items() if any(g.get("fused") for g in o.param_groups)),
           **_memory(e.device)}
    if job.get("count_flops"):  # after the memory reading: counting must not raise the row's peak
        step = first + steps + (1 if r1_every and (first + steps) % r1_every == 0 else 0)
        out["flops_per_step"] = _count_flops(lambda: method.train_step(batches[0], step))
    if job.get("profile"):  # after timing and memory: the profiler's own overhead must not reach them
        plain_steps = [i for i in range(first + steps, first + steps + 2 * job["profile"] + 2)
                       if not (r1_every and i % r1_every == 0)][:job["profile"]]  # no lazy R1 step
        if plain_steps:
            out["profile"] = profile_steps(lambda i: one_step(plain_steps[i]), len(plain_steps),
                                           device=e.device.type)
    return out


# Translation rows: the method whose `translate` is timed and its model settings (the reference generators
# the published models use: resnet_9blocks for CycleGAN and CUT, unet_256 for pix2pix).
TRANSLATE_METHODS = {
    "translator": ("adversarial", {}),
    "cyclegan-r9": ("cyclegan", {"t_blocks": 9}),
    "pix2pix-unet256": ("pix2pix", {"depth": 8}),
    "cut-r9": ("cut", {"blocks": 9}),
}


def translation_method(name: str, size: int, device):
    """The method of TRANSLATE_METHODS[name] at `size` on `device`, its networks in eval mode and frozen."""
    import torch

    from shapetex.config import RunConfig
    from shapetex.engine import Engine
    from shapetex.methods import build_method

    method_name, model = TRANSLATE_METHODS[name]
    cfg = RunConfig(method=method_name)
    cfg.data.size = size
    cfg.model = dict(model)
    torch.manual_seed(0)
    method = build_method(cfg, Engine(device))
    for net in method.networks().values():
        net.to(device).eval().requires_grad_(False)
    return method


def child_translate(job: dict) -> dict:
    import torch

    from shapetex.engine import Engine, compile_available, resolve_device

    s = job["setting"]
    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    device = resolve_device(job["device"])
    engine = Engine(device, s.get("precision", "fp32"))  # its autocast (and its bf16 warning)
    method = translation_method(job.get("method", "translator"), job["size"], device)
    x = torch.rand(job["batch"], 3, job["size"], job["size"], device=device) * 2 - 1
    z = torch.randn(job["batch"], getattr(method.G, "z_dim", 0) or 1, device=device)
    if s.get("channels_last"):
        for net in method.networks().values():
            net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    grad_off = torch.inference_mode if s.get("inference_mode") else torch.no_grad
    run, compiled = method.translate, False
    if s.get("compile"):
        ok, why = compile_available(device)
        if ok:
            run, compiled = torch.compile(method.translate), True
        else:
            print(f"compile skipped: {why}", file=sys.stderr)

    def forward():
        with grad_off(), engine.autocast():
            return run(x, z)

    start = time.perf_counter()
    for _ in range(job["warmup"]):
        forward()
    _sync(device)
    warm_s = time.perf_counter() - start
    times = []
    for _ in range(job["steps"]):
        s0 = time.perf_counter()
        forward()
        _sync(device)
        times.append(time.perf_counter() - s0)
    out = {"s_per_iter": sum(times) / len(times), "median_s": statistics.median(times), "min_s": min(times),
           "warmup_s": warm_s, "threads": torch.get_num_threads(), "steps": job["steps"],
           "compiled": ["G"] if compiled else [], **_memory(device)}
    if job.get("count_flops"):  # after the memory reading: counting must not raise the row's peak
        with grad_off():
            out["flops_per_step"] = _count_flops(lambda: method.translate(x, z))
    return out


def child_matmul(job: dict) -> dict:
    """Dense fp32 (CPU) matmul FLOP/s with the rows' thread count: the practical peak of this machine."""
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    n = job.get("n", 2048)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(job.get("reps", 10)):
        s0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - s0)
    return {"flops_per_s": 2 * n**3 / best, "threads": torch.get_num_threads()}


def micro(threads: int | None) -> str:
    """Kernel-level checks behind the settings: bf16 vs fp32 convolution and matmul, and one Adam step over
    pix2pix's 44.6M parameters as a per-parameter loop, foreach and fused."""
    import torch

    from shapetex.nets.patchgan import PatchDiscriminator
    from shapetex.nets.unet import UNetGenerator

    if threads:
        torch.set_num_threads(threads)

    def best(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            s0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s0)
        return min(times)

    F = torch.nn.functional
    x, w = torch.randn(2, 64, 64, 64), torch.randn(64, 64, 3, 3)
    a = torch.randn(512, 512)
    lines = [f"## Kernels ({torch.get_num_threads()} threads)\n", "| kernel | fp32 s | bf16 s | bf16 / fp32 |",
             "|---|---|---|---|"]
    for name, f32, b16 in [
        ("conv 3x3, 2x64x64x64", lambda: F.conv2d(x, w, padding=1),
         lambda: F.conv2d(x.bfloat16(), w.bfloat16(), padding=1)),
        ("matmul 512^3", lambda: a @ a, lambda: a.bfloat16() @ a.bfloat16()),
    ]:
        t32, t16 = best(f32), best(b16, 1)
        lines.append(f"| {name} | {t32:.4f} | {t16:.4f} | {t16 / t32:.1f}x |")
    nets = [UNetGenerator(7), PatchDiscriminator(6)]
    params = [q for n in nets for q in n.parameters()]
    for q in params:
        q.grad = torch.randn_like(q)
    lines += ["", f"| Adam step, {sum(q.numel() for q in params) / 1e6:.1f}M parameters | s |", "|---|---|"]
    for name, kw in (("per-parameter loop (CPU default)", {"foreach": False}), ("foreach", {"foreach": True}),
                     ("fused", {"fused": True})):
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **kw)
        lines.append(f"| {name} | {best(opt.step, 5):.4f} |")
    return "\n".join(lines) + "\n"


def run_child(job: dict, timeout: float, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()][-3:]
    return {"error": " | ".join(tail) or f"exit {proc.returncode}"}


# ---- the tables ----------------------------------------------------------------------------------------------
def bf16_native(device: str) -> tuple[bool, str]:
    import torch

    if device == "cuda":
        return torch.cuda.is_bf16_supported(), "this GPU has no bf16"
    from shapetex.engine import cpu_bf16_native

    return cpu_bf16_native(), (f"{torch.backends.cpu.get_cpu_capability()} CPU without native bf16: "
                               "reference kernels, ~80x slower than fp32")


# AMD family 0x19 models by microarchitecture (AMD's revision guides): a VM often shows only "AMD EPYC".
AMD_FAMILY_19H_ZEN4 = set(range(0x10, 0x20)) | set(range(0x60, 0x80)) | set(range(0xA0, 0xB0))


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its vendor family/model (and the Zen generation, where a VM hides it) and the
    bf16 hardware flags, from /proc/cpuinfo's text: enough to tell which machine a table came from."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            import platform

            return platform.processor() or platform.machine()
    info: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    name, family, model = info.get("model name", "?"), int(info.get("cpu family", 0)), int(info.get("model", 0))
    gen = ""
    if info.get("vendor_id") == "AuthenticAMD":
        gen = {0x17: "Zen/Zen 2", 0x1A: "Zen 5"}.get(family, "")
        if family == 0x19:
            gen = "Zen 4" if model in AMD_FAMILY_19H_ZEN4 else "Zen 3"
    flags = [f for f in ("avx512_bf16", "amx_bf16") if f in info.get("flags", "").split()]
    return (f"{name} (family {family} model {model}{', ' + gen if gen else ''}"
            f"{', ' + ' '.join(flags) if flags else ''})")


def gpu_peak(given: float | None) -> tuple[float | None, str]:
    """The GPU's dense bf16 peak in FLOP/s (from --peak-tflops or the data-sheet table) and its name."""
    import torch

    name = torch.cuda.get_device_name()
    if given:
        return given * 1e12, name
    for key, value in BF16_PEAK_TFLOPS:
        if key in name:
            return value * 1e12, name
    return None, name


def _pct(flops: float | None, seconds: float, peak: float | None) -> str:
    return f"{100 * flops / seconds / peak:.0f}%" if flops and peak else "n/a"


def _not_run_line(r: dict, columns: int) -> str:
    """A table line for a (row, setting) that was skipped or failed, padded to `columns` cells."""
    what = "skipped" if "skipped" in r else "failed"
    cells = [r["row"], r["setting"], str(r.get("batch", "")), "", f"{what}: {r.get('skipped') or r.get('error', '?')}"]
    return "| " + " | ".join(cells + [""] * (columns - len(cells))) + " |"


def _memory_cell(r: dict) -> str:
    return f"{r['peak_rss_mb']:.0f}" + (f" (GPU {r['peak_gpu_mb']:.0f})" if "peak_gpu_mb" in r else "")


def train_table(results: list[dict], peak: float | None, peak_what: str, refs: dict[str, dict]) -> str:
    base = {r["row"]: r for r in results if r["setting"] == "fp32" and "s_per_iter" in r}
    flops = {r["row"]: r["flops_per_step"] for r in results if r.get("flops_per_step")}
    lines = [f"## Training step (s/iter: see the method note; peak RSS: the row's own process; % of peak: "
             f"{peak_what})\n",
             "| row | setting | batch | threads | s/iter | images/s | vs reference | vs our fp32 | GFLOP/step "
             "| % of peak | peak RSS MB | % of ref memory |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "s_per_iter" not in r:
            lines.append(_not_run_line(r, 12))
            continue
        ref = refs.get(r.get("ref") or "", {})
        s = r["s_per_iter"]
        vs_ref = f"{ref['s_per_iter'] / s:.2f}x" if ref.get("s_per_iter") and r["batch"] == 1 else "n/a"
        vs_own = f"{base[r['row']]['s_per_iter'] / s:.2f}x" if r["row"] in base else "n/a"
        f = flops.get(r["row"])
        mem = _memory_cell(r)
        ref_mem = f"{100 * r['peak_rss_mb'] / ref['peak_mb']:.0f}%" if ref.get("peak_mb") else "n/a"
        setting = r["setting"] + (" (not compiled)" if "compile" in r["setting"] and not r.get("compiled") else "")
        lines.append(f"| {r['row']} | {setting} | {r['batch']} | {r['threads']} | {s:.3f} | {r['batch'] / s:.2f} | "
                     f"{vs_ref} | {vs_own} | {f / 1e9 if f else 0:.0f} | {_pct(f, s, peak)} | {mem} | {ref_mem} |")
    return "\n".join(lines) + "\n"


def profile_table(results: list[dict]) -> str:
    """Per (row, setting): where a plain training step's time goes, by operator family and top operators."""
    lines = ["## Where the time goes (torch.profiler self time of plain steps, no R1; ms per step and share)\n"]
    for r in results:
        prof = r.get("profile")
        if not prof:
            continue
        fam = ", ".join(f"{k} {v['ms_per_step']:.0f} ms ({100 * v['share']:.0f}%)" for k, v in prof["families"].items()
                        if v["share"] >= 0.01)
        lines += [f"### {r['row']} / {r['setting']}: {prof['total_ms_per_step']:.0f} ms profiled per step "
                  f"({prof['steps']} steps)\n", f"By family: {fam}.\n", "| operator | ms/step | share | calls/step |",
                  "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['ms_per_step']:.1f} | {100 * o['share']:.1f}% | {o['calls_per_step']:.0f} |"
                  for o in prof["top"]]
        lines.append("")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def reference_note(refs: dict[str, dict]) -> str:
    if not refs:
        return ("No reference figures were given, so \"vs reference\" is n/a: measure the reference implementations "
                "on this machine and pass them, e.g. --reference cyclegan=4.95:1900 --reference pix2pix=0.63.\n")
    return "Reference figures given (measured on this machine, batch 1, 128 px):\n" + "".join(
        f"- {name}: {r['s_per_iter']} s/iter" + (f", peak {r['peak_mb']:.0f} MB" if r.get("peak_mb") else "")
        + f" ({REFERENCE_WHAT[name]})\n" for name, r in refs.items())


def translate_table(results: list[dict], peak: float | None, peak_what: str) -> str:
    base = {r["row"]: r for r in results if r["setting"] == "fp32 no_grad" and "s_per_iter" in r}
    flops = {r["row"]: r["flops_per_step"] for r in results if r.get("flops_per_step")}
    lines = [f"## Translation: each method's translate forward (% of peak: {peak_what})\n",
             "| row | setting | batch | threads | s/batch | images/s | vs fp32 eager | GFLOP/batch | % of peak "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "s_per_iter" not in r:
            lines.append(_not_run_line(r, 10))
            continue
        s = r["s_per_iter"]
        vs = f"{base[r['row']]['s_per_iter'] / s:.2f}x" if r["row"] in base else "n/a"
        f = flops.get(r["row"])
        mem = _memory_cell(r)
        setting = r["setting"] + (" (not compiled)" if "compile" in r["setting"] and not r.get("compiled") else "")
        lines.append(f"| {r['row']} | {setting} | {r['batch']} | {r['threads']} | {s:.3f} | {r['batch'] / s:.2f} | "
                     f"{vs} | {f / 1e9 if f else 0:.0f} | {_pct(f, s, peak)} | {mem} |")
    return "\n".join(lines) + "\n"


def translate_row_name(method: str, size: int) -> str:
    return f"translate-{size}" if method == "translator" else f"{method}-{size}"


# (fp32 setting, bf16 setting) pairs the precision table compares, training then translation
PRECISION_PAIRS = [("fp32", "bf16"), ("fast", "fast+bf16"), ("fp32 no_grad", "bf16"),
                   ("inference_mode", "bf16"), ("channels_last", "bf16+channels_last")]


def precision_table(train: list[dict], translate: list[dict], native: bool, why: str) -> str:
    """Both precisions per row: the fp32 and bf16 times of each measured pair and bf16's speed-up."""
    lines = [f"## Both precisions (native bf16 here: {'yes' if native else 'no, ' + why})\n",
             "| table | row | fp32 setting | fp32 s | bf16 setting | bf16 s | bf16 speed-up |", "|---" * 7 + "|"]
    for table, results in (("train", train), ("translate", translate)):
        by = {(r["row"], r["setting"]): r for r in results}
        for row in dict.fromkeys(r["row"] for r in results):
            for a, b in PRECISION_PAIRS:
                ra, rb = by.get((row, a)), by.get((row, b))
                if not ra or not rb or "s_per_iter" not in ra:
                    continue
                if "s_per_iter" not in rb:
                    lines.append(f"| {table} | {row} | {a} | {ra['s_per_iter']:.3f} | {b} | "
                                 f"{rb.get('skipped') or rb.get('error', '?')} | |")
                    continue
                lines.append(f"| {table} | {row} | {a} | {ra['s_per_iter']:.3f} | {b} | {rb['s_per_iter']:.3f} | "
                             f"{ra['s_per_iter'] / rb['s_per_iter']:.2f}x |")
    return "\n".join(lines) + "\n"


TRANSLATE_SETTINGS = {  # generator forward options
    "fp32 no_grad": {},
    "inference_mode": {"inference_mode": True},
    "channels_last": {"inference_mode": True, "channels_last": True},
    "compile": {"inference_mode": True, "compile": True},
    "channels_last+compile": {"inference_mode": True, "channels_last": True, "compile": True},
    "bf16": {"inference_mode": True, "precision": "bf16"},
    "bf16+channels_last": {"inference_mode": True, "precision": "bf16", "channels_last": True},
    "bf16+channels_last+compile": {"inference_mode": True, "precision": "bf16", "channels_last": True,
                                   "compile": True},
}


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count of steps cannot be negative: {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="smoke run: two rows, fp32 and fast, few steps")
    p.add_argument("--rows", help="comma-separated row names (default: every row for the device)")
    p.add_argument("--settings", help="comma-separated training settings (default: a set per device)")
    p.add_argument("--steps", type=int, help="timed steps per row (default 6, quick 3)")
    p.add_argument("--warmup", type=int, help="warm-up steps per row (default 2, quick 1; compile rows >= 3)")
    p.add_argument("--threads", type=int, help="run every child with this many threads (e.g. 1 on a shared "
                   "machine, where settings then compare per core)")
    p.add_argument("--translate-size", type=int, default=256)
    p.add_argument("--translate-batch", type=int, default=8)
    p.add_argument("--no-translate", action="store_true", help="skip the translation table")
    p.add_argument("--no-train", action="store_true", help="skip the training table")
    p.add_argument("--micro", action="store_true", help="only the kernel checks: bf16 vs fp32, Adam loop/fused")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per row before it is given up")
    p.add_argument("--budget-s", type=float, help="seconds for the whole run: rows not started by then are "
                   "reported as skipped (benchmarks/gpu.sh keeps to its 8 minutes this way)")
    p.add_argument("--translate-methods", default="translator",
                   help="comma-separated translation rows: " + ", ".join(TRANSLATE_METHODS) + " (default translator)")
    p.add_argument("--translate-settings", help="comma-separated translation settings (default: all of "
                   "TRANSLATE_SETTINGS)")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when its name is not known here")
    p.add_argument("--json", help="also write every measurement to this file")
    p.add_argument("--profile", type=_count, default=0, metavar="STEPS",
                   help="also profile STEPS plain training steps per row (torch.profiler) and print the top "
                        "operators and operator families")
    p.add_argument("--reference", action="append", default=[], metavar="NAME=S_PER_ITER[:PEAK_MB]",
                   help="a reference implementation's step measured on this machine (batch 1, 128 px), e.g. "
                        "cyclegan=4.95:1900 or pix2pix=0.63; names: " + ", ".join(REFERENCE_WHAT))
    p.add_argument("--reference-json", help="the same figures as a JSON file {name: {s_per_iter, peak_mb}}")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        job = json.loads(args.child)
        kind = job["kind"]
        result = {"train": child_train, "translate": child_translate, "matmul": child_matmul}[kind](job)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    import torch

    refs = parse_references(args.reference, args.reference_json)
    if args.micro:
        print(micro(args.threads))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no GPU here")
    table = settings_table(args.device)
    if args.threads:
        table = {k: {**v, "threads": args.threads} for k, v in table.items()}
    rows = [r for r in ROWS if args.device == "cuda" or not r.gpu_only]
    if args.rows:
        wanted = args.rows.split(",")
        rows = [r for r in ROWS if r.name in wanted]
        if len(rows) != len(wanted):
            p.error(f"unknown rows; known: {[r.name for r in ROWS]}")
    names = [n.strip() for n in args.settings.split(",")] if args.settings else DEFAULT_SETTINGS[args.device]
    if unknown := [n for n in names if n not in table]:
        p.error(f"unknown settings {unknown}; known: {list(table)}")
    t_names = ([n.strip() for n in args.translate_settings.split(",")] if args.translate_settings
               else list(TRANSLATE_SETTINGS))
    if unknown := [n for n in t_names if n not in TRANSLATE_SETTINGS]:
        p.error(f"unknown translation settings {unknown}; known: {list(TRANSLATE_SETTINGS)}")
    t_methods = [n.strip() for n in args.translate_methods.split(",")]
    if unknown := [n for n in t_methods if n not in TRANSLATE_METHODS]:
        p.error(f"unknown translation rows {unknown}; known: {list(TRANSLATE_METHODS)}")
    if args.quick:
        rows = rows if args.rows else [r for r in rows if r.name in ("adversarial-64", "pix2pix-unet128")]
        names = names if args.settings else ["fp32", "fast"]
    steps = args.steps or (3 if args.quick else 6)
    warmup = args.warmup or (1 if args.quick else 2)
    bf16_ok, bf16_why = bf16_native(args.device)
    deadline = time.monotonic() + args.budget_s if args.budget_s is not None else None

    spent = f"--budget-s {args.budget_s:g} spent" if deadline is not None else ""

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    def child_timeout() -> float:
        """--timeout, cut so that a row started late still ends near --budget-s (60 s of grace)."""
        return args.timeout if deadline is None else max(30.0, min(args.timeout, deadline - time.monotonic() + 60))

    results: list[dict] = []
    tr: list[dict] = []

    def save() -> None:  # after every row: a run cut short keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(results + tr, indent=1) + "\n")

    from shapetex.engine import available_cores, cpu_bf16_native

    header = (f"# shapetex speed benchmark: {args.device}, torch {torch.__version__}, {cpu_name()} "
              f"({torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if cpu_bf16_native() else 'no'}), "
              f"{available_cores()} usable physical cores, PyTorch threads {torch.get_num_threads()}")
    if args.device == "cuda":
        peak, gpu = gpu_peak(args.peak_tflops)
        header += f", {gpu}"
        peak_what = f"{peak / 1e12:.0f} TFLOP/s dense bf16 (data sheet)" if peak else "GPU peak unknown"
    else:
        mm = run_child({"kind": "matmul", "threads": args.threads}, 300)
        peak = mm.get("flops_per_s")
        peak_what = (f"{peak / 1e9:.0f} GFLOP/s, a 2048^3 fp32 matmul measured now with {mm['threads']} threads"
                     if peak else "matmul failed")
    print(header + f"; command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}\n")
    with tempfile.TemporaryDirectory(prefix="shapetex-bench-") as tmp:
        if not args.no_train:
            counted: set[str] = set()
            for row in rows:
                for name in (GPU_ONLY_SETTINGS if row.gpu_only and not args.settings else names):
                    setting = table[name]
                    entry = {"row": row.name, "setting": name, "ref": row.ref, "batch": row.batch}
                    if setting["precision"] == "bf16" and not bf16_ok:
                        results.append({**entry, "skipped": bf16_why})
                        continue
                    if out_of_time():
                        results.append({**entry, "skipped": spent})
                        continue
                    count = row.name not in counted and not setting["compile"]
                    job = {"kind": "train", "method": row.method, "size": row.size, "batch": row.batch,
                           "model": row.model, "device": args.device,
                           "setting": {k: v for k, v in setting.items() if k != "env"},
                           "out": str(Path(tmp) / f"{row.name}-{name}"), "steps": steps,
                           "warmup": max(warmup, 3) if setting["compile"] else warmup, "count_flops": count,
                           "profile": args.profile}
                    print(f"  {row.name} / {name} ...", file=sys.stderr, flush=True)
                    res = run_child(job, child_timeout(), setting.get("env"))
                    if res.get("flops_per_step"):
                        counted.add(row.name)
                    results.append({**entry, **res})
                    save()
            print(train_table(results, peak, peak_what, refs))
            print(reference_note(refs))
            if args.profile:
                print(profile_table(results))
        if not args.no_translate:
            if args.quick and not args.translate_settings:
                t_names = ["fp32 no_grad", "channels_last"]
            for t_method in t_methods:
                row = translate_row_name(t_method, args.translate_size)
                for name in t_names:
                    s = {**TRANSLATE_SETTINGS[name], **({"threads": args.threads} if args.threads else {})}
                    entry = {"row": row, "setting": name, "batch": args.translate_batch}
                    if s.get("precision") == "bf16" and not bf16_ok:
                        tr.append({**entry, "skipped": bf16_why})
                        continue
                    if out_of_time():
                        tr.append({**entry, "skipped": spent})
                        continue
                    job = {"kind": "translate", "method": t_method, "size": args.translate_size,
                           "batch": args.translate_batch, "device": args.device, "setting": s,
                           "steps": 2 if args.quick else 4, "warmup": 2 if s.get("compile") else 1,
                           "count_flops": not any(r["row"] == row and "flops_per_step" in r for r in tr)}
                    print(f"  {row} / {name} ...", file=sys.stderr, flush=True)
                    tr.append({**entry, **run_child(job, child_timeout())})
                    save()
            if args.device == "cuda":  # the streamlined translator at 512 px too, bf16
                for name in ("fp32 no_grad", "bf16+channels_last", "bf16+channels_last+compile"):
                    job = {"kind": "translate", "size": 512, "batch": args.translate_batch, "device": "cuda",
                           "setting": TRANSLATE_SETTINGS[name], "steps": 4, "warmup": 2, "count_flops": True}
                    entry = {"row": "translate-512", "setting": name, "batch": args.translate_batch}
                    if out_of_time():
                        tr.append({**entry, "skipped": spent})
                        continue
                    print(f"  translate-512 / {name} ...", file=sys.stderr, flush=True)
                    tr.append({**entry, **run_child(job, child_timeout())})
                    save()
            print(translate_table(tr, peak, peak_what))
        print(precision_table(results, tr, bf16_ok, bf16_why))
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

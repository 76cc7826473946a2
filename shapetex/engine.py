"""What a method needs from the machine during a step: device, precision, DDP, and safe optimizer steps.

Methods write their losses once; the engine makes the same code run on CPU or GPU, in fp32, bf16 or
fp16, in one process or under torchrun/DDP.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import platform
import shutil
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .config import DEVICE, ConfigError

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device `name` (auto | cpu | cuda | cuda:N | mps) names; a ConfigError when it is not one or is
    not on this machine (torch would accept cuda:99 here and fail at the first tensor moved)."""
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    if not DEVICE.fullmatch(name):
        raise ConfigError(f"device {name!r}: not one of auto, cpu, cuda, cuda:N, mps")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            have = f"only {count} CUDA GPU{'s' if count != 1 else ''} (numbered from 0)" if count else "no CUDA GPU"
            raise ConfigError(f"device {name!r}: this machine has {have}: use --device auto or cpu")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: this machine has no Apple GPU (MPS): use --device auto or cpu")
    return device


# ---- speed: what this machine can do fast ------------------------------------------------------------------
def cpu_bf16_native() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (x86: AVX512-BF16 or AMX; other CPUs: oneDNN's bf16
    check). Without it PyTorch's bf16 convolutions and matmuls fall back to reference kernels: on an AVX2-only
    EPYC they ran ~80x slower than fp32 (benchmarks/speed.py, docs/performance.md)."""
    cpu = getattr(torch, "cpu", None)
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, c, lambda: False)()) for c in checks)
    onednn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and onednn is not None and onednn())


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware (a CUDA GPU that supports it, or a CPU with cpu_bf16_native)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_bf16_native()


def resolve_precision(precision: str, device: torch.device) -> str:
    """Inference precision: 'auto' is bf16 where the device computes it natively, else fp32 (emulated bf16 on
    an AVX2-only CPU ran ~80x slower than fp32); fp32 and bf16 are taken as given."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def compile_available(device: torch.device) -> tuple[bool, str]:
    """(whether torch.compile can generate code for this device, why not)."""
    if not hasattr(torch, "compile") or not hasattr(torch, "compiler"):
        return False, f"torch {torch.__version__} has no torch.compile"
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return False, "no Triton support in this torch"
        return (True, "") if has_triton() else (False, "Triton is not installed (pip install triton)")
    if device.type == "cpu":
        names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        return (True, "") if any(n and shutil.which(n) for n in names) else (False, "no C++ compiler on PATH")
    return False, f"no compiler back end for {device.type}"


def available_cores() -> int:
    """Physical cores this process may use: its CPU affinity, without SMT siblings, capped by a cgroup CPU quota."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores, cpu, ids = set(), None, {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in [*f, "\n"]:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "processor":
                    cpu = int(value)
                elif key in ("physical id", "core id"):
                    ids[key] = value.strip()
                elif not line.strip() and cpu is not None:
                    if cpu in allowed:
                        cores.add((ids.get("physical id"), ids.get("core id", cpu)))
                    cpu, ids = None, {}
    except (OSError, ValueError):
        pass
    n = len(cores) or len(allowed)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


class _EagerOnInputGrad:
    """A compiled network, while it trains, called on an input that needs gradients: the caller is probably
    differentiating with respect to that input (R1, gradient penalty) and then differentiating again, which a
    compiled graph cannot do. Such calls run eagerly; all others run compiled."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, *args, **kwargs):
        if any(isinstance(a, torch.Tensor) and a.requires_grad for a in (*args, *kwargs.values())):
            with torch.compiler.set_stance("force_eager"):
                return self.module(*args, **kwargs)
        return self.module(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.module, name)


def keep_grad_strides(net: nn.Module) -> None:
    """Give the gradients of parameters with a size-1 dimension their parameter's strides.

    A linear layer with one output (D's last layer, weight 1 x C) gets its weight gradient as a transposed
    product, strides (1, 1) where the parameter has (C, 1): the same memory, but DDP compares strides and
    warns "Grad strides do not match bucket view strides" at every start. Copying such a gradient (C
    numbers) into the parameter's layout keeps the gradient layout contract."""
    for p in net.parameters():
        if p.ndim > 1 and 1 in p.shape:
            p.register_hook(functools.partial(_in_layout_of, p))


def _in_layout_of(p: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    if grad.stride() == p.stride():
        return grad
    return torch.empty_strided(p.shape, p.stride(), dtype=grad.dtype, device=grad.device).copy_(grad)


@dataclass
class Engine:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    rank: int = 0
    world: int = 1
    compile: bool = False  # torch.compile every registered network (eager where no compiler is available)
    compile_backend: str = "inductor"  # torch.compile's back end ("aot_eager" compiles fast, for tests)
    nets: dict[str, nn.Module] = field(default_factory=dict)  # raw modules, by name
    wrapped: dict[str, nn.Module] = field(default_factory=dict)  # DDP wrappers when distributed
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    skipped_steps: int = 0
    consecutive_bad: int = 0
    compiled: set[str] = field(default_factory=set)  # networks that run compiled
    _training: tuple[str, ...] = ()

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("fp16 needs a CUDA device; use bf16 on CPU")
        if self.precision == "bf16" and self.device.type == "cpu" and not cpu_bf16_native():
            log.warning("bf16 on a CPU without native bf16 (%s): PyTorch falls back to reference kernels (~80x "
                        "slower than fp32 on an AVX2 EPYC); use fp32", torch.backends.cpu.get_cpu_capability())
        if self.compile and self.compile_backend == "inductor":
            ok, why = compile_available(self.device)
            if not ok:
                log.warning("train.compile: %s; running eagerly", why)
                self.compile = False
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def prepare_images(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float [-1, 1] on the device (non-blocking from pinned memory), in the memory format."""
        if x.device.type == "cpu" and self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def register(self, nets: dict[str, nn.Module]) -> None:
        """Move trained networks to the device and wrap them for DDP."""
        for name, net in nets.items():
            net.to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
            if self.compile:
                net.compile(backend=self.compile_backend)  # in place: same module, same state_dict keys
                self.compiled.add(name)
            self.nets[name] = net
            if self.distributed:
                if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
                    if self.device.type == "cuda":  # statistics over the global batch
                        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
                        self.nets[name] = net  # a new object only when `net` itself is a BN layer
                    elif self.is_main:  # SyncBatchNorm runs on GPUs only: on CPU (gloo) each process keeps its own
                        log.warning("%s: batch norm statistics are per process on %s (SyncBatchNorm needs GPUs)",
                                    name, self.device.type)
                ids = [self.device.index] if self.device.type == "cuda" else None
                keep_grad_strides(net)
                self.wrapped[name] = nn.parallel.DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def net(self, name: str) -> nn.Module:
        """The module to call: the DDP wrapper while this network trains, the raw module otherwise
        (a frozen network then neither syncs nor needs its gradients)."""
        module = self.wrapped[name] if self.distributed and name in self._training else self.nets[name]
        if name in self.compiled and name in self._training:
            return _EagerOnInputGrad(module)
        return module

    @contextlib.contextmanager
    def phase(self, *training: str):
        """Only the named networks get gradients inside this block; the others are frozen."""
        previous = self._training
        self._training = training
        for name, net in self.nets.items():
            net.requires_grad_(name in training)
        try:
            yield
        finally:
            self._training = previous

    def step(self, loss: torch.Tensor, *names: str) -> bool:
        """Backward `loss` and step the named optimizers, unless a gradient or the loss is not finite,
        in which case the step is skipped and counted (weights stay as they were)."""
        self.scaler.scale(loss).backward()
        params = [p for n in names for g in self.optimizers[n].param_groups for p in g["params"] if p.grad is not None]
        finite_t = torch.isfinite(loss).all()
        if params and self.precision != "fp16":  # one device sync for the loss and all gradients together
            finite_t = finite_t & torch.isfinite(torch.stack(torch._foreach_norm([p.grad for p in params]))).all()
        finite = bool(finite_t)
        if self.distributed and self.precision != "fp16":  # every rank must take the same decision
            flag = torch.tensor([float(finite)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite and self.precision != "fp16":
            self.skipped_steps += 1
            self.consecutive_bad += 1
            for n in names:
                self.optimizers[n].zero_grad(set_to_none=True)
            return False
        for n in names:
            self.scaler.step(self.optimizers[n])  # with fp16 the scaler itself skips non-finite steps
            self.optimizers[n].zero_grad(set_to_none=True)
        self.scaler.update()
        self.consecutive_bad = 0
        return True

    def fuse_optimizers(self) -> list[str]:
        """Rebuild the not yet stepped Adam/AdamW optimizers with fused kernels where the device has them: the
        same update rule, one kernel per step instead of a pass per parameter and operation. Returns the names
        of the optimizers switched. Call after the method made its optimizers and before any step or resume."""
        switched = []
        for name, opt in self.optimizers.items():
            if type(opt) not in (torch.optim.Adam, torch.optim.AdamW) or opt.state:
                continue
            if any(g.get("fused") or g.get("differentiable") for g in opt.param_groups):
                continue
            drop = ("foreach", "fused")
            groups = [{k: v for k, v in g.items() if k not in drop} for g in opt.param_groups]
            defaults = {k: v for k, v in opt.defaults.items() if k not in drop}
            try:
                self.optimizers[name] = type(opt)(groups, **defaults, fused=True)
            except (RuntimeError, ValueError, TypeError) as err:  # a device or dtype without a fused kernel
                log.info("optimizer %s stays unfused: %s", name, err)
                continue
            switched.append(name)
        return switched

    def all_reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world


def init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = resolve_device(device_name)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device

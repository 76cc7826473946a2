"""What a method needs from the machine during a step: device, precision, DDP, and safe optimizer steps.

Methods write their losses once; the engine makes the same code run on CPU or GPU, in fp32, bf16 or
fp16, in one process or under torchrun/DDP.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class Engine:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    rank: int = 0
    world: int = 1
    nets: dict[str, nn.Module] = field(default_factory=dict)  # raw modules, by name
    wrapped: dict[str, nn.Module] = field(default_factory=dict)  # DDP wrappers when distributed
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    skipped_steps: int = 0
    consecutive_bad: int = 0
    _training: tuple[str, ...] = ()

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 needs a CUDA device; use bf16 on CPU")
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
                self.wrapped[name] = nn.parallel.DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def net(self, name: str) -> nn.Module:
        """The module to call: the DDP wrapper while this network trains, the raw module otherwise
        (a frozen network then neither syncs nor needs its gradients)."""
        if self.distributed and name in self._training:
            return self.wrapped[name]
        return self.nets[name]

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
        finite = bool(torch.isfinite(loss).all())
        if finite and params and self.precision != "fp16":
            norms = torch._foreach_norm([p.grad for p in params])
            finite = bool(torch.isfinite(torch.stack(norms)).all())
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

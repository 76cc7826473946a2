"""The contract between a method and the shared training loop, checkpoints and translation."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import resolve_method_config
from ..engine import Engine
from ..nets.layers import count_parameters
from .context import RunContext


def linear_decay_lr(lr: float, step: int, total: int, decay_fraction: float) -> float:
    """Constant, then linear decay towards 0 over the last `decay_fraction` of `total` steps (the schedule of
    pytorch-CycleGAN-and-pix2pix and CUT), computed from the step number alone (exact on resume). Steps
    0 .. total - 1 all get a positive rate: the last lr / (decaying steps + 1)."""
    start = int(total * (1 - decay_fraction))
    if step < start or total <= start:
        return lr
    return lr * max(0.0, 1 - (step - start + 1) / (total - start + 1))


class LinearDecayLR:
    """For a method whose settings have `lr` and `decay_fraction`: every optimizer's rate from
    `linear_decay_lr` over the run's steps (`RunContext.total_steps`, what the loop runs)."""

    def lr_at(self, step: int) -> float:
        return linear_decay_lr(self.settings.lr, step, self.context.total_steps, self.settings.decay_fraction)

    def set_lr(self, step: int) -> float:
        """Set the rate of `step` in every optimizer; returns it."""
        lr = self.lr_at(step)
        for opt in self.engine.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        return lr


class Method(nn.Module):
    """One training recipe. A subclass sets:

    - `name`, `data_kind` (the batch source it wants: see `shapetex.data.SOURCE_BUILDERS`),
    - `Settings` (its settings dataclass) and `defaults` (the values of the fields it leaves None or "auto",
      from the typed settings and the run context: size- and batch-dependent defaults),
    - trained networks as attributes listed in `trained`, EMA copies listed in `ema_of` {copy: source},
    - `make_optimizers()`, `train_step(batch, step)`, `translate(x, z)`,
    and may override the hooks below, each declared here with its default: `monitors` (held-out scores for
    metrics.jsonl, named in `monitor_keys`), `summary` (what summary.md says about them), `sample_columns` (the
    sample grid), `ema_beta` (the EMA decay, for methods with `ema_of`).

    It is built from its resolved settings and a `RunContext` (`methods.build_method` does both), never from
    the RunConfig. It never owns a loop: `shapetex.train` calls `train_step` and the hooks, and does everything
    else; the loop never names a method's log keys.
    """

    name = "base"
    data_kind = "unpaired"
    sample_key = "shape"  # the held-out batch that sample grids translate
    flip_together = False  # paired data: flip input and target together
    load_ratio = 1.0  # data.load_size when not given, as a multiple of data.size (1: no random-crop jitter)
    trained: tuple[str, ...] = ()
    ema_of: dict[str, str] = {}
    # the keys `monitors` returns, each a whole key or the start of keys (cycle_l1_ for cycle_l1_A, cycle_l1_B):
    # how the default `summary` tells the monitors from the other logged values
    monitor_keys: tuple[str, ...] = ()
    # translate in NHWC (channels_last) when it runs in bf16 on a CPU: faster for some networks, slower for others
    # (benchmarks/speed.py's translation rows), so each method says which it is
    bf16_cpu_channels_last: bool = False

    Settings: type = object
    # ranges of settings whose type alone lets through values that crash or exhaust memory (a negative or
    # 10^8-wide layer): setting -> (least, most)
    limits: dict[str, tuple[int, int]] = {}

    def __init__(self, settings: Any, context: RunContext, engine: Engine | None = None):
        super().__init__()
        self.settings = settings
        self.context = context
        self.engine = engine or Engine()

    # ---- settings ------------------------------------------------------------------------------
    @classmethod
    def defaults(cls, s: Any, context: RunContext) -> dict[str, Any]:
        """Values for the settings left None or "auto" (the typed settings `s` and the run's context decide)."""
        return {}

    @classmethod
    def resolve_settings(cls, model: dict[str, Any], context: RunContext) -> Any:
        """The typed settings of a run's `model` dict: every value checked, every automatic default filled in."""
        return resolve_method_config(cls.Settings, model, lambda s: cls.defaults(s, context), cls.limits)

    @classmethod
    def variant(cls, s: Any, context: RunContext) -> type[Method]:
        """The class that trains these settings on this data (a method name may stand for several models)."""
        return cls

    # ---- what subclasses provide -------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def translate(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    # ---- hooks with defaults ---------------------------------------------------------------------
    def monitors(self, holdout: dict[str, torch.Tensor]) -> dict[str, float]:
        """Scores on the held-out batch (float images on the device), logged at train.monitor_every."""
        return {}

    def summary(self, run_dir, rows: list[dict]) -> str:
        """summary.md's text about this run's monitors (rows: metrics.jsonl's, in file order)."""
        from ..run_summary import data_settings, monitor_summary

        return monitor_summary(rows, data_settings(Path(run_dir)), keys=self.monitor_keys)

    @torch.no_grad()
    def sample_columns(self, holdout: dict[str, torch.Tensor], samples: int, seed: int) -> list[torch.Tensor]:
        """Columns of a sample grid, float [-1, 1] CPU tensors: the inputs, then one output per fixed z."""
        engine = self.engine
        x = engine.prepare_images(holdout[self.sample_key][:8])
        columns = [x]
        gen = torch.Generator().manual_seed(seed)
        for _ in range(samples if self.z_dim else 1):
            z = self.sample_z(x.shape[0], gen, engine.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # fixed noise inputs, so grids over time are comparable
                columns.append(self.translate(x, z))
        return [c.float().cpu() for c in columns]

    def ema_beta(self, images_seen: int, global_batch: int) -> float:
        """The EMA copies' decay per step (only called for methods with `ema_of`)."""
        return 0.999

    @property
    def z_dim(self) -> int:
        """Size of the latent that gives several outputs per input (0: the method is deterministic)."""
        return 0

    @property
    def input_multiple(self) -> int:
        """Input sides must be a multiple of this at translation time."""
        return 1

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    # ---- shared machinery ----------------------------------------------------------------------
    def setup_training(self) -> None:
        """Create EMA copies, move to the device, wrap for DDP, build optimizers."""
        self.make_ema_copies()
        self.engine.register({n: getattr(self, n) for n in self.trained})
        for n in self.trained:  # the engine may have replaced a module (SyncBatchNorm conversion)
            setattr(self, n, self.engine.nets[n])
        for ema_name in self.ema_of:
            getattr(self, ema_name).to(self.engine.device)
        self.engine.optimizers = self.make_optimizers()

    def make_ema_copies(self) -> None:
        """An EMA copy (eval mode, no gradients) of each network in `ema_of` that has none yet: a copy of its
        source, for training to average into or a checkpoint to load."""
        for ema_name, src in self.ema_of.items():
            if getattr(self, ema_name, None) is None:
                setattr(self, ema_name, copy.deepcopy(getattr(self, src)).eval().requires_grad_(False))

    @torch.no_grad()
    def update_ema(self, beta: float) -> None:
        for ema_name, src in self.ema_of.items():
            ema, net = getattr(self, ema_name), getattr(self, src)
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p.detach(), 1.0 - beta)
            for b_ema, b in zip(ema.buffers(), net.buffers()):
                b_ema.copy_(b)

    def networks(self) -> dict[str, nn.Module]:
        """Everything that is saved: trained networks and their EMA copies."""
        names = list(self.trained) + list(self.ema_of)
        return {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per trained network (a tensor shared by two networks counted in both)."""
        return {n: count_parameters(getattr(self, n)) for n in self.trained if getattr(self, n, None) is not None}

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor | None:
        if not self.z_dim:
            return None
        z = torch.randn(n, self.z_dim, generator=generator)
        return z.to(device or self.engine.device)

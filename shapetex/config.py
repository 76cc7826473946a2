"""Typed run configuration: dataclasses with working defaults, YAML files and `key=value` overrides.

A run is described by one `RunConfig`. The method's own settings live in `RunConfig.model`, a dict
that the chosen method turns into its own dataclass (so every method keeps its settings in its file).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    source: str = "builtin"  # builtin | folders | paired | domains
    shape: str | None = None  # folder fed to the encoder (unpaired methods)
    texture: str | None = None  # folder the discriminator sees as real
    paired: str | None = None  # paired data: AB images side by side, or a folder holding A/ and B/
    direction: str = "AtoB"  # for paired data: which half is the input
    domains: list[str] = field(default_factory=list)  # one folder per domain (multi-domain methods)
    size: int = 64  # training resolution (square)
    flip: bool = True  # random horizontal flips
    builtin_count: int = 2000  # images per set for the built-in procedural data
    max_images: int = 0  # cut every set to this many images (0: all); the dataset-size experiment uses it
    texture_from_shape: bool = False  # unpaired data: the shape set is the texture set too (the GAN-vs-AE test)
    holdout: int = 0  # folders: the last N images of each set are held out of training (monitors, samples)
    preload_limit_mb: int = 2048  # decode everything into memory when it fits, else decode per batch
    workers: int = 0  # loader processes for data decoded per batch
    cache_mb: int = 256  # data decoded per batch: memory LRU of decoded images, per process (0: off)
    cache_dir: str | None = None  # ... and a folder where decoded images are kept on disk, shared by all processes
    max_pixels: int = 40_000_000  # refuse images whose header declares more (width x height), before decoding


@dataclass
class TrainConfig:
    budget: int = 20_000  # training length in images shown to the discriminator
    batch: int = 8  # global batch (all processes together)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 only on CUDA, with a loss scaler)
    channels_last: bool = False
    threads: int = 0  # CPU threads (0: PyTorch's default, at most the physical cores this process may use)
    fused_optimizers: bool = True  # Adam/AdamW as fused kernels where the device has them (same update rule)
    compile: bool = False  # torch.compile the trained networks (needs a C++ compiler on CPU, Triton on GPU)
    log_every: int = 1_000  # images between metrics-log lines
    sample_every: int = 5_000  # images between sample grids
    checkpoint_every: int = 5_000  # images between checkpoints
    keep_checkpoints: int = 3
    samples_per_input: int = 4  # z samples per input in sample grids
    monitor_every: int = 2_000  # images between condition-monitor evaluations (0: off)
    max_bad_steps: int = 20  # consecutive non-finite steps before training stops


@dataclass
class RunConfig:
    method: str = "adversarial"
    out: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: dict[str, Any] = field(default_factory=dict)  # the method's own settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return from_dict(cls, d)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        text = path.read_text()
        d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text) or {}
        return cls.from_dict(d)


def from_dict(cls: type, d: dict[str, Any]):
    """Build dataclass `cls` from a plain dict, refusing unknown keys (a typo must not pass silently)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for key, value in d.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = from_dict(tp, value)
        kwargs[key] = value
    return cls(**kwargs)


def _parse_value(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_value(text, inner[0])
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if tp is int:
        return int(float(text)) if "e" in text.lower() else int(text)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    if origin is list:
        return [_parse_value(t, args[0]) for t in text.split(",") if t]
    return yaml.safe_load(text)


def apply_override(cfg: Any, key: str, text: str) -> None:
    """Set `section.field=value` on a dataclass tree; `model.*` keys go into the method's dict as YAML."""
    parts = key.split(".")
    target = cfg
    for part in parts[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(part, {})
        elif hasattr(target, part):
            target = getattr(target, part)
        else:
            raise ValueError(f"unknown setting {key!r}")
    last = parts[-1]
    if isinstance(target, dict):
        target[last] = yaml.safe_load(text)
        return
    if not dataclasses.is_dataclass(target) or last not in {f.name for f in dataclasses.fields(target)}:
        raise ValueError(f"unknown setting {key!r}")
    tp = typing.get_type_hints(type(target))[last]
    setattr(target, last, _parse_value(text, tp))


def resolve_method_config(cls: type, settings: dict[str, Any], **auto: Any):
    """Method settings dataclass from the run's dict; fields left None take the size-dependent `auto` values."""
    obj = from_dict(cls, settings)
    for key, value in auto.items():
        if getattr(obj, key) is None:
            setattr(obj, key, value)
    return obj

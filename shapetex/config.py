"""Typed run configuration: dataclasses with working defaults, YAML files and `key=value` overrides.

A run is described by one `RunConfig`. The method's own settings live in `RunConfig.model`, a plain dict (so a
run folder's saved settings, `run.Run.config`, stay one format for every method);
`shapetex.methods.resolve_settings` turns it into the method's typed dataclass, once, with its size-dependent
defaults (every method keeps its settings in its file).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .run import CONFIG

# data.preprocess, named as the reference's --preprocess: how images are brought to the training crops
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width_and_crop")
# data.builtin_task (shapetex.data.builtin.TASKS; kept here so the settings need not import the renderer)
BUILTIN_TASKS = ("colours", "stripes")
# train.device (and --device): the devices shapetex runs on; whether one is present is engine.resolve_device's
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass
class DataConfig:
    source: str = "builtin"  # builtin | folders | paired | domains
    shape: str | None = None  # folder fed to the encoder (unpaired methods)
    texture: str | None = None  # folder the discriminator sees as real
    paired: str | None = None  # paired data: AB images side by side, or a folder holding A/ and B/
    direction: str = "AtoB"  # for paired data: which half is the input
    domains: list[str] = field(default_factory=list)  # one folder per domain (multi-domain methods)
    size: int = 64  # training resolution: the side of the random crops (their height when data.width is set)
    width: int | None = None  # width of the training crops (None: data.size, square)
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop (no resize: patches) | scale_width_and_crop
    load_size: int | None = None  # resize to this, then random-crop to data.size (None: the method's; docs/data.md)
    flip: bool = True  # random horizontal flips
    builtin_count: int = 2000  # images per set for the built-in procedural data
    builtin_task: str = "colours"  # built-in data: colours (warm -> cool fills) | stripes (plain -> striped)
    max_images: int = 0  # cut every set to this many images (0: all); the dataset-size experiment uses it
    texture_from_shape: bool = False  # unpaired data: the shape set is the texture set too (the GAN-vs-AE test)
    holdout: int = 0  # folders: the last N images of each set are held out of training (monitors, samples)
    holdout_folders: list[str] = field(default_factory=list)  # held-out images: one folder per domain, or one of pairs
    preload_limit_mb: int = 2048  # decode everything into memory when it fits, else decode per batch
    workers: int = 0  # loader processes for data decoded per batch
    cache_mb: int = 256  # data decoded per batch: memory LRU of decoded images, per process (0: off)
    cache_dir: str | None = None  # ... and a folder where decoded images are kept on disk, shared by all processes
    max_pixels: int = 40_000_000  # refuse images whose header declares more (width x height), before decoding

    def validate(self) -> None:
        d = self
        if d.builtin_task not in BUILTIN_TASKS:
            raise ConfigError(f"data.builtin_task must be one of {', '.join(BUILTIN_TASKS)}, not {d.builtin_task!r}")
        if d.preprocess not in PREPROCESS_MODES:
            raise ConfigError(f"data.preprocess must be one of {', '.join(PREPROCESS_MODES)}, not {d.preprocess!r}")
        if d.width is not None and d.width < 1:
            raise ConfigError(f"data.width must be at least 1 (or none: square crops), not {d.width}")
        if d.load_size is not None:
            if d.preprocess == "crop":
                raise ConfigError(f"data.load_size {d.load_size} with data.preprocess crop: crop mode does not resize "
                                  "(it crops the images at their own size); drop the load size or pick "
                                  "resize_and_crop")
            if d.load_size < d.size:
                raise ConfigError(f"data.load_size must be at least data.size ({d.size}), not {d.load_size}: images "
                                  "are resized to the load size, then cropped to the size")
        if d.holdout > 0 and d.holdout_folders:
            raise ConfigError(f"data.holdout {d.holdout} and held-out folders ({', '.join(d.holdout_folders)}) both "
                              "given: --set data.holdout=0 to hold out those folders, or --set data.holdout_folders= "
                              "to hold out the last images of the training folders")


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
    max_minutes: float = 0.0  # stop after this much training time (minutes, summed over resumes; 0: no cap)


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
        """A YAML (or .json) settings file; every value is checked against its setting's type."""
        path = Path(path)
        text = read_settings_text(path)
        try:
            d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)  # safe: no tags run code
        except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
            raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                              f"{' '.join(str(e).split())}") from None
        if path.name == CONFIG:  # a run's saved settings (or a checkpoint's copy)
            _upgrade_run_settings(d)
        try:
            return cls.from_dict({} if d is None else d)  # an empty file: all defaults
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def validate(self) -> RunConfig:
        """Refuse values of the right type that still cannot work (checked once all flags are applied)."""
        for key, value, low in (("train.batch", self.train.batch, 1), ("train.budget", self.train.budget, 1),
                                ("data.size", self.data.size, 1), ("data.max_pixels", self.data.max_pixels, 1),
                                ("data.workers", self.data.workers, 0), ("train.threads", self.train.threads, 0),
                                ("train.samples_per_input", self.train.samples_per_input, 1),
                                ("train.max_minutes", self.train.max_minutes, 0), ("train.seed", self.train.seed, 0)):
            if value < low:
                raise ConfigError(f"{key} must be at least {low}, not {value}")
        if not DEVICE.fullmatch(self.train.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, not {self.train.device!r}")
        self.data.validate()
        return self


class ConfigError(UserError, ValueError):
    """A setting or a command-line flag with a value that cannot be used; the message names the setting, the value
    and what it wants. A ValueError too, for code that catches those."""


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


MAX_SETTINGS_BYTES = 1 << 20  # a settings file is a few KB; more is a wrong path (a device, a data file)


def read_settings_text(path: Path) -> str:
    """The text of a settings file; a device, FIFO or huge file is refused before reading (/dev/zero would
    read until out of memory, a FIFO would block forever)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: not a regular file; give a YAML or JSON settings file")
    if st.st_size > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: {st.st_size:,} bytes is too large for a settings file (at most "
                          f"{MAX_SETTINGS_BYTES:,}); give a YAML or JSON settings file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:  # a binary file given as settings (a ValueError, so it needs saying here)
        raise ConfigError(f"{path}: not text ({e.reason} at byte {e.start}); give a YAML or JSON settings "
                          "file") from None


def _upgrade_run_settings(d: Any) -> None:
    """A run folder's saved settings written before data.builtin_task existed trained on the stripes task (the
    only built-in data then): it keeps meaning that, though the default is now the colours task."""
    data = d.get("data") if isinstance(d, dict) else None
    if isinstance(data, dict) and data.get("source", "builtin") == "builtin" and "builtin_task" not in data:
        data["builtin_task"] = "stripes"


def from_dict(cls: type, d: Any, prefix: str = ""):
    """Build dataclass `cls` from a plain dict, refusing unknown keys (a typo must not pass silently) and
    converting each value to its field's declared type (see `coerce`). `prefix` names the section in errors."""
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the settings'}: expected a mapping of settings, "
                          f"not {type(d).__name__} {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {prefix.rstrip('.') or cls.__name__} settings: {sorted(map(str, unknown))}; "
                          f"known: {sorted(names)}")
    return cls(**{key: coerce(value, hints[key], prefix + key) for key, value in d.items()})


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "true or false (yes/no, 1/0)"
    if tp in (int, float, str):
        return {int: "a whole number", float: "a number", str: "text"}[tp]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (list, tuple):
        return "a list (YAML list, or comma-separated)"
    if typing.get_origin(tp) is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` (from YAML, JSON or a --set string) as type `tp`; ConfigError naming `key` when it is not one.
    YAML reads `1e-3` as text and `'no'` stays text: both must still become the number and the boolean."""
    def refuse():
        return ConfigError(f"setting {key}: {value!r} is not {_type_name(tp)}")

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for inner in (a for a in args if a is not type(None)):
            try:
                return coerce(value, inner, key)
            except ConfigError:
                pass
        raise refuse()
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, prefix=key + ".")
    text = value.strip() if isinstance(value, str) else None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise refuse()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = value if isinstance(value, float) else None
        if text is not None:
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)  # 2e4
                except ValueError:
                    pass
        if number is not None and math.isfinite(number) and number.is_integer():
            return int(number)
        raise refuse()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text)
            except ValueError:
                pass
        raise refuse()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise refuse()
    if origin in (list, tuple):
        if text is not None:
            items = [t.strip() for t in text.split(",") if t.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise refuse()
        item = args[0] if args else Any
        out = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(items)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise refuse()
        vt = args[1] if len(args) == 2 else Any
        return {k: coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    return value


def apply_override(cfg: Any, key: str, text: str) -> None:
    """Set `section.field=value` on a dataclass tree; `model.*` keys go into the method's dict as YAML, typed
    against the method's settings by `shapetex.methods.resolve_settings` (the command line calls it before a
    run starts)."""
    parts = key.split(".")
    target = cfg
    for part in parts[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(part, {})
        elif hasattr(target, part):
            target = getattr(target, part)
        else:
            raise ConfigError(f"unknown setting {key!r}")
    last = parts[-1]
    if isinstance(target, dict):
        try:
            target[last] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}={text}: not a YAML value ({' '.join(str(e).split())})") from None
        return
    if not dataclasses.is_dataclass(target) or last not in {f.name for f in dataclasses.fields(target)}:
        raise ConfigError(f"unknown setting {key!r}")
    tp = typing.get_type_hints(type(target))[last]
    setattr(target, last, coerce(text, tp, key))


def resolve_method_config(cls: type, settings: dict[str, Any], defaults=None,
                          limits: dict[str, tuple[int, int]] | None = None):
    """Method settings dataclass `cls` from the run's `model` dict, every value checked against its type; then
    fields left None (or "auto": a text setting whose values include "none", which would read as None) take
    `defaults(typed settings)`: size- and batch-dependent defaults, computed from the typed values, never from
    the raw dict. Numbers named in `limits` must lie in their (low, high) range."""
    obj = from_dict(cls, settings, prefix="model.")
    for key, value in (defaults(obj) if defaults else {}).items():
        if getattr(obj, key) is None or getattr(obj, key) == "auto":
            setattr(obj, key, value)
    for key, (low, high) in (limits or {}).items():
        value = getattr(obj, key)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"model.{key} must be from {low} to {high}, not {value}")
    return obj

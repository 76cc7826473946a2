"""Checkpoints that load without unpickling: tensors in safetensors, everything else in JSON.

<run>/checkpoints/ckpt-<images seen, 10 digits>/     (the folder: `run.Run.checkpoints`)
    weights.safetensors   every network, keys "<net>.<param>" (EMA copies included)
    optim.safetensors     optimizer tensors, keys "<opt>.<param index>.<state key>"
    state.json            counters, optimizer hyper-parameters and scalar state, loss-scaler state
    (run.CONFIG)          the run's configuration when this checkpoint was written, named as the run's
    complete.json         written last: every other file and its size; a folder without it is incomplete
A checkpoint is written and fsynced in `.tmp-ckpt-*`, then renamed into place; a checkpoint it replaces is
first renamed to `.old-ckpt-*` and deleted only after the new one is in place, and pruned ones are renamed
to `.del-ckpt-*` before deletion. So at every instant the newest complete checkpoint exists under its own
name or, killed between two renames, as a complete `.tmp-`/`.old-` folder that `recover` puts back.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .data.images import DataError
from .run import CONFIG, Run
from .runlog import read_json_object

log = logging.getLogger(__name__)

PREFIX = "ckpt-"
MANIFEST = "complete.json"


class CheckpointWriteError(DataError):
    """A checkpoint could not be written (disk full, permissions): nothing half-written is left behind."""


def _after(point: str) -> None:
    """Called between the write steps of save_checkpoint; tests replace it to simulate a kill at `point`."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    prefix = name + "."
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, skey = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[skey] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(run_dir: str | Path, nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    counters: dict[str, Any], keep: int = 3, extra: dict[str, Any] | None = None,
                    config: dict[str, Any] | None = None) -> Path:
    ckpt_root = Run(run_dir).checkpoints
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{int(counters['images_seen']):010d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    try:
        _write_folder(tmp, nets, optimizers, counters, extra, config)
    except (OSError, SafetensorError) as e:  # e.g. ENOSPC (safetensors reports it as its own error, not an
        # OSError): remove the partial copy, or it keeps the disk full for every retry
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"could not write checkpoint {final}: {e}; free the space (or fix the "
                                   f"folder's permissions), then continue with --resume {run_dir}") from e
    old = ckpt_root / f".old-{final.name}-{os.getpid()}"
    if final.exists():  # the same point saved again: keep the old copy until the new one is in place
        os.replace(final, old)
        _after("old-aside")
    os.replace(tmp, final)
    _fsync(ckpt_root)
    _after("renamed-in")
    shutil.rmtree(old, ignore_errors=True)
    for stale in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        _remove(stale)
    return final


def _write_folder(tmp: Path, nets, optimizers, counters, extra, config) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {f"{n}.{k}": v.detach().cpu().contiguous()
               for n, net in nets.items() for k, v in net.state_dict().items()}
    save_file(weights, str(tmp / "weights.safetensors"))
    _after("weights")
    opt_tensors, opt_meta = {}, {}
    for name, opt in optimizers.items():
        t, m = _flatten_optimizer(name, opt)
        opt_tensors.update(t)
        opt_meta[name] = m
    if opt_tensors:
        save_file(opt_tensors, str(tmp / "optim.safetensors"))
        _after("optim")
    state = {"counters": counters, "optimizers": opt_meta, **(extra or {})}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if config is not None:
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    _after("state")
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    for name in files:
        _fsync(tmp / name)
    (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=1))
    _fsync(tmp / MANIFEST)
    _fsync(tmp)
    _after("manifest")


def _remove(folder: Path) -> None:
    """Delete a checkpoint so that a kill midway leaves no `ckpt-*` folder with files missing."""
    doomed = folder.with_name(f".del-{folder.name}-{os.getpid()}")
    os.replace(folder, doomed)
    _after("pruned-aside")
    shutil.rmtree(doomed, ignore_errors=True)


def is_complete(ckpt: Path, legacy: bool = True) -> bool:
    """Every file the manifest names is there with its size. With `legacy`, a folder from before manifests
    counts when it has its weights, its state and, once the run has taken a step, optim.safetensors."""
    manifest = ckpt / MANIFEST
    if manifest.exists() or not legacy:
        try:
            files = json.loads(manifest.read_text())["files"]
            return all((ckpt / n).is_file() and (ckpt / n).stat().st_size == size for n, size in files.items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return False
    try:
        state = json.loads((ckpt / "state.json").read_text())
        stepped = bool(state.get("optimizers")) and state["counters"].get("step", 0) > 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return (ckpt / "weights.safetensors").is_file() and (not stepped or (ckpt / "optim.safetensors").is_file())


def incomplete_checkpoints(run_dir: str | Path) -> list[Path]:
    root = Run(run_dir).checkpoints
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and not is_complete(p))


def recover(run_dir: str | Path) -> list[str]:
    """Finish what a killed save left: put back a complete `.tmp-`/`.old-` copy whose checkpoint is missing or
    incomplete (the newer `.tmp-` first), delete the other leftovers. Returns a line per action."""
    root = Run(run_dir).checkpoints
    if not root.is_dir():
        return []
    lines = []
    leftovers = sorted((p for p in root.iterdir() if p.name.startswith((".tmp-", ".old-", ".del-"))),
                       key=lambda p: (not p.name.startswith(".tmp-"), p.name))
    for p in leftovers:
        kind, rest = p.name[1:4], p.name[5:]
        final = root / rest.rsplit("-", 1)[0]
        if kind != "del" and final.name.startswith(PREFIX) and is_complete(p, legacy=False) \
                and not is_complete(final):
            if final.exists():
                _remove(final)
            os.replace(p, final)
            lines.append(f"restored checkpoint {final} from {p.name} (left there by a killed save)")
        else:
            shutil.rmtree(p, ignore_errors=True)
            lines.append(f"removed {p} (left there by an interrupted save)")
    if lines:
        _fsync(root)
    return lines


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    root = Run(run_dir).checkpoints
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and is_complete(p))


def find_checkpoint(path: str | Path) -> Path:
    """A run folder (its newest complete checkpoint) or a checkpoint folder itself."""
    path = Path(path)
    if (path / "state.json").exists() and (path / "weights.safetensors").exists():
        if not is_complete(path):
            run = Run.of_checkpoint(path).path
            raise DataError(f"checkpoint {path} is incomplete (files missing; a save was interrupted): use "
                            f"another checkpoint of the run, or the run folder {run} for its newest")
        return path
    found = list_checkpoints(path)
    if not found:
        from .downloads.registry import downloaded_model

        # not a run folder: perhaps a pretrained model's name (`shapetex download model NAME`)
        model = None if Run(path).checkpoints.exists() else \
            downloaded_model(str(path), ready=lambda run: bool(list_checkpoints(run)))
        if model is not None:
            return find_checkpoint(model)
        broken = incomplete_checkpoints(path)
        if broken:  # say which folders are there but damaged, not just "none"
            raise DataError(f"no complete checkpoint in {path}: {', '.join(str(b) for b in broken)} "
                            "incomplete or damaged (files missing or not the size its complete.json lists); "
                            "pick another checkpoint or retrain")
        raise FileNotFoundError(f"no checkpoint in {path} (expected {Run(path).checkpoints}/{PREFIX}*/)")
    return found[-1]


def config_path(checkpoint: Path) -> Path:
    """The configuration a checkpoint was trained with: its own copy, else (older runs) the run's."""
    own = checkpoint / CONFIG
    return own if own.exists() else Run.of_checkpoint(checkpoint).config


def load_checkpoint(ckpt: str | Path, nets: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None, strict: bool = True) -> dict:
    """Load weights (and optimizer state when given) in place; returns the JSON state."""
    ckpt = Path(ckpt)
    if not is_complete(ckpt):
        raise DataError(f"checkpoint {ckpt} is incomplete (files missing; a save was interrupted): use another "
                        "checkpoint of the run")
    state = read_state(ckpt)
    weights = load_file(str(ckpt / "weights.safetensors"))
    _refuse_non_finite(ckpt, "weights.safetensors", weights)
    for name, net in nets.items():
        prefix = name + "."
        sd = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        if not sd:
            if strict:
                raise KeyError(f"checkpoint {ckpt} has no weights for network {name!r}")
            continue
        try:
            net.load_state_dict(sd, strict=strict)
        except RuntimeError as e:  # other shapes: trained at another size or with other network settings
            detail = "; ".join(line.strip() for line in str(e).splitlines()[1:3])
            raise DataError(f"checkpoint {ckpt} does not fit network {name!r} ({detail}): use the size and "
                            f"model settings it was trained with (its {CONFIG})") from None
    if optimizers:
        opt_file = ckpt / "optim.safetensors"
        tensors = load_file(str(opt_file)) if opt_file.exists() else {}
        _refuse_non_finite(ckpt, opt_file.name, tensors)
        for name, opt in optimizers.items():
            _load_optimizer(ckpt, name, opt, tensors, state)
    return state


def read_state(ckpt: Path) -> dict:
    """state.json as a JSON object; a crafted or damaged one is a DataError naming the file."""
    return read_json_object(ckpt / "state.json", "the checkpoint's state",
                            "the checkpoint is damaged; use another checkpoint of the run")


# counters a resume continues from: name -> the least value a real run writes
RESUME_COUNTERS = {"step": 0, "images_seen": 0, "global_batch": 1}


def resume_counters(ckpt: Path, state: dict) -> dict:
    """The state's counters, checked before a resume uses them: whole numbers where the trainer counts, a
    finite number of seconds."""
    def refuse(what: str) -> DataError:
        return DataError(f"{ckpt / 'state.json'}: {what}, so the run cannot continue from {ckpt.name}: use another "
                         f"checkpoint of the run (delete this folder) or train anew")

    counters = state.get("counters")
    if not isinstance(counters, dict):
        raise refuse("no counters (step, images seen)")
    for key, low in {**RESUME_COUNTERS, "skipped_steps": 0}.items():
        value = counters.get(key, 0 if key == "skipped_steps" else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise refuse(f"counter {key} is {value!r}, not a whole number of at least {low}")
    seconds = counters.get("train_seconds", 0.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < float("inf"):
        raise refuse(f"train_seconds is {seconds!r}, not a number of seconds")
    return counters


def _refuse_non_finite(ckpt: Path, file: str, tensors: dict[str, torch.Tensor]) -> None:
    """NaN or Inf weights translate to black images and train on as NaN: refused when loaded."""
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DataError(f"checkpoint {ckpt} holds non-finite values (NaN or Inf) in {file} ({key}): it cannot "
                            "be used; use an earlier checkpoint of the run, or retrain")


def _load_optimizer(ckpt: Path, name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    state: dict) -> None:
    """One optimizer's state, each tensor checked against its parameter's shape: torch's load_state_dict takes
    any shape and the next step fails."""
    def refuse(what: str) -> DataError:
        return DataError(f"checkpoint {ckpt}: optimizer {name!r} {what}: the checkpoint is damaged or from other "
                         "model settings; use another checkpoint of the run, or train anew")

    try:
        loaded = _unflatten_optimizer(name, tensors, state["optimizers"][name])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise refuse(f"state is missing or malformed ({type(e).__name__}: {e})") from None
    params = [p for group in opt.param_groups for p in group["params"]]
    for pid, values in loaded["state"].items():
        if not 0 <= pid < len(params):
            raise refuse(f"has state for parameter {pid} of {len(params)}")
        for key, value in values.items():
            if torch.is_tensor(value) and value.ndim and value.shape != params[pid].shape:
                raise refuse(f"{key} of parameter {pid} has shape {tuple(value.shape)}, the parameter "
                             f"{tuple(params[pid].shape)}")
    try:
        opt.load_state_dict(loaded)
    except (KeyError, TypeError, ValueError) as e:
        raise refuse(f"does not load ({type(e).__name__}: {e})") from None

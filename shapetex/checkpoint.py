"""Checkpoints that load without unpickling: tensors in safetensors, everything else in JSON.

runs/<name>/checkpoints/ckpt-<images seen, 10 digits>/
    weights.safetensors   every network, keys "<net>.<param>" (EMA copies included)
    optim.safetensors     optimizer tensors, keys "<opt>.<param index>.<state key>"
    state.json            counters, optimizer hyper-parameters and scalar state, loss-scaler state
A checkpoint is written to a temporary folder and renamed into place, so a killed run never leaves a
half-written one that would be picked up on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

PREFIX = "ckpt-"


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
                    counters: dict[str, Any], keep: int = 3, extra: dict[str, Any] | None = None) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{int(counters['images_seen']):010d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {f"{n}.{k}": v.detach().cpu().contiguous()
               for n, net in nets.items() for k, v in net.state_dict().items()}
    save_file(weights, str(tmp / "weights.safetensors"))
    opt_tensors, opt_meta = {}, {}
    for name, opt in optimizers.items():
        t, m = _flatten_optimizer(name, opt)
        opt_tensors.update(t)
        opt_meta[name] = m
    if opt_tensors:
        save_file(opt_tensors, str(tmp / "optim.safetensors"))
    state = {"counters": counters, "optimizers": opt_meta, **(extra or {})}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").exists())


def find_checkpoint(path: str | Path) -> Path:
    """A run folder (its newest checkpoint) or a checkpoint folder itself."""
    path = Path(path)
    if (path / "state.json").exists() and (path / "weights.safetensors").exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {path} (expected {path}/checkpoints/{PREFIX}*/)")
    return found[-1]


def run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent


def load_checkpoint(ckpt: str | Path, nets: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None, strict: bool = True) -> dict:
    """Load weights (and optimizer state when given) in place; returns the JSON state."""
    ckpt = Path(ckpt)
    state = json.loads((ckpt / "state.json").read_text())
    weights = load_file(str(ckpt / "weights.safetensors"))
    for name, net in nets.items():
        prefix = name + "."
        sd = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        if not sd:
            if strict:
                raise KeyError(f"checkpoint {ckpt} has no weights for network {name!r}")
            continue
        net.load_state_dict(sd, strict=strict)
    if optimizers:
        opt_file = ckpt / "optim.safetensors"
        tensors = load_file(str(opt_file)) if opt_file.exists() else {}
        for name, opt in optimizers.items():
            opt.load_state_dict(_unflatten_optimizer(name, tensors, state["optimizers"][name]))
    return state

"""pytorch-CycleGAN-and-pix2pix's `train.py` flags on `shapetex train`, for hands used to them. A flag that
means the same as a shapetex setting works as an alias; every other one is refused with one line saying the
shapetex way, never silently ignored (a run trained with a flag it ignored would not be the run asked for).
They are hidden from `--help`: shapetex's own flags are the documented way."""

from __future__ import annotations

import argparse

from .config import PREPROCESS_MODES, ConfigError

# the reference's --model names -> shapetex's methods
MODELS = {"cycle_gan": "cyclegan", "pix2pix": "pix2pix"}
# the reference's --preprocess modes shapetex has (data.preprocess), and the way for the others
PREPROCESS_WAYS = {
    "none": "shapetex trains on fixed-size crops, not whole images of any size: --preprocess crop --crop_size N "
            "trains on N px patches of the images at their own size, and translate then translates whole images",
    "scale_width": "shapetex trains on fixed-size crops: --preprocess scale_width_and_crop --load_size W --crop_size N "
                   "scales images to width W and crops N px patches",
}
# flags refused outright: the flag -> the shapetex way
REFUSED = {
    "n_epochs": "shapetex counts training in images shown, not epochs: --budget IMAGES (N epochs of a set of M "
                "images is --budget N*M)",
    "n_epochs_decay": "the learning rate decays over the last fraction of --budget: --set model.decay_fraction=F "
                      "(0.5, the reference's 100 + 100 epochs, is the default)",
    "continue_train": "continue a run with --resume RUN (its folder; the newest checkpoint is taken)",
    "results_dir": "training writes into its run folder (--out); translations go where `shapetex translate "
                   "--out DIR` says",
}


def add_reference_flags(p: argparse.ArgumentParser) -> None:
    hide = argparse.SUPPRESS
    for flag in ("name", "netG", "crop_size", "load_size", "preprocess", "input_nc", "output_nc", "model", *REFUSED):
        kind = {"crop_size": int, "input_nc": int, "output_nc": int, "n_epochs": int, "n_epochs_decay": int,
                "load_size": int}.get(flag, str)
        if flag == "continue_train":
            p.add_argument(f"--{flag}", dest=f"ref_{flag}", action="store_true", help=hide)
        else:
            p.add_argument(f"--{flag}", dest=f"ref_{flag}", type=kind, metavar=flag.upper(), help=hide)


def _given(args: argparse.Namespace, flag: str):
    return getattr(args, f"ref_{flag}", None)


def apply_reference_flags(args: argparse.Namespace) -> None:
    """Turn the aliases into shapetex's flags on `args`; ValueError (one line) for the others. --netG waits
    for the method: see netg_overrides."""
    for flag, way in REFUSED.items():
        value = _given(args, flag)
        if value not in (None, False):
            shown = f"--{flag}" if value is True else f"--{flag} {value}"
            raise ConfigError(f"{shown} is the reference's flag: {way}")
    for flag in ("input_nc", "output_nc"):
        value = _given(args, flag)
        if value is not None and value != 3:
            raise ConfigError(f"--{flag} {value}: shapetex translates RGB images (3 channels; grayscale images are "
                              "read as RGB), there is no other channel count")
    model = _given(args, "model")
    if model is not None:
        if model not in MODELS:
            raise ConfigError(f"--model {model}: shapetex picks a method with --method ({', '.join(MODELS)} are "
                              "the reference's names it knows: cyclegan, pix2pix)")
        _alias(args, "method", MODELS[model], f"--model {model}")
    name = _given(args, "name")
    if name is not None:
        _alias(args, "out", f"runs/{name}", f"--name {name}")
    size = _given(args, "crop_size")
    if size is not None:  # the network's input size: shapetex's training size
        _alias(args, "size", size, f"--crop_size {size}")
    # data.load_size and data.preprocess go in front of the --set list, so that an explicit --set wins
    settings = []
    load = _given(args, "load_size")
    if load is not None:
        settings.append(f"data.load_size={load}")
    mode = _given(args, "preprocess")
    if mode is not None:
        if mode in PREPROCESS_MODES:
            settings.append(f"data.preprocess={mode}")
        else:
            way = PREPROCESS_WAYS.get(mode, f"shapetex has {', '.join(PREPROCESS_MODES)}")
            raise ConfigError(f"--preprocess {mode} is the reference's mode: {way}")
    args.overrides = settings + list(args.overrides or [])


def _alias(args: argparse.Namespace, dest: str, value, given: str) -> None:
    current = getattr(args, dest)
    if current is not None and current != value:
        raise ConfigError(f"{given} means --{dest} {value}, but --{dest} {current} is given too: give one")
    setattr(args, dest, value)


def netg_overrides(args: argparse.Namespace, method: str) -> list[str]:
    """--netG as the method's settings: resnet_Nblocks -> model.t_blocks=N (cyclegan, asymmetric),
    unet_128 / unet_256 -> model.depth=7 / 8 (pix2pix)."""
    net_g = _given(args, "netG")
    if net_g is None:
        return []
    blocks = {"resnet_6blocks": 6, "resnet_9blocks": 9}
    depths = {"unet_128": 7, "unet_256": 8}
    if method in ("cyclegan", "asymmetric") and net_g in blocks:
        return [f"model.t_blocks={blocks[net_g]}"]
    if method == "pix2pix" and net_g in depths:
        return [f"model.depth={depths[net_g]}"]
    if method in ("cyclegan", "asymmetric"):
        way = "its generator is a ResNet: --netG resnet_6blocks | resnet_9blocks (--set model.t_blocks=N)"
    elif method == "pix2pix":
        way = "its generator is the U-Net: --netG unet_128 | unet_256 (--set model.depth=7 | 8)"
    else:
        way = f"{method} has its own generator (`shapetex settings {method}` lists its settings)"
    raise ConfigError(f"--netG {net_g} does not apply to --method {method}: {way}")

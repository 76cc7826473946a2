"""`shapetex import`: a pytorch-CycleGAN-and-pix2pix or CUT generator (`latest_net_G.pth`, or a pretrained model
from their download scripts) as a shapetex run folder, so translate, evaluate, export and `Translator.load` take it.

    shapetex import --pth latest_net_G.pth [--netG resnet_9blocks|resnet_6blocks|unet_128|unet_256]
                    [--method cyclegan|cut|fastcut] [--netD-pth latest_net_D.pth] [--netF-pth latest_net_F.pth]
                    [--reverse-pth latest_net_G_B.pth] [--size 256] [--direction AtoB] --out runs/imported

ResNet generators become a `cyclegan` run, or a `cut` run when they carry CUT's antialiasing filters (its
default; `--method cut|fastcut` for one trained with --no_antialias), U-Nets a `pix2pix` run. The run folder
holds the run's settings and one checkpoint at 0 images; networks no file was given for (the discriminator, CycleGAN's
other direction, CUT's heads) start
from the reference's initialisation and are listed in the checkpoint's state.json under `imported.untrained`.
Reference names to shapetex's, for CycleGAN: G_A (A -> B) is G_AB, G_B is G_BA; the reference's D_A judges
G_A's outputs, i.e. domain B: shapetex's D_B.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ConfigError
from .reference_weights import (
    GENERATORS,
    ReferenceWeightsError,
    infer_generator,
    infer_patch_heads,
    infer_patchgan,
    match_reference,
    read_state_dict,
)


@dataclass
class ImportSettings:
    pth: str  # the generator's state dict
    out: str  # the run folder to write
    net_g: str | None = None  # None: from the keys
    netd_pth: str | None = None  # the discriminator (pix2pix's D; CycleGAN's D judging the generator's outputs)
    reverse_pth: str | None = None  # CycleGAN: the other direction's generator (latest_net_G_B.pth)
    netf_pth: str | None = None  # CUT: the PatchNCE heads (latest_net_F.pth)
    method: str | None = None  # None: from the keys (cut for an antialiased ResNet, cyclegan, pix2pix)
    size: int | None = None  # training size (None: 128 for unet_128 and resnet_6blocks, else 256)
    direction: str = "AtoB"  # pix2pix: which half of AB pairs is the input; CycleGAN: which way --pth translates
    overwrite: bool = False


IMPORT_METHODS = ("cyclegan", "pix2pix", "cut", "fastcut")


def import_method(s: ImportSettings, layout) -> str:
    """The method the generator becomes: --method if it fits the layout, else the layout's own."""
    method = s.method or layout.method
    if method not in IMPORT_METHODS:
        raise ConfigError(f"--method {method}: shapetex imports {', '.join(IMPORT_METHODS)}")
    if (method == "pix2pix") != (layout.method == "pix2pix"):
        raise ReferenceWeightsError(f"{s.pth}: a {layout.net_g} generator cannot be imported as {method} "
                                    f"(U-Nets are pix2pix; ResNets are cyclegan, cut or fastcut)")
    if method == "cyclegan" and layout.antialias:
        raise ReferenceWeightsError(f"{s.pth}: this ResNet has CUT's antialiased sampling (model.N.filt), which "
                                    "CycleGAN's generator lacks: import it with --method cut or fastcut")
    return method


def run_config(s: ImportSettings, layout, method: str, d_layout: tuple[int, int] | None,
               f_units: int | None = None):
    """The RunConfig of the imported run (`method`: from import_method): the reference's architecture as
    shapetex's settings."""
    from .config import DataConfig, RunConfig

    size = s.size or (128 if layout.net_g in ("unet_128", "resnet_6blocks") else 256)
    if s.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"--direction must be AtoB or BtoA, got {s.direction!r}")
    d_layers, d_width = d_layout or (3, 64)  # the reference's default netD basic, ndf 64
    if layout.method == "pix2pix":
        if 2**layout.depth > size:
            raise ConfigError(f"{layout.net_g} halves the image {layout.depth} times: --size must be at least "
                              f"{2**layout.depth}, got {size}")
        model = {"depth": layout.depth, "g_channels": layout.width, "norm": "batch" if layout.batch_norm else
                 "instance", "d_layers": d_layers, "d_channels": d_width}
        data = DataConfig(source="paired", direction=s.direction, size=size)
    elif method in ("cut", "fastcut"):
        model = {"blocks": layout.blocks, "width": layout.width, "antialias": layout.antialias,
                 "d_layers": d_layers, "d_width": d_width, "nce_units": f_units or 256}
        data = DataConfig(source="domains", domains=["A", "B"], size=size)
    else:
        model = {"t_blocks": layout.blocks, "t_width": layout.width, "d_layers": d_layers, "d_width": d_width}
        data = DataConfig(source="domains", domains=["A", "B"], size=size)  # the reference's trainA / trainB
    return RunConfig(method=method, out=s.out, data=data, model=model).validate()


def _named(path, fn, *args):
    try:
        return fn(*args)
    except ReferenceWeightsError as e:
        raise ReferenceWeightsError(f"{path}: {e}") from None


def import_reference(s: ImportSettings) -> tuple[Path, list[str]]:
    """Write the run folder; returns the checkpoint and lines that say what was imported and what was not."""
    from . import checkpoint as ckpts
    from .methods import build_method
    from .run import Run
    from .run_folder import RunLock, clear_run, refuse_if_held

    out = Path(s.out)
    if not s.overwrite:
        refuse_if_held(out)
    sd = read_state_dict(s.pth)
    layout = _named(s.pth, infer_generator, sd, s.net_g)
    d_sd = read_state_dict(s.netd_pth) if s.netd_pth else None
    rev_sd = read_state_dict(s.reverse_pth) if s.reverse_pth else None
    f_sd = read_state_dict(s.netf_pth) if s.netf_pth else None
    method_name = import_method(s, layout)
    if rev_sd is not None and method_name != "cyclegan":
        raise ConfigError(f"--reverse-pth is for CycleGAN's second generator; {method_name} has one")
    if f_sd is not None and method_name not in ("cut", "fastcut"):
        raise ConfigError(f"--netF-pth is for CUT's PatchNCE heads; {method_name} has none")
    f_units = _named(s.netf_pth, infer_patch_heads, f_sd) if f_sd is not None else None
    d_layout = _named(s.netd_pth, infer_patchgan, d_sd) if d_sd is not None else None
    cfg = run_config(s, layout, method_name, d_layout, f_units)
    method = build_method(cfg)  # every network at the reference's init first
    what = f"{layout.net_g}{' (antialiased)' if layout.antialias else ''}, ngf {layout.width}"
    rev_slot = None
    if method_name == "cyclegan":
        forward = s.direction == "AtoB"
        g_slot, rev_slot = ("G_AB", "G_BA") if forward else ("G_BA", "G_AB")
        d_slot = "D_B" if forward else "D_A"  # the discriminator of --pth's output domain
        g_net, d_net = getattr(method.G, g_slot), getattr(method.D, d_slot)
    else:  # pix2pix, cut, fastcut: one generator, one discriminator
        g_slot, d_slot = "G", "D"
        g_net, d_net = method.G, method.D
    lines, untrained = [], []

    def load(net, ref_sd, slot, label, source):
        try:
            weights, notes = match_reference(ref_sd, net, label)
        except ReferenceWeightsError as e:  # name the file: several may be given
            raise ReferenceWeightsError(f"{source}: {e}") from None
        net.load_state_dict(weights)
        lines.append(f"{slot} <- {source} ({label}: {len(ref_sd)} tensors)")
        lines.extend(f"  {slot}: {n}" for n in notes)

    load(g_net, sd, g_slot, what, s.pth)
    if rev_slot is not None:
        if rev_sd is None:
            untrained.append(rev_slot)
        else:
            load(getattr(method.G, rev_slot), rev_sd, rev_slot, what, s.reverse_pth)
    if d_sd is not None:
        load(d_net, d_sd, d_slot, f"NLayerDiscriminator, n_layers {cfg.model['d_layers']}", s.netd_pth)
    else:
        untrained.append(d_slot)
    if method_name == "cyclegan":
        untrained += [n for n in ("D_A", "D_B") if n != d_slot]
    if method_name in ("cut", "fastcut"):
        if f_sd is None:
            untrained.append("F")
        else:
            load(method.F, f_sd, "F", f"PatchSampleF on layers {method.nce_layers}", s.netf_pth)
        if not layout.antialias:
            lines.append("note: without antialiasing the reference taps PatchNCE on other layers than shapetex "
                         "(model.nce_layers); translation is the same, further training differs")
    extra = {"imported": {"from": str(s.pth), "netG": layout.net_g, "method": method_name,
                          "direction": s.direction, "netD": str(s.netd_pth) if s.netd_pth else None,
                          "netF": str(s.netf_pth) if s.netf_pth else None, "untrained": untrained}}
    counters = {"step": 0, "images_seen": 0, "global_batch": cfg.train.batch, "skipped_steps": 0,
                "train_seconds": 0.0}
    lock = RunLock(out)
    try:
        if s.overwrite:  # only now: every input was read and matched, so a typo never costs the old run
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        Run(out).write_config(cfg)
        with torch.no_grad():
            path = ckpts.save_checkpoint(out, method.networks(), {}, counters, keep=0, extra=extra,
                                         config=cfg.to_dict())
    finally:
        lock.release()
    if untrained:
        lines.append(f"untrained (the reference's init): {', '.join(untrained)}")
    return path, lines


# ---- command line --------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pth", required=True, help="the reference's generator state dict (latest_net_G.pth, "
                                                "latest_net_G_A.pth, or a pretrained model such as horse2zebra)")
    p.add_argument("--netG", choices=GENERATORS, help="its architecture (default: told from its tensor names)")
    p.add_argument("--netD-pth", dest="netd_pth", help="the discriminator (pix2pix's latest_net_D.pth; CycleGAN's "
                                                       "D_A, which judges --pth's outputs); default: untrained")
    p.add_argument("--method", choices=IMPORT_METHODS, help="the method the run becomes (default: pix2pix for a "
                   "U-Net, cut for a ResNet with CUT's antialiasing filters, else cyclegan)")
    p.add_argument("--netF-pth", dest="netf_pth", help="CUT: the PatchNCE heads (latest_net_F.pth); default: "
                                                       "untrained")
    p.add_argument("--reverse-pth", help="CycleGAN: the other direction's generator (latest_net_G_B.pth); "
                                         "default: untrained")
    p.add_argument("--size", type=int, help="the size it was trained at (default: 128 for unet_128 and "
                                            "resnet_6blocks, else 256)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB",
                   help="pix2pix: which half of AB pairs is the input (the reference's --direction); CycleGAN: "
                        "BtoA puts --pth in G_BA (translate --to A)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def run(args: argparse.Namespace) -> int:
    s = ImportSettings(pth=args.pth, out=args.out, net_g=args.netG, netd_pth=args.netd_pth,
                       reverse_pth=args.reverse_pth, netf_pth=args.netf_pth,
                       method=args.method, size=args.size, direction=args.direction,
                       overwrite=args.overwrite)
    path, lines = import_reference(s)
    for line in lines:
        print(line)
    print(f"wrote {path}: shapetex translate --checkpoint {s.out} --input IMAGES --out OUT")
    return 0

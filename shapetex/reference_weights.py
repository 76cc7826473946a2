"""pytorch-CycleGAN-and-pix2pix weights in shapetex's networks: the reference's tensor names, reading its
`.pth` files safely, and telling its generator architectures apart by their keys.

shapetex's ResnetGenerator, UNetGenerator and PatchDiscriminator hold exactly the reference's tensors, under
other names; the renaming follows the module order:
    ResnetGenerator      encoder.i / blocks.k.body.r / decoder.i  <->  model.i / model.{10+k}.conv_block.r /
                         model.{10+blocks+i}   (one flat Sequential in the reference)
    UNetGenerator        encoder, decoder, final  <->  nested UnetSkipConnectionBlocks, model.model.* (level 0),
                         model.model.1.model.* (level 1), model.model.1.model.3.model.* (level 2), ...
    PatchDiscriminator   net.i  <->  model.i   (NLayerDiscriminator)
    PatchSampleMLP       heads.i.j  <->  mlp_i.j   (CUT's PatchSampleF)

CUT's reference ResNet generator (antialiased by default) has the same flat layout, with its fixed blur filters
saved as `model.N.filt`; shapetex computes them (non-persistent buffers) and checks the saved ones against them.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data.images import DataError

GENERATORS = ("resnet_6blocks", "resnet_9blocks", "unet_128", "unet_256")


class ReferenceWeightsError(DataError):
    """A file that is not a reference network's state dict of a supported layout; the message says why."""


# ---- names ---------------------------------------------------------------------------------------------
def _split(key: str) -> tuple[str, str]:
    module, _, tensor = key.rpartition(".")
    return module, tensor


def resnet_name(key: str, n_encoder: int, n_blocks: int) -> str:
    """ResnetGenerator key -> the reference's (`n_encoder`: layers in shapetex's encoder Sequential)."""
    part, rest = key.split(".", 1)
    if part == "encoder":
        return f"model.{rest}"
    if part == "blocks":
        k, inner = rest.split(".", 1)
        return f"model.{n_encoder + int(k)}.{inner.replace('body.', 'conv_block.', 1)}"
    if part == "decoder":
        i, inner = rest.split(".", 1)
        return f"model.{n_encoder + n_blocks + int(i)}.{inner}"
    raise KeyError(key)


def unet_level_prefix(level: int) -> str:
    """The reference's module path of U-Net level `level` (0: outermost): submodules sit at index 1 of the
    outermost block's Sequential and at index 3 of every other's."""
    return "model.model." if level == 0 else "model.model.1." + "model.3." * (level - 1) + "model."


def unet_name(key: str, depth: int) -> str:
    """UNetGenerator key -> the reference's."""
    module, tensor = _split(key)
    parts = module.split(".")
    if parts == ["final"]:
        return f"{unet_level_prefix(0)}3.{tensor}"
    kind, index, layer = parts[0], int(parts[1]), int(parts[2])
    if kind == "encoder":  # level i: [LeakyReLU,] conv, norm
        pos = 0 if index == 0 else 1 + layer
        return f"{unet_level_prefix(index)}{pos}.{tensor}"
    if kind == "decoder":  # decoder layer j is the up path of level depth-1-j: ReLU, convT, norm
        level = depth - 1 - index
        pos = (3 if level == depth - 1 else 5) + layer
        return f"{unet_level_prefix(level)}{pos}.{tensor}"
    raise KeyError(key)


def patchgan_name(key: str) -> str:
    """PatchDiscriminator key -> NLayerDiscriminator's."""
    return "model." + key.split(".", 1)[1]


def patch_heads_name(key: str) -> str:
    """PatchSampleMLP key -> CUT's PatchSampleF (heads.i.j.weight -> mlp_i.j.weight)."""
    _, i, rest = key.split(".", 2)
    return f"mlp_{i}.{rest}"


def reference_namer(net: nn.Module) -> Callable[[str], str]:
    """The renaming for one of shapetex's networks that has a reference counterpart."""
    from .nets.patchgan import PatchDiscriminator
    from .nets.patchnce import PatchSampleMLP
    from .nets.resnet_gen import ResnetGenerator
    from .nets.unet import UNetGenerator

    if isinstance(net, ResnetGenerator):
        return lambda k: resnet_name(k, len(net.encoder), len(net.blocks))
    if isinstance(net, UNetGenerator):
        return lambda k: unet_name(k, net.depth)
    if isinstance(net, PatchDiscriminator):
        return patchgan_name
    if isinstance(net, PatchSampleMLP):
        return patch_heads_name
    raise TypeError(f"no reference layout for {type(net).__name__}")


def to_reference(net: nn.Module) -> dict[str, torch.Tensor]:
    """`net`'s state dict under the reference's names (what the reference's `state_dict()` would give)."""
    name = reference_namer(net)
    return {name(k): v for k, v in net.state_dict().items()}


# ---- reading and matching ------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A `.pth` holding a plain state dict of tensors (a DataParallel `module.` prefix dropped), read with
    weights_only=True: no code from the file runs. Anything else is refused with one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError,
            TypeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        pickled = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        why = f"it pickles a {pickled.group(1)} object" if pickled else (lines[0] if lines else type(e).__name__)
        raise ReferenceWeightsError(f"{path}: not a plain state dict of tensors (torch.load with weights_only=True "
                                    f"refused it: {why[:200]}); expected a network's state_dict() as "
                                    f"pytorch-CycleGAN-and-pix2pix saves it (latest_net_G.pth)") from None
    expected = "expected a dict of tensor names to tensors, a network's state_dict() (latest_net_G.pth)"
    if not isinstance(obj, dict):
        raise ReferenceWeightsError(f"{path} holds a {type(obj).__name__}, not a state dict: {expected}")
    bad = [(k, v) for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad or not obj:
        shown = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in bad[:3])
        found = "an empty dict" if not obj else f"a dict with {len(bad)} of {len(obj)} values not tensors ({shown})"
        raise ReferenceWeightsError(f"{path} holds {found}: {expected}")
    if all(k.startswith("module.") for k in obj):  # saved from a DataParallel wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _sample(keys, n: int = 3) -> str:
    keys = sorted(keys, key=_natural)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _natural(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


# Tensors that older reference checkpoints carry and shapetex's networks compute without: instance norm's
# running statistics (saved by PyTorch < 0.4; the reference deletes them when loading too) and batch norm's
# step counter (saved by PyTorch >= 0.4.1, unused with the default momentum).
_STATS = ("running_mean", "running_var", "num_batches_tracked")


def match_reference(sd: dict[str, torch.Tensor], net: nn.Module, what: str) -> tuple[dict[str, torch.Tensor],
                                                                                      list[str]]:
    """The reference state dict `sd` as `net`'s state dict, every tensor checked by name and shape; returns it
    and notes on what was tolerated. `what` names the layout in errors ("resnet_9blocks, ngf 64")."""
    from .nets.blurpool import BlurDownsample, BlurUpsample

    own = net.state_dict()
    name = reference_namer(net)
    wanted = {name(k): k for k in own}
    stats_of = {m for m, mod in net.named_modules() if isinstance(mod, nn.InstanceNorm2d)}
    ignored = [k for k in sd if k not in wanted and _split(k)[1] in _STATS
               and any(name(f"{m}.weight").rpartition(".")[0] == _split(k)[0] for m in stats_of)]
    # CUT saves its fixed blur filters; shapetex's are computed, so a saved one is checked, not loaded
    blurs = {name(f"{m}.filt"): mod.filt for m, mod in net.named_modules()
             if isinstance(mod, (BlurDownsample, BlurUpsample))}
    missing = [r for r, k in wanted.items() if r not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in wanted and k not in ignored and k not in blurs]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_sample(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_sample(unexpected)})")
        raise ReferenceWeightsError(f"not the layout of {what}: {'; '.join(parts)}")
    out, notes = {}, []
    for ref, k in wanted.items():
        if ref not in sd:  # a batch norm counter older PyTorch did not save
            out[k] = own[k]
            continue
        t = sd[ref]
        if tuple(t.shape) != tuple(own[k].shape):
            raise ReferenceWeightsError(f"{ref} has shape {tuple(t.shape)}, {what} expects {tuple(own[k].shape)} "
                                        "(shapetex translates RGB images: 3 input and 3 output channels)")
        out[k] = t.to(own[k].dtype)
    checked = [k for k in sd if k in blurs]
    for k in checked:
        if tuple(sd[k].shape) != tuple(blurs[k].shape) or not torch.allclose(sd[k].float(), blurs[k], atol=1e-6):
            raise ReferenceWeightsError(f"{k} is not the fixed binomial blur filter of {what} (shape "
                                        f"{tuple(sd[k].shape)}): not CUT's antialiased sampling")
    if checked:
        notes.append(f"checked {len(checked)} fixed blur filters (equal to shapetex's)")
    if ignored:
        notes.append(f"ignored {len(ignored)} instance-norm running statistics (an old PyTorch saved them; "
                     "instance norm does not use them)")
    return out, notes


# ---- telling architectures apart -----------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorLayout:
    """What a reference generator's keys say about it."""

    net_g: str  # resnet_6blocks | resnet_9blocks | unet_128 | unet_256
    width: int  # ngf
    batch_norm: bool  # U-Net only (the reference's CycleGAN ResNet uses instance norm)
    antialias: bool = False  # ResNet with CUT's blurred down/up-sampling (its saved model.N.filt)

    @property
    def method(self) -> str:
        """The method a generator of this layout is imported as unless told otherwise."""
        if self.net_g.startswith("resnet"):
            return "cut" if self.antialias else "cyclegan"
        return "pix2pix"

    @property
    def blocks(self) -> int:
        return int(self.net_g.split("_")[1].removesuffix("blocks")) if self.net_g.startswith("resnet") else 0

    @property
    def depth(self) -> int:
        return {"unet_128": 7, "unet_256": 8}.get(self.net_g, 0)


LAYOUT_HELP = ("resnet_6blocks / resnet_9blocks (model.1.weight, model.N.conv_block.*) or unet_128 / unet_256 "
               "(model.model.0.weight, model.model.1.model.*)")


def infer_generator(sd: dict[str, torch.Tensor], net_g: str | None = None) -> GeneratorLayout:
    """The layout of a reference generator state dict (`net_g` given: that one, its width from the keys)."""
    if net_g is not None and net_g not in GENERATORS:
        raise ReferenceWeightsError(f"--netG {net_g} is not supported: choose one of {', '.join(GENERATORS)}")
    family = net_g.split("_")[0] if net_g else None
    first = {"resnet": "model.1.weight", "unet": "model.model.0.weight"}
    if family is None:
        family = next((f for f, k in first.items() if k in sd), None)
        if family is None:
            raise ReferenceWeightsError(f"{len(sd)} tensors ({_sample(sd)}) in no generator layout shapetex knows; "
                                        f"expected {LAYOUT_HELP}")
    w = sd.get(first[family])
    if w is None or w.ndim != 4:
        raise ReferenceWeightsError(f"not the layout of {net_g or family}: no 4-d {first[family]} (found "
                                    f"{_sample(sd)})")
    width = int(w.shape[0])
    if family == "resnet":
        blocks = {int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        inferred = f"resnet_{len(blocks)}blocks"
        if net_g is None and inferred not in GENERATORS:
            raise ReferenceWeightsError(f"a ResNet generator with {len(blocks)} residual blocks: shapetex imports "
                                        f"resnet_6blocks and resnet_9blocks")
        antialias = any(re.fullmatch(r"model\.\d+\.filt", k) for k in sd)
        return GeneratorLayout(net_g or inferred, width, False, antialias)
    depth = 1
    while f"{unet_level_prefix(depth)}1.weight" in sd:
        depth += 1
    inferred = f"unet_{2**depth}"
    if net_g is None and inferred not in GENERATORS:
        raise ReferenceWeightsError(f"a U-Net with {depth} levels (unet_{2**depth}): shapetex imports unet_128 "
                                    f"(7 levels) and unet_256 (8)")
    return GeneratorLayout(net_g or inferred, width, f"{unet_level_prefix(1)}2.weight" in sd)


def infer_patchgan(sd: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(stride-2 layers, ndf) of a reference NLayerDiscriminator state dict."""
    convs = sorted((int(m.group(1)) for k, v in sd.items() if (m := re.fullmatch(r"model\.(\d+)\.weight", k))
                    and v.ndim == 4), key=int)
    if len(convs) < 3 or "model.0.weight" not in sd:
        raise ReferenceWeightsError(f"{len(sd)} tensors ({_sample(sd)}) are not an NLayerDiscriminator (netD "
                                    "basic or n_layers: model.0.weight ... model.N.weight); the pixel "
                                    "discriminator is not supported")
    return len(convs) - 2, int(sd["model.0.weight"].shape[0])


def infer_patch_heads(sd: dict[str, torch.Tensor]) -> int:
    """The head width (units) of CUT's PatchSampleF state dict (mlp_0.0.weight ... mlp_K.2.bias); the heads'
    input channels are checked against the taps when the heads load (match_reference)."""
    heads = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"mlp_(\d+)\.0\.weight", k))})
    if not heads or heads != list(range(len(heads))) or any(sd[f"mlp_{i}.0.weight"].ndim != 2 for i in heads):
        raise ReferenceWeightsError(f"{len(sd)} tensors ({_sample(sd)}) are not CUT's PatchSampleF "
                                    "(mlp_0.0.weight, mlp_0.2.weight, ... one two-layer head per NCE layer)")
    return int(sd["mlp_0.0.weight"].shape[0])

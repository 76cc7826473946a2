"""`shapetex export`: a trained run as a standalone ONNX or TorchScript model.

The exported model takes `image` (N x 3 x H x W float in [-1, 1], any N, H, W) and, for methods with a
latent, `z` (N x z_dim, standard normal), and returns the translation (N x 3 x H x W in [-1, 1]). Sides
are reflect-padded inside the model to the network's multiple and the output cropped back.

Randomness is fixed, never drawn inside the model:
- StyleGAN2 noise inputs are zero (`Translator(..., noise="zero")` computes the same);
- pix2pix runs without test-time dropout and with its batch norm's running statistics.
Settings and this policy are stored in the model (ONNX metadata_props; TorchScript extra file
`shapetex.json`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError
from .errors import UserError

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-3


class ExportedTranslator(nn.Module):
    """A method's translation as a plain module: forward(image[, z]) -> translation, no randomness."""

    def __init__(self, method: nn.Module, multiple: int, translate_kwargs: dict | None = None):
        super().__init__()
        self.method = method
        self.multiple = int(multiple)
        self.has_z = bool(method.z_dim)
        self.translate_kwargs = dict(translate_kwargs or {})

    def forward(self, image: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        m = self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m  # traced from the input's shape: dynamic H and W
        x = F.pad(image, (0, pw, 0, ph), mode="reflect") if m > 1 else image
        out = self.method.translate(x, z if self.has_z else None, **self.translate_kwargs)
        return out[:, :, :h, :w].float().clamp(-1, 1)


def build_exportable(translator, to: str | None = None) -> tuple[ExportedTranslator, list[str]]:
    """A deterministic copy of the translator's method, on the CPU, without the networks translation does not
    use; returns it and notes on what was fixed."""
    from .api import NoiseFields

    method = copy.deepcopy(translator.method).cpu().eval()
    method.engine = copy.copy(method.engine)
    method.engine.device = torch.device("cpu")
    notes = []
    for mod in method.modules():
        if getattr(mod, "test_dropout", False):
            mod.test_dropout = False
            notes.append("test-time dropout is off")
    settings = getattr(method, "settings", None)
    if getattr(settings, "test_batch_stats", False):
        settings.test_batch_stats = False
        notes.append("batch norm uses its running statistics")
    noise = NoiseFields(method)
    if noise.layers:
        notes.append("StyleGAN2 noise inputs are zero")
        noise.install("zero")  # on the copy, for good
    kwargs = {"to": to} if to else {}
    wrapper = ExportedTranslator(method, translator.multiple, kwargs).eval()
    _drop_unused_networks(wrapper, translator.size)
    return wrapper, sorted(set(notes))


def _drop_unused_networks(wrapper: ExportedTranslator, size: int) -> None:
    """Run once and empty the weights of the method's top-level networks that translation never called (e.g.
    D, and G when its EMA copy translates), so they are not saved with the model. The modules stay (a method
    may read structure from them, like the input multiple)."""
    method = wrapper.method
    called: set[int] = set()
    handles = [m.register_forward_pre_hook(lambda mod, args: called.add(id(mod))) for m in method.modules()]
    try:
        with torch.no_grad():
            wrapper(*example_inputs(wrapper, 1, size, size))
    finally:
        for h in handles:
            h.remove()
    for net in list(method.networks().values()):
        if not any(id(m) in called for m in net.modules()):
            for t in list(net.parameters()) + list(net.buffers()):
                t.data = t.data.new_empty(0)


def example_inputs(wrapper: ExportedTranslator, n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    if wrapper.has_z:
        return image, torch.randn(n, wrapper.method.z_dim, generator=g)
    return (image,)


def metadata(translator, wrapper: ExportedTranslator, notes: list[str], to: str | None) -> dict[str, str]:
    meta = {
        "producer": "shapetex",
        "method": translator.config.method,
        "checkpoint": str(translator.checkpoint),
        "training_size": str(translator.size),
        "input_multiple": str(wrapper.multiple),
        "z_dim": str(wrapper.method.z_dim if wrapper.has_z else 0),
        "value_range": "[-1, 1]",
        "layout": "NCHW, RGB",
        "fixed": "; ".join(notes) or "nothing random",
    }
    if to:
        meta["to"] = to
    return meta


def export(translator, out: str | Path, fmt: str = "onnx", to: str | None = None, opset: int = 17,
           check_sizes: list[tuple[int, int]] | None = None, verbose: bool = True) -> dict:
    """Write the model and check it against PyTorch at each (H, W) of `check_sizes` (default: the training
    size and a non-square odd size). Returns {"path", "max_abs_diff": {size: diff}, "notes"}; raises
    ExportMismatch when a difference exceeds TOLERANCE."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper, notes = build_exportable(translator, to)
    s = translator.size
    example = example_inputs(wrapper, 1, s, s)
    meta = metadata(translator, wrapper, notes, to)
    if fmt == "onnx":
        _export_onnx(wrapper, example, out, opset, meta)
    else:
        _export_torchscript(wrapper, example, out, meta)
    sizes = check_sizes or [(s, s), (s + s // 2 + 3, max(wrapper.multiple, s - 5))]
    diffs = {}
    for i, (h, w) in enumerate(sizes):
        inputs = example_inputs(wrapper, 2 if i % 2 else 1, h, w, seed=i + 1)
        with torch.no_grad():
            expected = wrapper(*inputs).numpy()
        got = run_exported(out, fmt, *inputs)
        if got.shape != expected.shape:
            raise ExportMismatch(f"exported model gave shape {got.shape} for input {tuple(inputs[0].shape)}, "
                               f"PyTorch {expected.shape}")
        diffs[f"{h}x{w}"] = float(abs(got - expected).max())
        if verbose:
            print(f"  {fmt} vs PyTorch at {h}x{w} (batch {inputs[0].shape[0]}): "
                  f"max abs difference {diffs[f'{h}x{w}']:.2e}")
    worst = max(diffs.values())
    if not worst <= TOLERANCE:  # written so that NaN (a non-finite output on either side) fails too
        raise ExportMismatch(f"exported model differs from PyTorch by {worst:.3g} (not within {TOLERANCE}): {diffs}")
    return {"path": str(out), "max_abs_diff": diffs, "notes": notes, "metadata": meta}


class ExportMismatch(RuntimeError):
    """The exported model does not compute what PyTorch computes (shape, or a difference above TOLERANCE)."""


def _export_onnx(wrapper, example, out: Path, opset: int, meta: dict) -> None:
    try:
        import onnx
    except ImportError as e:
        raise UserError("ONNX export needs the onnx package: pip install 'shapetex[export]'") from e
    names = ["image", "z"][: len(example)]
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "translation": {0: "batch", 2: "height", 3: "width"}}
    if len(example) > 1:
        axes["z"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(wrapper, example, str(out), input_names=names, output_names=["translation"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    model = onnx.load(str(out))
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def _export_torchscript(wrapper, example, out: Path, meta: dict) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit is deprecated but still works
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        torch.jit.save(traced, str(out), _extra_files={"shapetex.json": json.dumps(meta, indent=1)})


def run_exported(path: str | Path, fmt: str, *inputs: torch.Tensor):
    """Run an exported model (ONNX Runtime on the CPU, or TorchScript) on tensors; returns a NumPy array."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise UserError("checking an ONNX export needs onnxruntime: pip install 'shapetex[export]'") from e
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
        return session.run(None, feeds)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        model = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return model(*inputs).numpy()


# ---- command line --------------------------------------------------------------------------------------
def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a run folder or a checkpoint folder inside it")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--out", help="output file (default: model.onnx or model.pt in the current folder)")
    p.add_argument("--to", help="target domain (multi-domain methods); the export translates to it")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--check-size", action="append", default=[], metavar="HxW",
                   help="compare with PyTorch at this size (repeatable; default: training size and an odd one)")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--check-size wants HxW, got {text!r}") from None
    return h, w


def run_export(args: argparse.Namespace) -> int:
    from .api import Translator

    out = args.out or ("model.onnx" if args.format == "onnx" else "model.pt")
    sizes = [_parse_size(s) for s in args.check_size] or None
    t = Translator.load(args.checkpoint, device="cpu", precision="fp32")  # the exported graph computes in fp32
    print(f"exporting {t.config.method} from {t.checkpoint} to {out} ({args.format})")
    try:
        result = export(t, out, args.format, args.to, args.opset, sizes)
    except ExportMismatch as e:  # the check's verdict, not a crash: any other error keeps its traceback
        print(f"shapetex export: error: {e}", file=sys.stderr)
        return 1
    meta = result["metadata"]
    inputs = "image" + (f", z (N x {meta['z_dim']})" if meta["z_dim"] != "0" else "")
    print(f"wrote {out}: inputs {inputs}; output translation; values in [-1, 1]; fixed: {meta['fixed']}")
    print(f"max abs difference to PyTorch: {max(result['max_abs_diff'].values()):.2e} (tolerance {TOLERANCE})")
    return 0

"""`Translator`: a trained run, loaded for translation outside the training loop.

    from shapetex import Translator
    t = Translator.load("runs/h2z")
    outputs = t(image, samples=4, seed=0)   # PIL image / NumPy array / tensor in, same kind, size and mode out

See docs/api.md for batches, full-resolution and tiled translation, and noise control.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError

from .checkpoint import config_path, find_checkpoint, load_checkpoint
from .config import ConfigError, RunConfig
from .data.images import DataError, as_float_images, float_to_uint8, to_rgb, uint8_to_float
from .engine import Engine, native_bf16, resolve_device, resolve_precision
from .methods import build_method
from .run import CONFIG, Run

NOISE_MODES = ("random", "fixed", "zero")
NOISE_CHUNK = 32  # noise fields are drawn in chunks of this many pixels (per layer), each from its own seed


class CheckpointError(DataError):
    """A checkpoint that cannot be loaded; the message names its folder."""


class Translator:
    def __init__(self, method, config: RunConfig, checkpoint: Path | None = None):
        self.method = method.eval().requires_grad_(False)
        self.config = config
        self.checkpoint = checkpoint
        self.size = config.data.size
        self.shape = (config.data.size, config.data.width or config.data.size)  # the training crops (h, w)
        self.native_default = config.data.preprocess == "crop"  # trained on patches at the images' own scale
        self._noise = NoiseFields(self.method)
        self.channels_last = False  # NHWC inputs and weights (`load`: bf16 on a CPU, methods faster in NHWC)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "auto") -> Translator:
        """A run folder (its newest checkpoint) or one checkpoint folder inside it. `precision`: auto (bf16 where
        the device computes it natively, else fp32), fp32 or bf16; weights stay fp32, bf16 is autocast."""
        ckpt = find_checkpoint(path)
        cfg = RunConfig.load(config_path(ckpt))
        dev = resolve_device(device)
        engine = Engine(dev, precision=resolve_precision(precision, dev))
        method = build_method(cfg, engine)
        method.make_ema_copies()  # translation uses the EMA copy when the run has one
        try:
            load_checkpoint(ckpt, method.networks())
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            # damaged files (truncated, bad JSON) or weights of another shape than the run's settings describe
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            first = " ".join(lines[:2])[:300]  # torch's "Error(s) in loading state_dict" says what only on line 2
            raise CheckpointError(f"cannot load checkpoint {ckpt}: {type(e).__name__}: {first} -- its files "
                                  f"are damaged or do not match the run's {CONFIG}; pick another checkpoint "
                                  f"(the folders in {Run.of_checkpoint(ckpt).checkpoints})") from e
        method.to(engine.device)
        t = cls(method, cfg, ckpt)
        if engine.precision == "bf16" and dev.type == "cpu" and method.bf16_cpu_channels_last:
            t.channels_last = True
            for net in method.networks().values():
                net.to(memory_format=torch.channels_last)
        return t

    @property
    def device(self) -> torch.device:
        return self.method.engine.device

    @property
    def precision(self) -> str:
        """fp32 or bf16: what translation computes in."""
        return self.method.engine.precision

    def precision_line(self) -> str:
        """One line for the commands: the precision chosen, and why."""
        native = native_bf16(self.device)
        if self.precision == "bf16":
            why = "native bf16 on this device" if native else "as asked; this device emulates bf16, slowly"
        else:
            why = "as asked" if native else "this device has no native bf16"
        return f"precision: {self.precision} ({why})"

    @property
    def multiple(self) -> int:
        """Sides of the network's input are padded to a multiple of this (and the output cropped back)."""
        return int(self.method.input_multiple)

    @property
    def z_dim(self) -> int:
        return int(self.method.z_dim)

    def to(self, device: str | torch.device) -> Translator:
        """Move to another device (\"cpu\", \"cuda\", \"cuda:1\")."""
        self.method.engine.device = torch.device(device)
        self.method.to(self.method.engine.device)
        return self

    # ---- tensors ------------------------------------------------------------------------------
    def latents(self, n: int, samples: int, seed: int, shared: bool = False) -> list[torch.Tensor | None]:
        """The z of each sample: N x z_dim per sample, drawn from one generator seeded with `seed`.
        `shared`: one z per sample for every row (the result of a row then does not depend on the batch)."""
        gen = torch.Generator().manual_seed(seed)
        zs = []
        for _ in range(samples):
            z = self.method.sample_z(1 if shared else n, gen, self.device)
            zs.append(z.expand(n, -1) if (z is not None and shared) else z)
        return zs

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, samples: int = 1, seed: int = 0, *, shared_z: bool = False,
                         noise: str = "random", tile: int | None = None, overlap: int = 64, ramp: str = "cosine",
                         margin: int | None = None, **kwargs: Any) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] -> N x samples x 3 x H x W in [-1, 1], at x's own size (any H and W:
        padded to the network's multiple and cropped back).

        z: sample k of row i is the (k, i)-th draw of a generator seeded with `seed` (`shared_z`: the same z
        for every row). noise ("random" | "fixed" | "zero"): StyleGAN2 noise inputs drawn from a field fixed
        by (seed, sample) and the pixel position, the same field for every sample ("fixed": only z differs), or
        switched off. `tile`: translate in overlapping tiles of this size (see `shapetex.tiling`); the result
        then stays on x's device, else it is on the model's.
        Other keyword arguments go to the method's translate (e.g. `to=` for multi-domain methods)."""
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        self._check_options(kwargs)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(x.shape)}")
        zs = self.latents(x.shape[0], samples, seed, shared_z)
        outs = []
        for k, z in enumerate(zs):
            if tile:
                from .tiling import tiled_apply

                fn = lambda part, origin, z=z, k=k: self._run(part, z, seed, k, noise, origin, kwargs)  # noqa: E731
                out = tiled_apply(x.float(), fn, tile, overlap, self.multiple, margin, ramp)
            else:
                out = self._run(x, z, seed, k, noise, (0, 0), kwargs)
            outs.append(out.clamp(-1, 1))
        return torch.stack(outs, dim=1)

    def _check_options(self, kwargs: dict) -> None:
        """Options the method's translate does not take (`to` on a single-target run) are the caller's mistake:
        say so in one line rather than fail inside the method with a TypeError."""
        params = inspect.signature(self.method.translate).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        if unknown := [k for k in kwargs if k not in params]:
            hint = (" ('to' picks the target domain of two-domain and multi-domain runs; this one translates into "
                    "one)" if "to" in unknown else "")
            raise ConfigError(f"a {self.config.method} run takes no {', '.join(map(repr, unknown))}{hint}")

    def _run(self, x, z, seed, k, noise, origin, kwargs) -> torch.Tensor:
        x = x.to(self.device).float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        m = self.multiple
        padded = (-(-x.shape[-2] // m) * m, -(-x.shape[-1] // m) * m)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed * 7919 + k)  # anything else random in a method (test-time dropout)
            with self._noise.use(noise, seed, k, origin, padded), self.method.engine.autocast():
                return self.method.translate(x, z, **kwargs).float().contiguous()

    # ---- images -------------------------------------------------------------------------------
    def __call__(self, image, samples: int = 1, seed: int = 0, native: bool | None = None, *, tile: int | None = None,
                 overlap: int = 64, ramp: str = "cosine", noise: str = "random", batch_size: int = 16,
                 **kwargs: Any):
        """Translate images of any size; every result has its input's kind, size and mode.

        image: a PIL image, an H x W [x C] NumPy array (uint8, or float in [0, 1]), a C x H x W tensor
        (float in [-1, 1] or uint8), or a batch: a list of those, an N x C x H x W tensor or an N x H x W x C
        array. One image gives a list of `samples` results; a list gives a list of such lists; a batch
        tensor or array gives an N x samples x ... tensor or array.

        By default each image is resized to the training size and the result resized back, except for a run
        trained on crops at the images' own scale (data.preprocess crop), which translates whole images at their
        own size: `native=True` does that for any run (False: resize, whatever the run); `tile=T` does that in
        overlapping T x T tiles blended over `overlap` pixels (for images too large for memory at once). The same z
        (and noise field) serves every image of a call, so an image's results do not depend on what else
        is in the batch; `seed` picks them."""
        batch_kind = _batch_kind(image)
        items = list(image) if batch_kind else [image]
        if not items:
            return [] if batch_kind in (None, "list") else image[:0]
        prepared = [_to_input(it) for it in items]
        results: list[list | None] = [None] * len(prepared)
        native = (self.native_default if native is None else native) or bool(tile)
        opts = dict(noise=noise, tile=tile, overlap=overlap, ramp=ramp, **kwargs)
        if native:  # images of one size go through together
            groups: dict[tuple[int, int], list[int]] = {}
            for i, p in enumerate(prepared):
                groups.setdefault(tuple(p.rgb.shape[-2:]), []).append(i)
            order = list(groups.values())
        else:
            order = [list(range(len(prepared)))]
        for idx in order:
            for start in range(0, len(idx), max(1, batch_size)):
                chunk = idx[start:start + max(1, batch_size)]
                if native:
                    x = torch.stack([prepared[i].rgb for i in chunk])
                else:
                    x = torch.cat([_resize(prepared[i].rgb[None].to(self.device), self.shape, True)
                                   for i in chunk])
                out = self.translate_tensor(x, samples, seed, shared_z=True, **opts)
                for row, i in enumerate(chunk):
                    o = out[row]
                    if not native:
                        o = _resize(o, tuple(prepared[i].rgb.shape[-2:]), False).clamp(-1, 1)
                    results[i] = [prepared[i].restore(s) for s in o]
        if batch_kind == "tensor":
            return torch.stack([torch.stack(r) for r in results])
        if batch_kind == "numpy":
            return np.stack([np.stack(r) for r in results])
        return results if batch_kind == "list" else results[0]


# ---- noise inputs ------------------------------------------------------------------------------------
class NoiseFields:
    """Supplies the noise inputs of every StyleGAN2 `NoiseInjection` layer of a method during translation.

    "random": the noise at layer l, pixel (i, j) of the whole image is a function of (seed, sample, l, i, j)
    only: drawn in NOISE_CHUNK-pixel chunks, each from its own seed. So it does not depend on the batch,
    the padding or on how the image is cut into tiles (tiles get crops of one field: no seams).
    "fixed": sample 0's field for every sample, so the samples of one input differ by z alone.
    "zero": no noise (deterministic; what `shapetex export` builds in).
    """

    def __init__(self, method: torch.nn.Module):
        from .nets.stylegan2 import NoiseInjection

        self.layers = [m for m in method.modules() if isinstance(m, NoiseInjection)]

    @contextlib.contextmanager
    def use(self, mode: str, seed: int = 0, sample: int = 0, origin: tuple[int, int] = (0, 0),
            input_hw: tuple[int, int] | None = None) -> Iterator[None]:
        handles = self.install(mode, seed, sample, origin, input_hw)
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def install(self, mode: str, seed: int = 0, sample: int = 0, origin: tuple[int, int] = (0, 0),
                input_hw: tuple[int, int] | None = None) -> list:
        """Register the hooks for good; returns their handles (`handle.remove()` undoes one)."""
        sample = 0 if mode == "fixed" else sample
        return [layer.register_forward_pre_hook(self._hook(idx, mode, seed, sample, origin, input_hw))
                for idx, layer in enumerate(self.layers)]

    @staticmethod
    def _hook(idx, mode, seed, sample, origin, input_hw):
        def hook(module, args):
            x = args[0]
            if len(args) > 1 and args[1] is not None:
                return None  # the caller chose its noise
            if mode == "zero":
                return (x, torch.zeros_like(x[:, :1]))
            h, w = x.shape[-2:]
            ih, iw = input_hw or (h, w)
            fy, fx = max(ih // h, 1), max(iw // w, 1)  # how many input pixels one pixel of this layer spans
            field = noise_window((seed, sample, idx), origin[0] // fy, origin[1] // fx, h, w)
            return (x, field.to(x.device, x.dtype).expand(x.shape[0], 1, h, w))

        return hook


def noise_window(key: tuple[int, ...], top: int, left: int, h: int, w: int, chunk: int = NOISE_CHUNK) -> torch.Tensor:
    """The h x w window at (top, left) of an unbounded N(0, 1) field identified by `key`: 1 x 1 x h x w."""
    out = torch.empty(h, w)
    base = 0
    for v in key:
        base = (base * 1_000_003 + int(v) + 1) % (2**61 - 1)
    for cy in range(top // chunk, (top + h - 1) // chunk + 1):
        for cx in range(left // chunk, (left + w - 1) // chunk + 1):
            g = torch.Generator().manual_seed((base * 999_983 + cy * 65_537 + cx) % (2**63 - 1))
            block = torch.randn(chunk, chunk, generator=g)
            y0, x0 = max(top, cy * chunk), max(left, cx * chunk)
            y1, x1 = min(top + h, (cy + 1) * chunk), min(left + w, (cx + 1) * chunk)
            out[y0 - top:y1 - top, x0 - left:x1 - left] = block[y0 - cy * chunk:y1 - cy * chunk,
                                                                 x0 - cx * chunk:x1 - cx * chunk]
    return out[None, None]


# ---- conversions at the edges ----------------------------------------------------------------------
@dataclass
class _Input:
    """One image as 3 x H x W float in [-1, 1] (on its own device), and how to give a result back."""

    rgb: torch.Tensor
    kind: str  # pil | numpy | tensor
    mode: str | None = None  # PIL mode
    alpha: Any = None  # the input's alpha channel (PIL image, array or tensor), put back on the results
    dtype: Any = None
    channels: int = 3  # 0: a 2-D array (no channel axis)

    def restore(self, out: torch.Tensor):
        """3 x H x W [-1, 1] -> the input's kind, mode, dtype and channels."""
        if self.kind == "tensor":
            out = out.to(self.rgb.device)
            if self.channels == 1:
                out = out.mean(0, keepdim=True)
            if self.dtype == torch.uint8:
                out = float_to_uint8(out)
            if self.alpha is not None:
                out = torch.cat([out, self.alpha.to(out.dtype)])
            return out
        pil = tensor_to_pil(out.cpu())
        if self.kind == "pil":
            return _pil_in_mode(pil, self.mode, self.alpha)
        arr = np.asarray(pil.convert("L") if self.channels in (0, 1) else pil)
        if self.channels == 1:
            arr = arr[..., None]
        if self.alpha is not None:
            arr = np.concatenate([arr, self.alpha], axis=-1)
        if self.dtype != np.uint8:
            return (arr.astype(np.float64) / 255.0).astype(self.dtype)
        return arr


def _batch_kind(image) -> str | None:
    if isinstance(image, (list, tuple)):
        return "list"
    if torch.is_tensor(image) and image.ndim == 4:
        return "tensor"
    if isinstance(image, np.ndarray) and image.ndim == 4:
        return "numpy"
    return None


def _to_input(image) -> _Input:
    if isinstance(image, Image.Image):
        alpha = None
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            alpha = image.getchannel("A")
        return _Input(pil_to_tensor(image), "pil", mode=image.mode, alpha=alpha)
    if isinstance(image, np.ndarray):
        return _numpy_input(image)
    if torch.is_tensor(image):
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(f"expected a C x H x W tensor with 1, 3 or 4 channels, got shape {tuple(image.shape)}")
        channels = image.shape[0]
        alpha = image[3:] if channels == 4 else None
        x = as_float_images(image[:3])
        if channels == 1:
            x = x.expand(3, -1, -1)
        return _Input(x, "tensor", alpha=alpha, dtype=image.dtype, channels=1 if channels == 1 else 3)
    raise TypeError(f"cannot translate a {type(image).__name__}: give a PIL image, a NumPy array or a tensor")


def _numpy_input(arr: np.ndarray) -> _Input:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an H x W or H x W x C (C = 1, 3, 4) array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        u8 = arr
    elif np.issubdtype(arr.dtype, np.floating):
        u8 = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    else:
        raise ValueError(f"arrays must be uint8 or float in [0, 1], got {arr.dtype}")
    channels = 0 if arr.ndim == 2 else arr.shape[2]
    img = u8 if u8.ndim == 3 else u8[..., None]
    alpha = arr[..., 3:] if channels == 4 else None
    rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
    x = uint8_to_float(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    return _Input(x, "numpy", alpha=alpha, dtype=arr.dtype, channels=min(channels, 3) if channels != 4 else 3)


def _pil_in_mode(rgb: Image.Image, mode: str, alpha: Image.Image | None) -> Image.Image:
    if mode == "RGB":
        return rgb
    if alpha is not None:  # RGBA, LA, PA: the translated colours with the input's alpha
        base = rgb.convert("L") if mode in ("LA", "La") else rgb
        out = base.convert("LA" if mode in ("LA", "La") else "RGBA")
        out.putalpha(alpha)
        return out
    if mode == "P":
        return rgb.quantize(256)
    if mode in ("I;16", "I;16B", "I;16L"):
        return Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    try:
        return rgb.convert(mode)
    except ValueError:
        return rgb


def _resize(x: torch.Tensor, size: tuple[int, int], down: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if down:
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(to_rgb(img), dtype=np.uint8)
    return uint8_to_float(torch.from_numpy(arr.transpose(2, 0, 1).copy()))


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    arr = float_to_uint8(x).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


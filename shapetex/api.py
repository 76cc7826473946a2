"""`Translator`: a trained run, loaded for translation outside the training loop.

    from shapetex import Translator
    t = Translator.load("runs/h2z")
    outputs = t(image, samples=4, seed=0)   # PIL image / NumPy array / tensor in, same kind out
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import find_checkpoint, load_checkpoint, run_dir_of
from .config import RunConfig
from .data.images import to_rgb
from .engine import Engine, resolve_device
from .methods import get_method


class Translator:
    def __init__(self, method, config: RunConfig, checkpoint: Path | None = None):
        self.method = method.eval()
        self.config = config
        self.checkpoint = checkpoint
        self.size = config.data.size

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Translator:
        """A run folder (its newest checkpoint) or one checkpoint folder inside it."""
        ckpt = find_checkpoint(path)
        cfg = RunConfig.load(run_dir_of(ckpt) / "config.json")
        engine = Engine(resolve_device(device))
        method = get_method(cfg.method)(cfg, engine)
        for ema_name in method.ema_of:  # translation uses the EMA copy when the run has one
            if getattr(method, ema_name, None) is None:
                import copy

                setattr(method, ema_name, copy.deepcopy(getattr(method, method.ema_of[ema_name])))
        load_checkpoint(ckpt, method.networks())
        method.to(engine.device)
        return cls(method, cfg, ckpt)

    @property
    def device(self) -> torch.device:
        return self.method.engine.device

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, samples: int = 1, seed: int = 0, **kwargs: Any) -> torch.Tensor:
        """x: N x 3 x H x W in [-1, 1] -> N x samples x 3 x H x W in [-1, 1], at x's size."""
        x = x.to(self.device).float()
        gen = torch.Generator().manual_seed(seed)
        outs = []
        for k in range(samples):
            z = self.method.sample_z(x.shape[0], gen, self.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 7919 + k)  # noise inputs: repeatable per (seed, sample)
                outs.append(self.method.translate(x, z, **kwargs).float().clamp(-1, 1))
        return torch.stack(outs, dim=1)

    def __call__(self, image, samples: int = 1, seed: int = 0, native: bool = False, **kwargs: Any) -> list:
        """Translate one image (PIL, HxWxC uint8 NumPy array, or 3xHxW [-1, 1] tensor); returns `samples`
        results of the same kind and size. By default the image is resized to the training size and the
        result resized back; `native=True` runs the fully convolutional network at the image's own size."""
        kind = "pil" if isinstance(image, Image.Image) else "numpy" if isinstance(image, np.ndarray) else "tensor"
        mode = image.mode if kind == "pil" else None
        if kind == "pil":
            x = pil_to_tensor(image)
        elif kind == "numpy":
            arr = image if image.ndim == 3 else image[..., None]
            x = pil_to_tensor(Image.fromarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[..., :3]))
        else:
            x = image
        h, w = x.shape[-2:]
        inp = x[None] if native else F.interpolate(x[None], size=(self.size, self.size), mode="bilinear",
                                                   antialias=True, align_corners=False)
        out = self.translate_tensor(inp, samples, seed, **kwargs)[0]
        if not native:
            out = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
        out = out.cpu()
        if kind == "tensor":
            return list(out)
        results = [tensor_to_pil(o) for o in out]
        if kind == "pil":
            return [r.convert(mode) if mode in ("L", "RGBA", "LA") else r for r in results]
        arrays = [np.asarray(r) for r in results]
        return [a[..., :1] if image.ndim == 3 and image.shape[2] == 1 else a.mean(-1).astype(np.uint8)
                if image.ndim == 2 else a for a in arrays]


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(to_rgb(img), dtype=np.uint8)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div(127.5).sub(1)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    arr = x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)

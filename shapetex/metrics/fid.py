"""FID and KID from feature vectors, and feature extraction from image folders and tensors (with a cache).

FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to two feature sets,
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),
with the unbiased sample covariance. `frechet_distance` uses scipy's sqrtm as pytorch-fid does; from features,
with fewer samples than dimensions, the trace term is computed exactly from the cross-Gram matrix instead
(same value to ~1e-5, seconds instead of minutes on a CPU).

KID (Bińkowski et al. 2018): the unbiased estimate of the squared MMD with the kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets (torch-fidelity's defaults: 100 subsets of 1000, the size capped at the smaller set),
reported with the standard deviation over the subsets.

A feature network is any module taking N x 3 x H x W floats in [-1, 1] and returning N x D features (extra
trailing dimensions are averaged); its `feature_id` string (or, without one, a hash of its weights) names it
in the feature cache. `FIDInceptionV3` (shapetex.metrics.inception) is the standard one.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import nn
from tqdm import tqdm

from ..atomic import write_then_rename
from ..data.images import DataError, as_float_images, list_images, load_rgb, resize_center_crop, to_chw_tensor


# ---- the math --------------------------------------------------------------------------------------
def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors (N x D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed as pytorch-fid does."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two feature sets have different dimensions")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # fewer samples than dimensions make the product singular; that is expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # nudge the diagonals, as pytorch-fid does
            offset = np.eye(len(sigma1)) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm gave a large imaginary component ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def trace_sqrt_product_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for the sample covariances S1, S2 of two feature sets, without forming them.

    With centred features X1, X2 (n1 x D, n2 x D), S1 S2 = X1' X1 X2' X2 / c, c = (n1 - 1)(n2 - 1); its non-zero
    eigenvalues are those of B B' with B = X1 X2' (n1 x n2), i.e. the squared singular values of B. So the trace
    is the sum of B's singular values over sqrt(c): exact, and far cheaper than a D x D sqrtm when n < D (where
    S1 S2 is singular and sqrtm is both slowest and least accurate)."""
    x1 = np.asarray(features1, dtype=np.float64)
    x2 = np.asarray(features2, dtype=np.float64)
    x1, x2 = x1 - x1.mean(0), x2 - x2.mean(0)
    singular = np.linalg.svd(x1 @ x2.T, compute_uv=False)
    return float(singular.sum() / np.sqrt((len(x1) - 1) * (len(x2) - 1)))


def fid_from_features(features1: np.ndarray, features2: np.ndarray, method: str = "auto") -> float:
    """FID of two feature sets. method "sqrtm": pytorch-fid's computation (scipy sqrtm of the D x D product);
    "gram": the same quantity through the n1 x n2 cross-Gram matrix (see trace_sqrt_product_from_features);
    "auto": "gram" when a set has fewer samples than dimensions and the Gram matrix is small, else "sqrtm"."""
    f1, f2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    (n1, d), n2 = f1.shape, len(f2)
    if method == "auto":
        method = "gram" if min(n1, n2) < d and n1 * n2 <= 25_000_000 else "sqrtm"
    mu1, sigma1 = feature_statistics(f1)
    mu2, sigma2 = feature_statistics(f2)
    if method == "sqrtm":
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    if method != "gram":
        raise ValueError(f"fid method is auto, sqrtm or gram, not {method!r}")
    if f2.shape[1] != d:
        raise ValueError("the two feature sets have different dimensions")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product_from_features(f1, f2))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0,
                      gamma: float | None = None) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel) -> float:
    """The unbiased squared MMD between two equally sized samples (diagonals of K_xx and K_yy left out)."""
    m = len(x)
    if m < 2 or len(y) != m:
        raise ValueError("mmd2_unbiased wants two samples of the same size >= 2")
    kxx, kyy = polynomial_kernel(x, x, **kernel), polynomial_kernel(y, y, **kernel)
    kxy = polynomial_kernel(x, y, **kernel)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kid_from_features(features1: np.ndarray, features2: np.ndarray, num_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0, **kernel) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `num_subsets` random subsets of min(subset_size, n1, n2) each.
    For sets up to a few thousand the kernel matrices are computed once and the subsets index into them."""
    f1, f2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    n1, n2 = len(f1), len(f2)
    m = min(subset_size, n1, n2)
    if m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    full = None
    if n1 * n1 + n2 * n2 + n1 * n2 <= 40_000_000:
        full = (polynomial_kernel(f1, f1, **kernel), polynomial_kernel(f2, f2, **kernel),
                polynomial_kernel(f1, f2, **kernel))
    rng = np.random.RandomState(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        a, b = rng.choice(n1, m, replace=False), rng.choice(n2, m, replace=False)
        if full is None:
            values[i] = mmd2_unbiased(f1[a], f2[b], **kernel)
            continue
        kxx, kyy, kxy = full[0][np.ix_(a, a)], full[1][np.ix_(b, b)], full[2][np.ix_(a, b)]
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[i] = within - 2 * kxy.mean()
    return float(values.mean()), float(values.std())


# ---- feature networks ------------------------------------------------------------------------------
def feature_net_id(net: nn.Module) -> str:
    fid = getattr(net, "feature_id", None)
    if fid:
        return str(fid)
    h = hashlib.sha256(type(net).__name__.encode())
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return f"{type(net).__name__}:{h.hexdigest()[:16]}"


class UnsafeFeatureNet(DataError):
    """A feature-network file in a format whose loading could run code from the file."""


def check_torchscript_archive(path: Path) -> None:
    """Refuse anything but a TorchScript archive before torch sees the file. TorchScript is read by the
    C++ loader, whose unpickler knows only TorchScript types and whose code is TorchScript, not Python; a
    torch.export program (.pt2) is not: torch.export.load falls back to a full Python unpickle of its
    tensors, so a crafted .pt2 runs any code (the same for torch.save pickles)."""
    import zipfile

    how = ("save the network as TorchScript instead: torch.jit.save(torch.jit.script(net), 'features.pt') "
           "(or torch.jit.trace)")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        raise UnsafeFeatureNet(f"--feature-net: {path} is not a TorchScript archive (not a zip file); only "
                               f"TorchScript is accepted, since other formats can run code when loaded: "
                               f"{how}") from None
    if any(n.endswith(("serialized_exported_program.json", "/archive_format")) for n in names):
        raise UnsafeFeatureNet(f"--feature-net: {path} is a torch.export program, which is refused: loading one "
                               f"can unpickle arbitrary Python objects, i.e. run code from the file; {how}")
    if not any("/code/" in n for n in names) or not any(n.endswith("constants.pkl") for n in names):
        raise UnsafeFeatureNet(f"--feature-net: {path} is not a TorchScript archive (a torch.save pickle?); only "
                               f"TorchScript is accepted, since other formats can run code when loaded: {how}")


class LoadedFeatureNet(nn.Module):
    """A feature network read from a file the user gives: a TorchScript archive (`torch.jit.save`), which
    loads without Python unpickling (see check_torchscript_archive). Named in the cache by the hash of the
    file. It is loaded straight onto `device` and kept in inference mode."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--feature-net: file not found: {path}")
        check_torchscript_archive(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self.device = torch.device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated but still the format
            module = torch.jit.load(str(path), map_location=self.device).eval()
        self.__dict__["net"] = module  # not a registered child: train()/eval() of this wrapper leave it alone
        self.feature_id = f"file:{path.name}:{digest}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_feature_net(feature_net: str | Path | None = None, inception: str | Path | None = None,
                     device: str | torch.device = "cpu") -> nn.Module:
    """A user's feature network file, else the FID Inception network."""
    if feature_net:
        return LoadedFeatureNet(feature_net, device)
    from .inception import load_fid_inception

    return load_fid_inception(inception, device=device)


@torch.inference_mode()
def features_of(images: torch.Tensor, net: nn.Module, device: torch.device | str | None = None) -> torch.Tensor:
    """N x 3 x H x W images (uint8, or float in [-1, 1]) -> N x D float32 features on the CPU."""
    if device is None:
        device = getattr(net, "device", None) or next(iter(net.parameters()), torch.empty(0)).device
    x = images.to(device)
    x = as_float_images(x)
    f = net(x)
    if f.ndim > 2:
        f = f.flatten(2).mean(2)
    return f.float().cpu()


def extract_features(batches: Iterable[torch.Tensor], net: nn.Module, device: torch.device | str | None = None,
                     total: int | None = None, progress: bool = True, desc: str = "features") -> np.ndarray:
    out = []
    with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
        for b in batches:
            out.append(features_of(b, net, device))
            bar.update(len(b))
    if not out:
        raise ValueError("no images to extract features from")
    return torch.cat(out).numpy()


# ---- folders -----------------------------------------------------------------------------------------
def load_image(path: Path, size: int | None) -> torch.Tensor:
    img = load_rgb(path)
    if size:
        img = resize_center_crop(img, size)
    return to_chw_tensor(img)


def iter_folder_batches(files: list[Path], size: int | None, batch_size: int = 50,
                        workers: int = 4) -> Iterator[torch.Tensor]:
    """uint8 batches of the files, decoded in threads one batch ahead. Images of different sizes (no `size`)
    are yielded as separate same-size runs."""
    chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending = [pool.submit(load_image, f, size) for f in chunks[0]] if chunks else []
        for k in range(len(chunks)):
            images = [p.result() for p in pending]
            pending = [pool.submit(load_image, f, size) for f in chunks[k + 1]] if k + 1 < len(chunks) else []
            run = [images[0]]
            for img in images[1:]:
                if img.shape == run[0].shape:
                    run.append(img)
                else:
                    yield torch.stack(run)
                    run = [img]
            yield torch.stack(run)


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "shapetex" / "features"


def folder_cache_key(folder: Path, files: list[Path], net_id: str, size: int | None) -> str:
    h = hashlib.sha256()
    entries = []
    for f in files:
        st = f.stat()
        entries.append([str(f.relative_to(folder)), st.st_mtime_ns, st.st_size])
    h.update(json.dumps({"folder": str(folder.resolve()), "files": entries, "net": net_id, "size": size}).encode())
    return h.hexdigest()[:32]


def folder_features(folder: str | Path, net: nn.Module, size: int | None = None, batch_size: int = 50,
                    device: torch.device | str | None = None, cache_dir: str | Path | None = None,
                    use_cache: bool = True, progress: bool = True, workers: int = 4) -> np.ndarray:
    """Features of every image in `folder` (sorted, recursive), each resized/cropped to `size` first if given.
    Cached as .npz under `cache_dir` (default ~/.cache/shapetex/features), keyed on the folder, its files'
    names/mtimes/sizes, the network and the size."""
    folder = Path(folder)
    files = list_images(folder)
    cache_file = None
    if use_cache:
        key = folder_cache_key(folder, files, feature_net_id(net), size)
        cache_file = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
        if cache_file.is_file():
            try:
                with np.load(cache_file, allow_pickle=False) as data:
                    feats = data["features"]
                if len(feats) == len(files):
                    return feats
            except (OSError, ValueError, KeyError):
                pass  # unreadable cache entry: recompute and overwrite
    feats = extract_features(iter_folder_batches(files, size, batch_size, workers), net, device, total=len(files),
                             progress=progress, desc=f"features {folder.name}")
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_then_rename(cache_file, lambda tmp: np.savez(tmp, features=feats, folder=str(folder.resolve()),
                                                               net=feature_net_id(net)))
        except OSError:
            pass  # a read-only cache folder only costs speed
    return feats


def fid_kid_folders(fake: str | Path, real: str | Path, net: nn.Module, size: int | None = None,
                    kid_subsets: int = 100, kid_subset_size: int = 1000, **kw) -> dict:
    """FID and KID between two folders of images."""
    f_fake = folder_features(fake, net, size=size, **kw)
    f_real = folder_features(real, net, size=size, **kw)
    if len(f_fake) < 2 or len(f_real) < 2:
        raise DataError("FID/KID need at least 2 images in each folder")
    kid, kid_std = kid_from_features(f_fake, f_real, kid_subsets, kid_subset_size)
    return {"fid": fid_from_features(f_fake, f_real), "kid": kid, "kid_std": kid_std,
            "fake_count": len(f_fake), "real_count": len(f_real)}

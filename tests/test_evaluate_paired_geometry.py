"""Paired scores on non-square images: the ground truth is resized and cropped exactly as the outputs' inputs are."""


import numpy as np
import pytest
import torch
from helpers import save_torchscript
from test_evaluate import TinyFeatures, _evaluate, _random_images, _tiny_run, _write

from shapetex.data.images import resize_center_crop
from shapetex.metrics.image_scores import psnr


@pytest.fixture()
def net_path(tmp_path):
    return save_torchscript(TinyFeatures().eval(), tmp_path / "features.pt")


def _textured(n, seed, h=24, w=40):
    rng = np.random.default_rng(seed)
    return {f"im{i}.png": rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(n)}


def test_an_output_identical_to_its_non_square_truth_scores_perfectly_at_any_size(tmp_path, net_path):
    truth = _textured(3, seed=1)
    _write(tmp_path / "truth", truth)
    _write(tmp_path / "fake", truth)
    _write(tmp_path / "real", _random_images(4, seed=2))
    m = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "real", "--paired-target", tmp_path / "truth",
                  "--size", 16, "--out", tmp_path / "o", "--feature-net", net_path, "--no-cache")
    assert m["paired_count"] == 3
    assert m["psnr"] == pytest.approx(100.0) and m["ssim"] == pytest.approx(1.0, abs=1e-6) and m["l1"] == 0


def test_checkpoint_scores_use_the_centre_cropped_truth(tmp_path, net_path):
    run = _tiny_run(tmp_path)  # a 16 px run
    src = _textured(2, seed=3)
    _write(tmp_path / "source", src)
    _write(tmp_path / "target", _random_images(3, seed=4, size=20))
    _write(tmp_path / "truth", src)
    m = _evaluate("--checkpoint", run, "--source", tmp_path / "source", "--target", tmp_path / "target",
                  "--paired-target", tmp_path / "truth", "--samples", 2, "--save-images", "--out", tmp_path / "o",
                  "--feature-net", net_path, "--no-cache")
    from PIL import Image

    want = []
    for name, arr in src.items():
        crop = torch.from_numpy(np.array(resize_center_crop(arr, 16).transpose(2, 0, 1))).float() / 127.5 - 1
        for k in range(2):
            out = np.array(Image.open(tmp_path / "o" / "images" / f"{name[:-4]}_{k}.png"))
            want.append(float(psnr(torch.from_numpy(out.transpose(2, 0, 1)).float()[None] / 127.5 - 1, crop[None])))
    assert m["psnr"] == pytest.approx(np.mean(want), rel=1e-5)

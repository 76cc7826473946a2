import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.train import Trainer

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("api") / "run"
    Trainer(tiny_config(out, budget=16)).run()
    return out


@pytest.fixture(scope="module")
def t(run):
    return Translator.load(run, device="cpu")


def _img(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_docs_example_runs(run, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    code = "\n".join(blocks)
    assert 'run = "runs/quickstart"' in code
    code = code.replace('run = "runs/quickstart"', f"run = {str(run)!r}")
    monkeypatch.chdir(tmp_path)
    pytest.importorskip("av", reason="the Clips example reads a video: PyAV (the video extra) is not installed")
    from test_video import moving_shapes, write_clip

    write_clip(tmp_path / "clip.mp4", moving_shapes(6))  # the Clips example's input
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_api"})
    assert sorted(p.name for p in tmp_path.glob("photo_*.png")) == [f"photo_{k}.png" for k in range(4)]
    assert Image.open(tmp_path / "photo_0.png").size == (300, 180)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "I;16", "CMYK"])
def test_pil_results_keep_size_and_mode(t, mode):
    src = _img(37, 23).convert(mode)
    outs = t(src, samples=2, seed=1)
    assert len(outs) == 2
    for o in outs:
        assert o.size == (37, 23) and o.mode == mode
    if "A" in mode:
        assert outs[0].getchannel("A").tobytes() == src.getchannel("A").tobytes()
    assert np.asarray(outs[0]).tobytes() != np.asarray(outs[1]).tobytes()  # two z, two results


def test_numpy_and_tensor_results_keep_shape_dtype_and_alpha(t):
    rng = np.random.default_rng(0)
    for arr in [rng.integers(0, 256, (21, 30), dtype=np.uint8), rng.integers(0, 256, (21, 30, 1), dtype=np.uint8),
                rng.integers(0, 256, (21, 30, 4), dtype=np.uint8), rng.random((21, 30, 3)).astype(np.float32)]:
        out = t(arr, seed=2)[0]
        assert out.shape == arr.shape and out.dtype == arr.dtype
        if arr.dtype == np.float32:
            assert 0 <= out.min() and out.max() <= 1
        if arr.ndim == 3 and arr.shape[2] == 4:
            assert np.array_equal(out[..., 3], arr[..., 3])
    u8 = torch.randint(0, 256, (3, 19, 26), dtype=torch.uint8)
    out = t(u8)[0]
    assert out.dtype == torch.uint8 and out.shape == (3, 19, 26)
    gray = torch.rand(1, 19, 26) * 2 - 1
    assert t(gray)[0].shape == (1, 19, 26)
    with pytest.raises(ValueError, match="uint8 or float"):
        t(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(TypeError, match="cannot translate"):
        t("photo.jpg")


@pytest.mark.parametrize("native", [False, True])
def test_batches_give_what_single_images_give(t, native):
    a, b, c = _img(40, 24, 1), _img(33, 47, 2), _img(40, 24, 3)
    batch = t([a, b, c], samples=2, seed=7, native=native, batch_size=2)
    assert [len(r) for r in batch] == [2, 2, 2]
    for img, res in zip([a, b, c], batch):
        alone = t(img, samples=2, seed=7, native=native)
        for x, y in zip(res, alone):
            assert x.size == img.size
            assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= 1
    xs = torch.rand(3, 3, 24, 40) * 2 - 1
    out = t(xs, samples=2, seed=7, native=native)
    assert out.shape == (3, 2, 3, 24, 40)
    assert torch.allclose(out[1], torch.stack(t(xs[1], samples=2, seed=7, native=native)), atol=1e-4)
    arrs = np.random.default_rng(0).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    assert t(arrs, samples=3).shape == (2, 3, 24, 40, 3)


def test_native_translates_at_full_resolution(t):
    # the network's own output at the image's size: not a resize of a training-size translation
    x = torch.rand(3, 70, 90) * 2 - 1
    native = t(x, native=True, noise="zero")[0]
    direct = t.translate_tensor(x[None], 1, 0, shared_z=True, noise="zero")[0, 0]
    assert torch.allclose(native, direct, atol=1e-5)
    resized = t(x, noise="zero")[0]
    assert (resized - native).abs().mean() > 0.01


def test_seeds_noise_and_latents(t):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a = t.translate_tensor(x, 2, seed=4)
    assert torch.equal(a, t.translate_tensor(x, 2, seed=4))
    assert not torch.allclose(a, t.translate_tensor(x, 2, seed=5))
    # independent z per row by default, one z for all rows with shared_z
    z = t.latents(2, 1, seed=4)[0]
    assert not torch.equal(z[0], z[1])
    zs = t.latents(2, 1, seed=4, shared=True)[0]
    assert torch.equal(zs[0], zs[1])
    # noise="zero" is the method's translation with zero noise inputs: what an exported model computes
    zero = t.translate_tensor(x, 1, seed=4, noise="zero")[:, 0]
    for layer in t._noise.layers:
        layer.register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[0][:, :1])))
    try:
        expected = t.method.translate(x, t.latents(2, 1, seed=4)[0]).clamp(-1, 1)
    finally:
        for layer in t._noise.layers:
            layer._forward_pre_hooks.clear()
    assert torch.allclose(zero, expected, atol=1e-6)
    with pytest.raises(ValueError, match="noise must be one of"):
        t.translate_tensor(x, noise="loud")


def test_fixed_noise_gives_every_sample_the_first_samples_noise(t):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    saved = [layer.strength.detach().clone() for layer in t._noise.layers]
    try:
        for layer in t._noise.layers:  # noise that shows in the output (strengths start at 0)
            layer.strength.data.fill_(0.5)
        fixed, random = t.translate_tensor(x, 2, seed=4, noise="fixed"), t.translate_tensor(x, 2, seed=4)
        assert torch.equal(fixed[:, 0], random[:, 0])  # sample 0: the same z and the same noise
        assert not torch.allclose(fixed[:, 1], random[:, 1], atol=1e-4)  # sample 1: same z, other noise
        for layer in t._noise.layers:  # without noise, "fixed" and "random" must agree: they differ by noise only
            layer.strength.data.zero_()
        assert torch.equal(t.translate_tensor(x, 2, seed=4, noise="fixed"), t.translate_tensor(x, 2, seed=4))
    finally:
        for layer, v in zip(t._noise.layers, saved):
            layer.strength.data.copy_(v)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu(run):
    cpu, gpu = Translator.load(run, device="cpu"), Translator.load(run, device="cuda")
    x = torch.rand(2, 3, 48, 80) * 2 - 1
    a = cpu.translate_tensor(x, 2, seed=1)
    b = gpu.translate_tensor(x.cuda(), 2, seed=1)
    assert b.device.type == "cuda" and torch.allclose(a, b.cpu(), atol=1e-3)
    out = gpu(x[0].cuda(), samples=2, tile=32, overlap=8)
    assert out[0].device.type == "cuda" and out[0].shape == (3, 48, 80)

import json
import re
import warnings

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.cli import main
from shapetex.train import Trainer

onnx = pytest.importorskip("onnx", reason="the export extra (onnx, onnxruntime) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

SIZES = [(1, 32, 32), (2, 45, 70)]  # batch, H, W: the training size and a non-square size off the multiple


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export") / "run"
    # bottleneck 8 at 32 px: the encoder halves twice, so inputs are padded to a multiple of 4
    Trainer(tiny_config(out, budget=16, bottleneck_res=8)).run()
    return out


def _reference(t, n, h, w, seed):
    """An input, its z, and the Translator's own result with the noise inputs off (the export's policy)."""
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    z = t.latents(n, 1, seed)[0]
    return x, z, t.translate_tensor(x, 1, seed, noise="zero")[:, 0].numpy()


def test_onnx_export_matches_pytorch_at_two_sizes(run, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    diffs = [float(v) for v in re.findall(r"max abs difference (?:to PyTorch: )?([0-9.e+-]+)", printed)]
    assert len(diffs) >= 3 and max(diffs) < 1e-3  # per checked size, and the overall line

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["z_dim"] == "16" and meta["input_multiple"] == "4" and "noise inputs are zero" in meta["fixed"]
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # batch, height and width are dynamic

    t = Translator.load(run, device="cpu")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "z"]
    for n, h, w in SIZES:
        x, z, expected = _reference(t, n, h, w, seed=h)
        got = session.run(None, {"image": x.numpy(), "z": z.numpy()})[0]
        assert got.shape == (n, 3, h, w)
        assert np.abs(got - expected).max() < 1e-3
        assert np.abs(got - expected).max() < np.abs(expected).mean() / 100  # not vacuous
    # z matters in the exported model
    x, z, _ = _reference(t, 1, 32, 32, seed=1)
    other = session.run(None, {"image": x.numpy(), "z": (z + 1).numpy()})[0]
    assert np.abs(other - session.run(None, {"image": x.numpy(), "z": z.numpy()})[0]).mean() > 1e-3


def test_torchscript_export_matches_pytorch_at_two_sizes(run, tmp_path, capsys):
    path = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(run), "--format", "torchscript", "--out", str(path),
                 "--check-size", "40x24"]) == 0
    assert "40x24" in capsys.readouterr().out
    t = Translator.load(run, device="cpu")
    extra = {"shapetex.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in newer PyTorch, but works
        model = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["shapetex.json"])["z_dim"] == "16"
    for n, h, w in SIZES:
        x, z, expected = _reference(t, n, h, w, seed=h + 1)
        with torch.no_grad():
            got = model(x, z).numpy()
        assert got.shape == (n, 3, h, w) and np.abs(got - expected).max() < 1e-4
    # the unused discriminator and the raw generator (the EMA copy translates) are not saved
    assert path.stat().st_size < 0.7 * sum(p.numel() * 4 for p in t.method.parameters())


def test_export_errors_are_clear(run, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(run), "--check-size", "big", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "HxW" in capsys.readouterr().err


def test_deterministic_method_exports_without_z_and_without_test_time_randomness(tmp_path):
    from shapetex.config import DataConfig, RunConfig, TrainConfig

    rng = np.random.default_rng(0)
    for i in range(6):
        a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        for side, img in (("A", a), ("B", 255 - a)):
            (tmp_path / "pairs" / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(tmp_path / "pairs" / side / f"{i}.png")
    cfg = RunConfig(method="pix2pix", out=str(tmp_path / "run"),
                    data=DataConfig(source="paired", paired=str(tmp_path / "pairs"), size=32),
                    train=TrainConfig(budget=8, batch=4, sample_every=0, checkpoint_every=0, monitor_every=0),
                    model={"g_channels": 8, "d_channels": 8})
    Trainer(cfg).run()
    path = tmp_path / "p2p.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(path)]) == 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["z_dim"] == "0" and "dropout is off" in meta["fixed"]
    t = Translator.load(tmp_path / "run", device="cpu")
    t.method.G.test_dropout = False  # what the export fixes
    t.method.settings.test_batch_stats = False
    x = torch.rand(2, 3, 40, 56) * 2 - 1
    got = session.run(None, {"image": x.numpy()})[0]
    assert np.abs(got - t.translate_tensor(x)[:, 0].numpy()).max() < 1e-3
    assert np.array_equal(got, session.run(None, {"image": x.numpy()})[0])  # deterministic


def test_docs_onnx_example_runs(run, tmp_path, monkeypatch):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "demo_export.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--checkpoint", str(run), "--out", "h2z.onnx"]) == 0
    Image.new("RGB", (70, 50), (100, 150, 30)).save("horse.jpg")
    exec(compile(code, "docs/demo_export.md", "exec"), {})
    assert Image.open("zebra.png").size == (70, 50)

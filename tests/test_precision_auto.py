"""precision auto: bf16 autocast for translation where the device computes it natively, fp32 elsewhere."""

import pytest
import torch
from helpers import tiny_config

import shapetex.engine
from shapetex.api import Translator
from shapetex.cli import main
from shapetex.engine import resolve_precision
from shapetex.train import Trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "run"
    Trainer(tiny_config(out, budget=16)).run()
    return out


def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    assert resolve_precision("auto", CPU) == "fp32"  # conftest: a CPU without native bf16
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr(shapetex.engine, "cpu_bf16_native", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_translation_follows_the_capability_and_stays_close_to_fp32(run, monkeypatch):
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    fp32 = Translator.load(run, device="cpu")
    assert fp32.precision == "fp32" and "no native bf16" in fp32.precision_line()
    want = fp32.translate_tensor(x, 2, seed=3)
    monkeypatch.setattr(shapetex.engine, "cpu_bf16_native", lambda: True)
    auto = Translator.load(run, device="cpu")
    assert auto.precision == "bf16" and "native" in auto.precision_line()
    got = auto.translate_tensor(x, 2, seed=3)
    assert got.dtype == torch.float32 and got.shape == want.shape
    diff = (got - want).abs()
    assert 0 < diff.max() < 0.1  # bf16 keeps 8 bits of mantissa: close, not equal
    assert Translator.load(run, device="cpu", precision="fp32").translate_tensor(x, 2, seed=3).equal(want)


def test_bf16_on_cpu_runs_the_translator_in_channels_last_and_fp32_stays_nchw(run, monkeypatch):
    """The streamlined translator is faster in NHWC under CPU bf16 (benchmarks/speed.py); fp32 keeps NCHW, and
    the layout changes the order of sums, not the result beyond bf16's rounding."""
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    fp32 = Translator.load(run, device="cpu")
    assert not fp32.channels_last
    assert all(p.is_contiguous() for p in fp32.method.parameters())
    monkeypatch.setattr(shapetex.engine, "cpu_bf16_native", lambda: True)
    auto = Translator.load(run, device="cpu")
    assert auto.channels_last
    kernels = [p for p in auto.method.parameters() if p.ndim == 4 and p.shape[-1] > 1]  # conv kernels
    assert kernels and all(w.is_contiguous(memory_format=torch.channels_last) for w in kernels)
    nchw = Translator.load(run, device="cpu")
    nchw.channels_last = False
    for net in nchw.method.networks().values():
        net.to(memory_format=torch.contiguous_format)
    got, ref = auto.translate_tensor(x, 2, seed=3), nchw.translate_tensor(x, 2, seed=3)
    assert got.is_contiguous() and (got - ref).abs().max() < 0.05
    assert (got - fp32.translate_tensor(x, 2, seed=3)).abs().max() < 0.1


def test_translate_says_which_precision_it_chose(run, tmp_path, capsys):
    img = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 60, 40)).save(img)
    assert main(["translate", "--checkpoint", str(run), "--input", str(img), "--out", str(tmp_path / "o")]) == 0
    assert "precision: fp32 (this device has no native bf16)" in capsys.readouterr().out

"""benchmarks/speed.py compares with reference figures given on the command line, never with constants."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SPEED)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_reference_figures_come_from_flags_and_json(speed, tmp_path):
    path = tmp_path / "ref.json"
    path.write_text('{"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900}, "pix2pix": {"s_per_iter": 0.7}}')
    refs = speed.parse_references(["pix2pix=0.6"], str(path))
    assert refs == {"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900}, "pix2pix": {"s_per_iter": 0.6, "peak_mb": None}}
    for bad in ("pix2pix", "pix2pix=fast", "stylegan=1.0"):
        with pytest.raises(SystemExit, match="--reference"):
            speed.parse_references([bad], None)


def test_the_table_divides_by_the_given_reference_and_says_when_there_is_none(speed):
    rows = [{"row": "cyclegan-r9-128", "setting": "fp32", "ref": "cyclegan", "batch": 1, "s_per_iter": 4.0,
             "threads": 2, "peak_rss_mb": 1520.0, "flops_per_step": 4e11}]
    with_ref = speed.train_table(rows, 1e11, "peak", {"cyclegan": {"s_per_iter": 5.0, "peak_mb": 1900.0}})
    assert "| 1.25x | 1.00x |" in with_ref and "| 80% |" in with_ref  # 5.0 / 4.0, and 1520 / 1900 MB
    without = speed.train_table(rows, 1e11, "peak", {})
    assert "| n/a | 1.00x |" in without
    assert "No reference figures were given" in speed.reference_note({})
    assert "cyclegan: 5.0 s/iter, peak 1900 MB" in speed.reference_note({"cyclegan": {"s_per_iter": 5.0,
                                                                                       "peak_mb": 1900.0}})


def test_the_quickstart_row_trains_the_quickstarts_networks(speed):
    from shapetex.quickstart import quickstart_config

    row = next(r for r in speed.ROWS if r.name == "quickstart-32")
    cfg = quickstart_config("unused")
    assert (row.size, row.batch, row.model) == (cfg.data.size, cfg.train.batch, cfg.model)


def test_the_profile_splits_a_real_step_into_operator_families(speed):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.InstanceNorm2d(8), torch.nn.ReLU(),
                              torch.nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1))
    opt = torch.optim.Adam(net.parameters())  # the per-parameter loop: its element-wise ops are the optimizer's
    x = torch.randn(2, 3, 16, 16)

    def step(i):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()

    prof = speed.profile_steps(step, 3, top=5)
    families = prof["families"]
    for family in ("convolution", "transposed conv", "normalisation", "optimizer"):
        assert families[family]["ms_per_step"] > 0, family
    assert abs(sum(f["share"] for f in families.values()) - 1) < 1e-6
    assert len(prof["top"]) == 5 and prof["top"][0]["share"] >= prof["top"][-1]["share"]
    table = speed.profile_table([{"row": "r", "setting": "fp32", "profile": prof}])
    assert "### r / fp32" in table and "| `" in table
    # names PyTorch gives the two convolution kinds go to their own families
    assert speed.op_family("aten::convolution_backward") == "convolution"
    assert speed.op_family("aten::slow_conv_transpose2d") == "transposed conv"
    assert speed.op_family("aten::convolution_backward (transposed)") == "transposed conv"
    assert any(o["op"].endswith("(transposed)") for o in prof["top"])  # told apart by its flag, not its name
    assert speed.op_family("aten::mul (in Adam.step)") == "optimizer"
    assert speed.op_family("aten::cudnn_convolution_transpose") == "transposed conv"  # the GPU's own op
    assert speed.op_family("aten::upsample_bilinear2d_backward") == "resampling"  # not "linear"
    assert speed.op_family("aten::threshold_backward") == "activation"  # ReLU's backward


def test_bad_profile_and_translation_settings_fail_before_anything_runs(speed, capsys):
    for argv, said in ((["--profile", "-1"], "cannot be negative"),
                       (["--translate-settings", "fp32 no_grad, nope"], "unknown translation settings ['nope']")):
        with pytest.raises(SystemExit):
            speed.main(argv)
        assert said in capsys.readouterr().err


def test_rows_not_started_within_the_time_budget_are_listed_as_skipped(speed, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert speed.main(["--rows", "quickstart-32", "--settings", "fp32", "--budget-s", "0.001", "--threads", "1",
                       "--translate-settings", "fp32 no_grad", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [(r["row"], r["setting"]) for r in results] == [("quickstart-32", "fp32"), ("translate-256", "fp32 no_grad")]
    assert all(r["skipped"] == "--budget-s 0.001 spent" for r in results)
    assert "skipped: --budget-s 0.001 spent" in capsys.readouterr().out


def test_the_gpu_script_says_it_skipped_on_a_machine_without_a_gpu(tmp_path):
    script = SPEED.parent / "gpu.sh"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "benchmarks/gpu.sh: skipped: no CUDA device here" in proc.stdout
    assert json.loads((tmp_path / "out" / "gpu.json").read_text())["skipped"].startswith("no CUDA device")
    assert (tmp_path / "out" / "gpu.md").read_text().startswith("# GPU benchmark: skipped")


def test_the_precision_table_puts_both_precisions_of_a_row_side_by_side(speed):
    train = [{"row": "cut-r9-128", "setting": "fp32", "s_per_iter": 3.0},
             {"row": "cut-r9-128", "setting": "bf16", "s_per_iter": 1.5}]
    translate = [{"row": "translate-256", "setting": "inference_mode", "s_per_iter": 8.0},
                 {"row": "translate-256", "setting": "bf16", "skipped": "AVX2 CPU without native bf16"}]
    text = speed.precision_table(train, translate, False, "AVX2 CPU without native bf16")
    assert "native bf16 here: no, AVX2 CPU without native bf16" in text
    assert "| train | cut-r9-128 | fp32 | 3.000 | bf16 | 1.500 | 2.00x |" in text
    assert "| translate | translate-256 | inference_mode | 8.000 | bf16 | AVX2 CPU without native bf16 | |" in text


def test_every_translation_row_runs_its_methods_translate(speed):
    """One timed forward per method at a small size: the rows build each method's reference generator."""
    for name in speed.TRANSLATE_METHODS:
        size = 256 if name == "pix2pix-unet256" else 32  # a U-Net of depth 8 needs 256 px
        out = speed.child_translate({"method": name, "size": size, "batch": 1, "device": "cpu",
                                     "setting": {"inference_mode": True, "threads": 1}, "steps": 1, "warmup": 0})
        assert out["s_per_iter"] > 0 and out["steps"] == 1


def test_the_cpu_name_tells_zen_3_from_zen_4_and_names_the_bf16_flags(speed):
    def info(model, flags):
        return (f"vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\nmodel name\t: AMD EPYC\n"
                f"flags\t\t: fpu avx2 {flags}\n")

    assert speed.cpu_name(info(1, "")) == "AMD EPYC (family 25 model 1, Zen 3)"
    assert speed.cpu_name(info(17, "avx512f avx512_bf16")) == "AMD EPYC (family 25 model 17, Zen 4, avx512_bf16)"
    intel = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel Xeon\nflags\t: amx_bf16\n"
    assert speed.cpu_name(intel) == "Intel Xeon (family 6 model 143, amx_bf16)"

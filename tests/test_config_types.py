"""Settings are typed: YAML files and --set values become the declared type or are refused in one line."""

import pytest

from shapetex.cli import main
from shapetex.config import ConfigError, RunConfig, apply_override, coerce, resolve_method_config
from shapetex.methods.adversarial import AdversarialSettings


def test_method_settings_from_yaml_text_become_numbers():
    s = resolve_method_config(AdversarialSettings, {"lr_g": "1e-3", "z_dim": "2e1"})  # YAML 1.1 keeps these text
    assert s.lr_g == 1e-3 and isinstance(s.lr_g, float) and s.z_dim == 20 and isinstance(s.z_dim, int)
    with pytest.raises(ConfigError, match=r"setting model.lr_g: 'fast' is not a number"):
        resolve_method_config(AdversarialSettings, {"lr_g": "fast"})
    with pytest.raises(ConfigError, match=r"model.z_dim: 2.5 is not a whole number"):
        resolve_method_config(AdversarialSettings, {"z_dim": 2.5})


@pytest.mark.parametrize("text, want", [("no", False), ("No", False), ("false", False), ("0", False),
                                        ("yes", True), ("true", True), ("1", True)])
def test_booleans_accept_only_true_false_yes_no_1_0(tmp_path, text, want):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  flip: '{text}'\n")  # quoted: YAML hands over the text
    assert RunConfig.load(path).data.flip is want
    cfg = RunConfig()
    apply_override(cfg, "data.flip", text)
    assert cfg.data.flip is want


@pytest.mark.parametrize("value", ["'maybe'", "2", "[1]"])
def test_other_boolean_values_are_refused_naming_the_file_and_key(tmp_path, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  flip: {value}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: setting data.flip: .* is not true or false"):
        RunConfig.load(path)


def test_coerce_handles_optional_lists_and_refuses_wrong_kinds():
    assert coerce("none", int | None, "k") is None and coerce("3", int | None, "k") == 3
    assert coerce("a,b", list[str], "k") == ["a", "b"] and coerce(["x"], tuple[str, ...], "k") == ("x",)
    with pytest.raises(ConfigError, match=r"setting k: \{'a': 1\} is not text"):
        coerce({"a": 1}, str, "k")
    with pytest.raises(ConfigError, match="is not a whole number"):
        coerce(True, int, "k")


def test_yaml_errors_and_python_tags_are_one_line_naming_the_file(tmp_path, capsys):
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo owned > %s']\n" % (tmp_path / "owned"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    for path in (evil, broken):
        assert main(["train", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}: not valid YAML" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "owned").exists()
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    assert main(["train", "--config", str(listed)]) == 2
    assert "list.yaml: the settings: expected a mapping" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--batch", "0"], "train.batch must be at least 1, not 0"),
    (["--batch", "-1"], "train.batch must be at least 1, not -1"),
    (["--budget", "0"], "train.budget must be at least 1, not 0"),
    (["--set", "train.batch=eight"], "setting train.batch: 'eight' is not a whole number"),
    (["--set", "model.lr_g=fast"], "setting model.lr_g: 'fast' is not a number"),
])
def test_impossible_training_settings_are_refused_before_anything_runs(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--size", "16", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "config.json").exists()


def test_quickstart_refuses_a_zero_budget(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--budget", "0"]) == 2
    assert "train.budget must be at least 1, not 0" in capsys.readouterr().err


def test_a_yaml_text_number_trains(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--size", "16", "--batch", "4", "--budget", "4", "--out", str(out),
                 "--set", "model.lr_g=1e-3", "--set", "data.flip=no", "--set", "data.builtin_count=8",
                 "--set", "model.g_channel_max=16", "--set", "model.d_channel_max=16",
                 "--set", "train.sample_every=0", "--set", "train.monitor_every=0"]) == 0
    assert (out / "config.json").exists()


def _train_config(*argv: str):
    from shapetex import cli

    return cli.config_from_args(cli.build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("method, setting, message", [
    ("cyclegan", "model.t_width=abc", r"^setting model.t_width: 'abc' is not a whole number$"),
    ("pix2pix", "model.lambda_l1=[1, 2]", r"^setting model.lambda_l1: \[1, 2\] is not a number$"),
    ("adversarial", "model.fourier_init=fast", r"^setting model.fourier_init: 'fast' is not a number$"),
    ("cut", "model.nce_layers=a,b", r"^setting model.nce_layers: 'a,b' is not a list .* or none$"),
    ("asymmetric", "model.tie=maybe", r"^setting model.tie: 'maybe' is not true or false \(yes/no, 1/0\)$"),
    ("cyclegan", "model.t_blokcs=3", r"^unknown model settings: \['t_blokcs'\]; known: \[.*'t_blocks'"),
])
def test_model_overrides_are_typed_when_the_command_line_is_read(method, setting, message):
    """A model.* value of the wrong type (or name) is refused in one line naming the key, the value and the
    type, while the command line is read: before any run folder, device or data is touched."""
    with pytest.raises(ConfigError, match=message):
        _train_config("--method", method, "--set", setting)


def test_model_settings_in_a_yaml_file_are_typed_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: asymmetric\nmodel:\n  r_blocks: two\n")
    with pytest.raises(ConfigError, match=r"^setting model.r_blocks: 'two' is not a whole number or none$"):
        _train_config("--config", str(path))
    assert main(["train", "--config", str(path)]) == 2


def test_defaults_follow_the_typed_values_not_the_raw_text():
    """Defaults that depend on other settings read them typed: r_width follows t_width as a number, and a
    multi_domain given as text is a boolean before it picks the two-domain defaults."""
    from shapetex.methods import build_method, resolve_settings

    cfg = RunConfig(method="asymmetric")
    cfg.data.size = 16
    apply_override(cfg, "model.t_width", "'8'")  # YAML text: '8'
    apply_override(cfg, "model.multi_domain", "'no'")
    apply_override(cfg, "model.gan_loss", "wgan-gp")
    s = resolve_settings(cfg)
    assert s.t_width == 8 and s.r_width == 8 and isinstance(s.r_width, int)
    assert s.multi_domain is False and (s.padding, s.d_norm) == ("reflect", "instance") and s.g_every == 5
    assert build_method(cfg).G.R_BA.width == 8


def test_the_word_none_is_a_norm_not_the_automatic_choice():
    """model.d_norm=none asks for no norm; it used to read as None, the automatic choice (instance norm with
    two domains), so the setting was silently ignored."""
    from torch import nn

    from shapetex.methods import build_method

    cfg = RunConfig(method="cyclegan")
    cfg.data.size = 16
    apply_override(cfg, "model.d_norm", "none")
    method = build_method(cfg)
    assert method.settings.d_norm == "none"
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in method.D.modules())
    cfg.model = {}
    assert build_method(cfg).settings.d_norm == "instance"  # auto, with two domains

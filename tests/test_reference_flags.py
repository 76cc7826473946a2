"""The reference's train.py flags on `shapetex train`: aliases where they mean a shapetex setting, else one line
with the shapetex way; hidden from --help."""

from __future__ import annotations

import pytest

from shapetex import cli
from shapetex.methods import build_method


def config(*argv: str):
    return cli.config_from_args(cli.build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("argv,way", [
    (["--n_epochs", "200"], "--budget IMAGES"),
    (["--n_epochs_decay", "100"], "--set model.decay_fraction=F"),
    (["--continue_train"], "--resume RUN"),
    (["--preprocess", "scale_width"], "--preprocess scale_width_and_crop --load_size W"),
    (["--preprocess", "none"], "--preprocess crop --crop_size N"),
    (["--preprocess", "scale_shortside"], "shapetex has resize_and_crop, crop, scale_width_and_crop"),
    (["--load_size", "200", "--crop_size", "256"], "data.load_size must be at least data.size (256), not 200"),
    (["--load_size", "286", "--preprocess", "crop"], "crop mode does not resize"),
    (["--results_dir", "res"], "shapetex translate --out DIR"),
    (["--input_nc", "1"], "shapetex translates RGB images"),
    (["--output_nc", "1"], "shapetex translates RGB images"),
    (["--model", "cut"], "--method"),
    (["--method", "adversarial", "--netG", "resnet_6blocks"], "adversarial has its own generator"),
    (["--method", "pix2pix", "--netG", "resnet_9blocks"], "--netG unet_128 | unet_256"),
    (["--method", "cyclegan", "--netG", "unet_256"], "--set model.t_blocks=N"),
    (["--name", "x", "--out", "runs/y"], "--name x means --out runs/x, but --out runs/y is given too"),
    (["--crop_size", "128", "--size", "64"], "--crop_size 128 means --size 128"),
])
def test_refused_in_one_line_with_the_shapetex_way(tmp_path, capsys, argv, way):
    out = [] if "--out" in argv else ["--out", str(tmp_path / "r")]
    assert cli.main(["train", *argv, *out]) == 2
    err = capsys.readouterr().err
    assert way in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_aliases_that_mean_a_shapetex_setting():
    assert config("--name", "h2z").out == "runs/h2z"
    assert config("--name", "h2z", "--out", "runs/h2z").out == "runs/h2z"
    assert config("--crop_size", "128").data.size == 128
    cfg = config("--method", "pix2pix", "--load_size", "143", "--crop_size", "128")
    assert (cfg.data.load_size, cfg.data.size, cfg.data.preprocess) == (143, 128, "resize_and_crop")
    for mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        assert config("--preprocess", mode).data.preprocess == mode
    assert config("--load_size", "100", "--set", "data.load_size=90").data.load_size == 90  # --set wins
    assert config("--input_nc", "3", "--output_nc", "3").data.size == 64  # RGB: nothing to change
    assert config("--model", "cycle_gan").method == "cyclegan"
    cfg = config("--model", "cycle_gan", "--dataroot", "h2z", "--netG", "resnet_6blocks", "--set", "model.t_width=4")
    assert cfg.model["t_blocks"] == 6 and cfg.data.domains == ["h2z/trainA", "h2z/trainB"]
    assert build_method(cfg).settings.t_blocks == 6
    assert config("--method", "cyclegan", "--netG", "resnet_9blocks").model["t_blocks"] == 9
    assert config("--method", "pix2pix", "--netG", "unet_128", "--size", "128").model["depth"] == 7
    assert config("--method", "pix2pix", "--netG", "unet_256").model["depth"] == 8
    # an explicit --set wins over the alias
    assert config("--method", "cyclegan", "--netG", "resnet_9blocks", "--set", "model.t_blocks=2").model[
        "t_blocks"] == 2


def test_hidden_from_help():
    text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--budget" in text
    for flag in ("--n_epochs", "--netG", "--name", "--continue_train", "--crop_size", "--load_size", "--preprocess"):
        assert flag not in text

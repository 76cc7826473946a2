"""`shapetex import`: reference generators (and discriminators) become run folders that Translator, translate
and export load, giving the reference network's outputs exactly; anything else is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from reference_nets import RefCutResnet, RefNLayerD, RefPatchSampleF, RefResnet, RefUnet, randomize

from shapetex import cli
from shapetex.api import Translator
from shapetex.checkpoint import find_checkpoint
from shapetex.nets.patchnce import l2_normalize
from shapetex.nets.resnet_gen import ResnetGenerator
from shapetex.reference_weights import to_reference

NGF = 4


def run_import(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["import", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def save(tmp_path, name: str, sd) -> str:
    path = tmp_path / name
    torch.save(sd, path)
    return str(path)


def x_at(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("blocks", [6, 9])
def test_resnet_generators_import_as_cyclegan_with_identical_outputs(tmp_path, capsys, blocks):
    ref = randomize(RefResnet(blocks, NGF)).eval()
    d_ref = randomize(RefNLayerD(3, NGF, 3, batch_norm=False), seed=1).eval()
    rev = randomize(RefResnet(blocks, NGF), seed=2).eval()
    pth = save(tmp_path, "g.pth", ref.state_dict())
    code, out, _ = run_import(capsys, "--pth", pth, "--netD-pth", save(tmp_path, "d.pth", d_ref.state_dict()),
                              "--reverse-pth", save(tmp_path, "gb.pth", rev.state_dict()), "--size", "32",
                              "--out", str(tmp_path / "run"))  # --netG told from the keys
    assert code == 0 and f"resnet_{blocks}blocks" in out
    t = Translator.load(tmp_path / "run")
    cfg = t.config
    assert cfg.method == "cyclegan" and cfg.model["t_blocks"] == blocks and cfg.model["t_width"] == NGF
    x = x_at(32)
    with torch.no_grad():
        assert torch.equal(t.translate_tensor(x)[:, 0], ref(x))  # to B: G_AB is the reference's G_A
        assert torch.equal(t.translate_tensor(x, to="A")[:, 0], rev(x))
        assert torch.equal(t.method.D.D_B(x), d_ref(x))  # the reference's D_A judges G_A's outputs: domain B
    state = json.loads((find_checkpoint(tmp_path / "run") / "state.json").read_text())
    assert state["imported"]["untrained"] == ["D_A"] and state["imported"]["netG"] == f"resnet_{blocks}blocks"


@pytest.mark.parametrize("num_downs", [7, 8])  # unet_128, unet_256
def test_unet_generators_import_as_pix2pix_with_identical_outputs(tmp_path, capsys, num_downs):
    ref = randomize(RefUnet(num_downs, NGF))
    d_ref = randomize(RefNLayerD(6, NGF, 3), seed=1).eval()
    size = 2**num_downs
    code, out, _ = run_import(capsys, "--pth", save(tmp_path, "g.pth", ref.state_dict()), "--netG",
                              f"unet_{size}", "--netD-pth", save(tmp_path, "d.pth", d_ref.state_dict()),
                              "--direction", "BtoA", "--out", str(tmp_path / "run"))
    assert code == 0
    t = Translator.load(tmp_path / "run")
    assert t.config.method == "pix2pix" and t.config.data.size == size and t.config.data.direction == "BtoA"
    x = x_at(size, n=1)
    with torch.no_grad():
        # as the reference tests by default: dropout on, batch norm on the image's own statistics (batch 1)
        torch.manual_seed(0)  # what translate_tensor seeds for seed 0, sample 0
        want = ref.train()(x.clone())
        ref.load_state_dict(randomize(RefUnet(num_downs, NGF)).state_dict())  # undo its running-stat update
        assert (t.translate_tensor(x)[:, 0] - want).abs().max() <= 1e-5
        # and with the running statistics, no dropout (the reference's --eval; shapetex export)
        t.method.G.test_dropout, t.method.settings.test_batch_stats = False, False
        assert torch.equal(t.translate_tensor(x)[:, 0], ref.eval()(x.clone()))
        y = x_at(size, n=1, seed=1)
        assert torch.equal(t.method.D(torch.cat([x, y], 1)), d_ref(torch.cat([x, y], 1)))


CUT_TAPS = [0, 4, 8, 12, 16]  # the reference's default --nce_layers


def reference_taps(ref: RefCutResnet, x: torch.Tensor, layers=CUT_TAPS) -> list[torch.Tensor]:
    """The reference's encode_only pass: the outputs of its flat Sequential's layers `layers`."""
    feats = []
    for i, layer in enumerate(ref.model[:max(layers) + 1]):
        x = layer(x)
        if i in layers:
            feats.append(x)
    return feats


@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_cut_generator_heads_and_discriminator_import_with_identical_outputs(tmp_path, capsys, method):
    """CUT's antialiased ResNet (its fixed blur filters saved as model.N.filt), its PatchSampleF heads and its
    PatchGAN load into a cut / fastcut run: the same translations, the same taps and projected patches."""
    ref = randomize(RefCutResnet(6, NGF)).eval()
    assert any(k.endswith(".filt") for k in ref.state_dict())
    f_ref = randomize(RefPatchSampleF([3, 2 * NGF, 4 * NGF, 4 * NGF, 4 * NGF], nc=8), seed=3)
    d_ref = randomize(RefNLayerD(3, NGF, 3, batch_norm=False), seed=1).eval()
    args = ["--pth", save(tmp_path, "g.pth", ref.state_dict()), "--netD-pth", save(tmp_path, "d.pth",
            d_ref.state_dict()), "--netF-pth", save(tmp_path, "f.pth", f_ref.state_dict()), "--size", "32"]
    code, out, _ = run_import(capsys, *args, *([] if method == "cut" else ["--method", method]),
                              "--out", str(tmp_path / "run"))
    assert code == 0 and "checked 4 fixed blur filters" in out, out
    t = Translator.load(tmp_path / "run")
    cut = t.method
    assert t.config.method == method and cut.nce_layers == CUT_TAPS and cut.settings.nce_units == 8
    x = x_at(32)
    with torch.no_grad():
        assert torch.equal(t.translate_tensor(x)[:, 0], ref(x))
        assert torch.equal(cut.D(x), d_ref(x))
        ours, ids = cut.F(cut.G.features(x, cut.nce_layers), 5)
        for i, (feat, got) in enumerate(zip(reference_taps(ref, x), ours)):
            patches = feat.permute(0, 2, 3, 1).flatten(1, 2)[:, ids[i], :].flatten(0, 1)
            assert torch.equal(got, l2_normalize(getattr(f_ref, f"mlp_{i}")(patches)))
    state = json.loads((find_checkpoint(tmp_path / "run") / "state.json").read_text())
    assert state["imported"]["method"] == method and state["imported"]["untrained"] == []


def test_cut_imports_are_refused_where_they_do_not_fit(tmp_path, capsys):
    ref = randomize(RefCutResnet(6, NGF))
    g = save(tmp_path, "g.pth", ref.state_dict())
    bad_blur = dict(ref.state_dict(), **{"model.7.filt": torch.ones_like(ref.state_dict()["model.7.filt"])})
    unet = save(tmp_path, "u.pth", RefUnet(7, NGF).state_dict())
    cases = [
        (["--pth", g, "--method", "cyclegan"], "has CUT's antialiased sampling"),
        (["--pth", save(tmp_path, "bad.pth", bad_blur)], "model.7.filt is not the fixed binomial blur filter"),
        (["--pth", unet, "--netF-pth", g], "--netF-pth is for CUT's PatchNCE heads; pix2pix has none"),
        (["--pth", unet, "--method", "cut"], "a unet_128 generator cannot be imported as cut"),
        (["--pth", g, "--netF-pth", g], "are not CUT's PatchSampleF"),
        (["--pth", g, "--netF-pth", save(tmp_path, "f.pth", RefPatchSampleF([3, 8, 16], nc=8).state_dict())],
         "missing (mlp_3.0"),
    ]
    for args, says in cases:
        code, _, err = run_import(capsys, *args, "--size", "32", "--out", str(tmp_path / "run"))
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not (tmp_path / "run").exists()


def test_shapetex_network_round_trip_and_dataparallel_prefix(tmp_path, capsys):
    """A shapetex ResnetGenerator renamed to the reference's names by module order, saved as DataParallel
    would (`module.`), imports back to the same outputs."""
    torch.manual_seed(0)
    g = randomize(ResnetGenerator(6, NGF)).eval()
    sd = {f"module.{k}": v for k, v in to_reference(g).items()}
    assert "module.model.1.weight" in sd and "module.model.10.conv_block.1.weight" in sd
    assert "module.model.23.weight" in sd  # the last 7x7 conv: 10 + 6 blocks + 7
    code, _, _ = run_import(capsys, "--pth", save(tmp_path, "g.pth", sd), "--netG", "resnet_6blocks", "--size",
                            "32", "--out", str(tmp_path / "run"))
    assert code == 0
    x = x_at(32)
    with torch.no_grad():
        assert torch.equal(Translator.load(tmp_path / "run").translate_tensor(x)[:, 0], g(x))


def test_old_checkpoint_extras_are_tolerated(tmp_path, capsys):
    """PyTorch < 0.4 saved instance norm running statistics (the public CycleGAN models carry them); batch
    norm's num_batches_tracked is absent from files older than 0.4.1."""
    ref = randomize(RefResnet(6, NGF)).eval()
    sd = dict(ref.state_dict())
    sd["model.2.running_mean"], sd["model.2.running_var"] = torch.zeros(NGF), torch.ones(NGF)
    code, out, _ = run_import(capsys, "--pth", save(tmp_path, "g.pth", sd), "--size", "32", "--out",
                              str(tmp_path / "r"))
    assert code == 0 and "ignored 2 instance-norm running statistics" in out
    with torch.no_grad():
        assert torch.equal(Translator.load(tmp_path / "r").translate_tensor(x_at(32))[:, 0], ref(x_at(32)))
    unet = randomize(RefUnet(7, NGF)).state_dict()
    unet = {k: v for k, v in unet.items() if not k.endswith("num_batches_tracked")}
    assert run_import(capsys, "--pth", save(tmp_path, "u.pth", unet), "--out", str(tmp_path / "u"))[0] == 0


def test_imported_run_translates_and_exports_from_the_command_line(tmp_path, capsys):
    from PIL import Image

    ref = randomize(RefResnet(6, NGF)).eval()
    run = str(tmp_path / "run")
    assert run_import(capsys, "--pth", save(tmp_path, "g.pth", ref.state_dict()), "--size", "32", "--out", run)[0] == 0
    Image.new("RGB", (40, 24), (200, 30, 90)).save(tmp_path / "in.png")
    assert cli.main(["translate", "--checkpoint", run, "--input", str(tmp_path / "in.png"), "--out",
                     str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "in.png").size == (40, 24)
    assert cli.main(["export", "--checkpoint", run, "--format", "torchscript", "--out", str(tmp_path / "m.pt"),
                     "--check-size", "32x32"]) == 0
    # a folder holding a run is not overwritten unless asked
    code, _, err = run_import(capsys, "--pth", str(tmp_path / "g.pth"), "--size", "32", "--out", run)
    assert code == 2 and "already holds a run" in err
    assert run_import(capsys, "--pth", str(tmp_path / "g.pth"), "--size", "32", "--out", run, "--overwrite")[0] == 0


class Opaque:
    """Not a tensor: weights_only loading must refuse it without running anything."""


@pytest.mark.parametrize("obj,says", [
    ([torch.zeros(1), torch.zeros(2)], "holds a list, not a state dict"),
    ({"netG": "resnet_9blocks", "epoch": "200"}, "values not tensors ('netG': str, 'epoch': str)"),
    ({"model.1.weight": torch.zeros(4, 3, 7, 7), "opt": Opaque()}, "weights_only=True refused it: it pickles"),
    ({}, "holds an empty dict"),
    ({"conv1.weight": torch.zeros(4, 3, 3, 3)}, "in no generator layout shapetex knows"),
])
def test_refuses_what_is_not_a_known_state_dict_in_one_line(tmp_path, capsys, obj, says):
    code, _, err = run_import(capsys, "--pth", save(tmp_path, "x.pth", obj), "--out", str(tmp_path / "run"))
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_refuses_a_wrong_architecture_or_shapes_in_one_line(tmp_path, capsys):
    g9 = save(tmp_path, "g9.pth", randomize(RefResnet(9, NGF)).state_dict())
    cases = [
        (["--pth", g9, "--netG", "resnet_6blocks"], "not the layout of resnet_6blocks, ngf 4: 4 missing"),
        (["--pth", g9, "--netG", "unet_256"], "not the layout of unet_256: no 4-d model.model.0.weight"),
        (["--pth", save(tmp_path, "gray.pth", RefResnet(6, NGF, input_nc=1).state_dict())],
         "model.1.weight has shape (4, 1, 7, 7), resnet_6blocks, ngf 4 expects (4, 3, 7, 7)"),
        (["--pth", save(tmp_path, "u6.pth", RefUnet(6, NGF).state_dict())], "a U-Net with 6 levels (unet_64)"),
        (["--pth", g9, "--netD-pth", g9], "are not an NLayerDiscriminator"),
        (["--pth", save(tmp_path, "u.pth", RefUnet(7, NGF).state_dict()), "--size", "64"],
         "--size must be at least 128"),
    ]
    for args, says in cases:
        code, _, err = run_import(capsys, *args, "--out", str(tmp_path / "run"))
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (args, err)

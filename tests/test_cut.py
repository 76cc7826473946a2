"""CUT / FastCUT: the PatchNCE loss by hand, the layer mapping, the identity term, shapes, the schedule, exact
resume, translation from a checkpoint, and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from shapetex.api import Translator
from shapetex.cli import main
from shapetex.config import RunConfig
from shapetex.losses import patch_nce_loss
from shapetex.methods import build_method, get_method
from shapetex.methods.cut import CUT, FastCUT, paper_nce_layers
from shapetex.nets.patchnce import PatchSampleMLP, l2_normalize
from shapetex.nets.resnet_gen import ResnetGenerator
from shapetex.train import Trainer

TINY = dict(width=4, blocks=2, d_width=4, d_layers=2, num_patches=8, nce_units=8, sample_rows=2)


def cut_config(out, method="cut", size=32, budget=6, batch=1, **model) -> RunConfig:
    cfg = RunConfig(method=method, out=str(out))
    cfg.data.size, cfg.data.builtin_count = size, 16
    t = cfg.train
    t.budget, t.batch, t.seed, t.threads = budget, batch, 0, 1
    t.log_every, t.monitor_every, t.sample_every, t.checkpoint_every = 2, 0, 0, 0
    cfg.model = {**TINY, **model}
    return cfg


# ---- the loss --------------------------------------------------------------------------------------
def test_patch_nce_loss_matches_a_hand_computed_case():
    """Tiny feature maps, fixed location ids: sample, project, normalise and score by hand."""
    torch.manual_seed(0)
    n, c, h, w, T = 2, 3, 2, 3, 0.07
    fq, fk = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    ids = torch.tensor([4, 0, 2])  # flat ids y * w + x: (1, 1), (0, 0), (0, 2)
    mlp = PatchSampleMLP([c], units=5)
    keys, used = mlp([fk], 99)  # random ids, all 6 locations (99 > h * w)
    assert used[0].numel() == h * w and sorted(used[0].tolist()) == list(range(h * w))
    keys, used = mlp([fk], 3, [ids])
    queries, used_q = mlp([fq], 3, used)
    assert torch.equal(used_q[0], ids)  # the queries' locations are the keys'
    loss = patch_nce_loss(queries[0], keys[0], n, T)

    head = mlp.heads[0].requires_grad_(False)
    total, count = 0.0, 0
    for b in range(n):
        proj = {}
        for name, fmap in (("q", fq), ("k", fk)):
            vecs = [fmap[b, :, int(i) // w, int(i) % w] for i in ids]
            proj[name] = [v / (v.norm() + 1e-7) for v in (head(x) for x in vecs)]
        for i in range(len(ids)):
            q = proj["q"][i]
            logits = [float(q @ proj["k"][i]) / T]  # the positive: the key at the same location
            for j in range(len(ids)):  # negatives: the other locations of the same image
                logits.append(float(q @ proj["k"][j]) / T if j != i else -10.0 / T)  # the reference masks j == i
            m = max(logits)
            total += -(logits[0] - m - math.log(sum(math.exp(v - m) for v in logits)))
            count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    # keys are detached: only the queries carry gradient
    qg, kg = queries[0].detach().requires_grad_(), keys[0].detach().requires_grad_()
    patch_nce_loss(qg, kg, n, T).backward()
    assert qg.grad is not None and kg.grad is None


def test_matching_patches_score_lower_than_shuffled_ones():
    torch.manual_seed(1)
    k = l2_normalize(torch.randn(2 * 16, 8))
    assert patch_nce_loss(k, k, 2).item() < 0.05
    assert patch_nce_loss(k.roll(1, 0), k, 2).item() > 1.0


def test_heads_are_built_eagerly_from_the_tapped_channels():
    g = ResnetGenerator(9, 64)
    layers = paper_nce_layers(g)
    assert layers == [0, 4, 7, 10, 14]  # the reference's 0, 4, 8, 12, 16 on shapetex's layout
    trunk = g.trunk()
    assert [type(trunk[i]).__name__ for i in layers] == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResidualBlock",
                                                         "ResidualBlock"]
    assert trunk[4].stride == (2, 2) and trunk[7].stride == (2, 2)
    assert trunk[10] is g.blocks[0] and trunk[14] is g.blocks[4]
    assert g.feature_channels(layers) == [3, 128, 256, 256, 256]  # the reference's MLP input sizes
    mlp = PatchSampleMLP(g.feature_channels(layers))
    assert [h[0].in_features for h in mlp.heads] == [3, 128, 256, 256, 256]
    assert all(h[2].out_features == 256 for h in mlp.heads)
    with pytest.raises(ValueError, match="in-place ReLU"):
        g.features(torch.zeros(1, 3, 8, 8), [2])  # a norm output the ReLU after it overwrites
    assert paper_nce_layers(ResnetGenerator(2, 4)) == [0, 4, 7, 10, 11]  # fewer than 5 blocks: the last one


def test_networks_start_from_the_references_xavier_init():
    """CUT's --init_type defaults to xavier with gain 0.02: every conv and linear weight has the Xavier-normal
    spread gain * sqrt(2 / (fan_in + fan_out)), not the normal init's flat 0.02; model.init=normal gives that."""
    def spreads(method):
        out = []
        for net in (method.G, method.F, method.D):
            for m in net.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.numel() >= 2000:
                    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
                    out.append((m.weight.std().item(), 0.02 * math.sqrt(2.0 / (fan_in + fan_out))))
                    assert m.bias is None or not m.bias.any()
        return out

    xavier = spreads(build_method(cut_config("unused", width=16, d_width=16, nce_units=64)))
    assert len(xavier) >= 8
    for got, want in xavier:
        assert abs(got / want - 1) < 0.1, (got, want)
    normal = spreads(build_method(cut_config("unused", width=16, d_width=16, nce_units=64, init="normal")))
    assert all(abs(got / 0.02 - 1) < 0.1 for got, _ in normal)
    with pytest.raises(ValueError, match="model.init"):
        build_method(cut_config("unused", init="kaiming"))


# ---- the method ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_at_two_sizes(tmp_path, size):
    # the normal init: with Xavier's at gain 0.02 the tiny heads' outputs are so small that the eps shows
    m = build_method(cut_config(tmp_path, size=size, blocks=None, init="normal"))
    assert m.settings.blocks == 6 and m.nce_layers == [0, 4, 7, 10, 14]
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert m.translate(x).shape == x.shape
    feats = m.G.features(x, m.nce_layers)
    assert [tuple(f.shape[1:]) for f in feats] == [(3, size + 6, size + 6), (8, size // 2, size // 2),
                                                   (16, size // 4, size // 4), (16, size // 4, size // 4),
                                                   (16, size // 4, size // 4)]
    out, ids = m.F(feats, 8)
    assert [tuple(o.shape) for o in out] == [(16, 8)] * 5 and all(i.numel() == 8 for i in ids)
    # unit length up to the reference's eps (1e-7 added to the norm; the fresh heads' outputs are small)
    assert torch.allclose(out[1].norm(dim=1), torch.ones(16), atol=1e-2)
    assert m.translate(torch.zeros(1, 3, 13, 10)).shape == (1, 3, 13, 10)  # padded to the multiple, cropped back


def test_fastcut_settings_and_the_schedule(tmp_path):
    cut = build_method(cut_config(tmp_path, budget=100))
    fast = build_method(cut_config(tmp_path, "fastcut", budget=100))
    s, f = cut.settings, fast.settings
    assert (s.nce_weight, s.nce_identity, s.flip_equivariance) == (1.0, True, False)
    assert (f.nce_weight, f.nce_identity, f.flip_equivariance) == (10.0, False, True)
    assert (s.lr, s.beta1, s.beta2, s.temperature, s.gan_loss) == (2e-4, 0.5, 0.999, 0.07, "lsgan")
    assert CUT.Settings().num_patches == 256 and CUT.Settings().nce_units == 256
    assert cut.lr_at(49) == 2e-4 and 0 < cut.lr_at(50) < 2e-4 and cut.lr_at(99) < 1e-5  # second half
    assert fast.lr_at(74) == 2e-4 and fast.lr_at(75) < 2e-4  # FastCUT: the last quarter
    assert get_method("cut") is CUT and get_method("fastcut") is FastCUT
    with pytest.raises(ValueError, match="B"):
        cut.translate(torch.zeros(1, 3, 32, 32), to="A")


@pytest.mark.parametrize("method, calls, keys",
                         [("cut", 2, {"loss_nce", "loss_nce_idt"}), ("fastcut", 1, {"loss_nce"})])
def test_the_identity_term_is_cuts_only(tmp_path, monkeypatch, method, calls, keys):
    cfg = cut_config(tmp_path / method, method)
    trainer = Trainer(cfg)
    m = trainer.method
    seen = []
    original = type(m).nce_loss

    def counting(self, src, out, flipped=False):
        seen.append((src.clone(), flipped))
        return original(self, src, out, flipped)

    monkeypatch.setattr(type(m), "nce_loss", counting)
    trainer.run()
    rows = [json.loads(line) for line in open(f"{cfg.out}/metrics.jsonl")]
    assert {k for k in rows[-1] if k.startswith("loss_nce")} == keys
    assert len(seen) == calls * 6  # 6 steps
    assert all(math.isfinite(r["loss_g"]) for r in rows)
    if method == "cut":  # loss_g = adv + (nce + nce_idt) / 2
        assert rows[0]["loss_nce_idt"] > 0
    else:
        assert any(f for _, f in seen) and not all(f for _, f in seen)  # flips on some steps


def test_fastcut_flips_the_input_and_flips_the_queries_back(tmp_path, monkeypatch):
    m = build_method(cut_config(tmp_path, "fastcut"))
    m.setup_training()
    inputs = []
    forward = type(m.G).forward

    def recording(self, x, label=None, layers=None):
        inputs.append((x.detach().clone(), layers))
        return forward(self, x, label, layers)

    monkeypatch.setattr(type(m.G), "forward", recording)
    a, b, out = (torch.rand(1, 3, 32, 32) * 2 - 1 for _ in range(3))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.zeros(()))  # the flip coin: always flip
    m.train_step({"A": a, "B": b}, 0)
    assert torch.equal(inputs[0][0], a.flip(-1)) and inputs[0][1] is None  # G(flip(x)) only: no identity batch
    assert inputs[1][1] == m.nce_layers  # queries: features of G(flip(x)) ...
    # ... flipped back before sampling: F sees flip(features(G(flip(x)))) for the queries
    monkeypatch.setattr(type(m.G), "forward", forward)
    f_inputs = []
    f_forward = PatchSampleMLP.forward

    def recording_f(self, feats, count, ids=None):
        f_inputs.append([f.detach().clone() for f in feats])
        return f_forward(self, feats, count, ids)

    monkeypatch.setattr(PatchSampleMLP, "forward", recording_f)
    m.nce_loss(a, out, flipped=True)
    with torch.no_grad():
        expected = [f.flip(-1) for f in m.G.features(out, m.nce_layers)]
        keys = m.G.features(a, m.nce_layers)
    assert all(torch.allclose(g, e) for g, e in zip(f_inputs[0], keys))  # keys: x itself, unflipped
    assert all(torch.allclose(g, e) for g, e in zip(f_inputs[1], expected))


def test_resume_continues_exactly(tmp_path):
    """Killed after 3 steps and resumed, a run ends with the same weights (G, F, D) as an unbroken one."""
    straight = cut_config(tmp_path / "straight", budget=7)
    Trainer(straight).run()
    broken = cut_config(tmp_path / "broken", budget=7)
    Trainer(broken).run(stop_after_images=3)
    Trainer(broken, resume=True).run()
    a, b = Translator.load(straight.out).method, Translator.load(broken.out).method
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and any(k.startswith("F.heads.4.") for k in sa)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_translator_load_translates(tmp_path):
    cfg = cut_config(tmp_path / "run", "fastcut", budget=2)
    Trainer(cfg).run()
    summary = (tmp_path / "run" / "summary.md").read_text()  # the monitors CUT declares, measured at the end
    assert "- val_nce_A: " in summary and "- val_nce_B: " in summary
    t = Translator.load(cfg.out)
    assert t.method.name == "fastcut"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = t.translate_tensor(x)
    assert out.shape == (2, 1, 3, 32, 32)
    assert torch.allclose(out[:, 0], t.method.G(x.to(t.device)).clamp(-1, 1).cpu(), atol=1e-6)
    assert torch.equal(t.translate_tensor(x, to="B"), out)
    img = Image.fromarray(np.full((20, 27, 3), 120, np.uint8))
    assert t(img, native=True)[0].size == (27, 20)
    from shapetex.export import export  # the export machinery, checked against PyTorch at two sizes

    result = export(t, tmp_path / "model.pt", "torchscript", check_sizes=[(32, 32), (21, 18)], verbose=False)
    assert max(result["max_abs_diff"].values()) < 1e-4


def test_cli_train_then_translate(tmp_path):
    run = tmp_path / "cli"
    sets = [f"model.{k}={v}" for k, v in TINY.items()] + ["data.builtin_count=16", "train.log_every=2",
                                                          "train.sample_every=4", "train.threads=1"]
    code = main(["train", "--method", "cut", "--data", "builtin", "--size", "32", "--batch", "1", "--budget", "4",
                 "--out", str(run), *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "cut"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["images"] == 4 and "loss_nce_idt" in rows[-1]
    assert (run / "samples" / "0000000004.png").exists()
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((30, 31, 3), np.uint8)).save(src / "a.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--out", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "a.png").size == (31, 30)  # one sample: no _k suffix


# ---- the antialiased option ------------------------------------------------------------------------
def test_blur_pool_sampling_keeps_constants_and_halves_or_doubles_the_size():
    from shapetex.nets.blurpool import BlurDownsample, BlurUpsample, binomial_filter

    assert torch.allclose(binomial_filter(3), torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    x = torch.full((1, 2, 6, 8), 3.0)
    assert torch.allclose(BlurDownsample(2)(x), torch.full((1, 2, 3, 4), 3.0))
    assert torch.allclose(BlurUpsample(2)(x), torch.full((1, 2, 12, 16), 3.0))
    # an impulse is spread by the binomial filter: down-sampling takes every second blurred value
    imp = torch.zeros(1, 1, 8, 8)
    imp[0, 0, 4, 4] = 16.0
    down = BlurDownsample(1)(imp)
    assert down[0, 0, 2, 2] == 4.0 and down[0, 0, 2, 1] == 0.0 and down.sum() == 4.0
    assert not list(BlurDownsample(4).state_dict())  # fixed filters: nothing in checkpoints


def test_antialiased_generator_taps_the_references_own_indices(tmp_path):
    g = ResnetGenerator(9, 64, antialias=True)
    assert paper_nce_layers(g) == [0, 4, 8, 12, 16]
    assert g.feature_channels([0, 4, 8, 12, 16]) == [3, 128, 256, 256, 256]
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in ResnetGenerator(9, 64).parameters())
    m = build_method(cut_config(tmp_path, antialias=True, blocks=2))
    assert m.nce_layers == [0, 4, 8, 12, 13]
    m.setup_training()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    logs = m.train_step({"A": x, "B": x.flip(-2)}, 0)
    assert math.isfinite(float(logs["loss_g"])) and m.translate(x).shape == x.shape
    assert build_method(cut_config(tmp_path)).settings.antialias is False  # off by default

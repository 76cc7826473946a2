"""Every method is built from its resolved settings and a RunContext alone: no RunConfig inside, the same
networks as `build_method` makes from an equivalent config, and settings that resolve to themselves."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from shapetex.config import RunConfig
from shapetex.methods import METHODS, build_method
from shapetex.methods.context import RunContext
from shapetex.methods.cycle import AsymmetricGAN, CycleGAN, PairedAsymmetricGAN
from shapetex.methods.multi_domain import MultiDomainAsymmetricGAN

ADV = {"g_channel_max": 32, "d_channel_max": 32, "z_dim": 16, "w_dim": 32, "mapping_layers": 1}
CYCLE = {"t_width": 4, "t_blocks": 2, "r_blocks": 1, "d_width": 4, "d_layers": 2}
CUT = {"width": 4, "blocks": 2, "d_width": 4, "d_layers": 2, "num_patches": 8, "nce_units": 8}
P2P = {"g_channels": 8, "d_channels": 8}
TWO, THREE = ("horses", "zebras"), ("red", "green", "blue")

CASES = [  # method, data ("builtin" | "paired" | domain names), model settings, the class that trains it
    ("adversarial", "builtin", ADV, "AdversarialTranslator"),
    ("autoencoder", "builtin", ADV, "Autoencoder"),
    ("pix2pix", "paired", P2P, "Pix2Pix"),
    ("cut", TWO, CUT, "CUT"),
    ("fastcut", TWO, CUT, "FastCUT"),
    ("asymmetric", TWO, CYCLE, AsymmetricGAN),
    ("asymmetric", THREE, CYCLE, MultiDomainAsymmetricGAN),
    ("asymmetric", "paired", CYCLE, PairedAsymmetricGAN),
    ("cyclegan", TWO, CYCLE, CycleGAN),
    ("cyclegan", THREE, CYCLE, MultiDomainAsymmetricGAN),
    ("cyclegan", "paired", CYCLE, PairedAsymmetricGAN),
    ("asymmetric-authors", TWO, {**CYCLE, "d_layers": 2}, MultiDomainAsymmetricGAN),
]


def config_and_context(method: str, data, model: dict, tmp_path) -> tuple[RunConfig, RunContext]:
    cfg = RunConfig(method=method, model=dict(model))
    cfg.data.size, cfg.train.batch, cfg.train.budget, cfg.train.seed = 16 if data != "builtin" else 32, 2, 9, 3
    if data == "paired":
        cfg.data.source, cfg.data.paired = "paired", str(tmp_path / "pairs")
        names, folders = ("input", "target"), ()
    elif data == "builtin":
        names, folders = ("shape", "texture"), ()
    else:
        cfg.data.source, cfg.data.domains = "domains", [str(tmp_path / n) for n in data]
        names, folders = tuple(data), tuple(cfg.data.domains)
    context = RunContext(size=cfg.data.size, batch=2, budget=9, seed=3, domains=names, domain_folders=folders,
                         paired=data == "paired")
    return cfg, context


@pytest.mark.parametrize("method, data, model, kind", CASES,
                         ids=[f"{c[0]}-{c[1] if isinstance(c[1], str) else len(c[1])}" for c in CASES])
def test_each_method_builds_from_settings_and_context(method, data, model, kind, tmp_path):
    cfg, context = config_and_context(method, data, model, tmp_path)
    assert RunContext.of(cfg) == context
    cls = METHODS[method]
    settings = cls.resolve_settings(cfg.model, context)
    torch.manual_seed(0)  # the trainer seeds before building; some methods draw from the global RNG
    built = cls.variant(settings, context)(settings, context)
    assert type(built).__name__ == kind if isinstance(kind, str) else type(built) is kind
    assert built.settings is settings and built.context is context and not hasattr(built, "run")
    decided = cls.defaults(settings, context)
    assert all(getattr(settings, k) is not None for k in decided)  # every size-dependent default is filled
    # the saved form resolves to itself: a run folder's config.json rebuilds the same settings
    assert cls.resolve_settings(dataclasses.asdict(settings), context) == settings
    # ... and build_method from the RunConfig makes the very same networks (the context carries what counts)
    torch.manual_seed(0)
    other = build_method(cfg)
    assert type(other) is type(built)
    mine, theirs = built.state_dict(), other.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_the_context_gives_the_step_count_and_domains():
    ctx = RunContext(size=64, batch=8, budget=20, seed=0)
    assert ctx.total_steps == 3 and ctx.domains == ("shape", "texture") and not ctx.paired
    cfg = RunConfig()
    cfg.data.source, cfg.data.domains = "domains", ["data/h2z/trainA/", "x/trainB"]
    assert RunContext.of(cfg).domains == ("trainA", "trainB")
    assert RunContext.of(cfg).domain_folders == ("data/h2z/trainA", "x/trainB")


def test_multi_domain_and_paired_data_do_not_mix(tmp_path):
    cfg, _ = config_and_context("asymmetric", "paired", {**CYCLE, "multi_domain": True}, tmp_path)
    with pytest.raises(ValueError, match="paired data has two domains"):
        build_method(cfg)
    cfg, _ = config_and_context("asymmetric", THREE, {**CYCLE, "multi_domain": False}, tmp_path)
    with pytest.raises(ValueError, match="two-domain mode needs exactly two domains, got 3"):
        build_method(cfg)


JITTER = {"pix2pix", "cut", "fastcut", "AsymmetricGAN", "CycleGAN", "PairedAsymmetricGAN"}


@pytest.mark.parametrize("method, data, model, kind", CASES,
                         ids=[f"{c[0]}-{c[1] if isinstance(c[1], str) else len(c[1])}" for c in CASES])
def test_the_built_class_says_its_default_load_size(method, data, model, kind, tmp_path):
    """data.load_size left unset is the trained class's `load_ratio` of the size (the trainer resolves it): the
    reference's 286/256 for pix2pix, CUT and the two-domain cycle models, none for multi-domain (StarGAN) and
    the paper's translator."""
    from shapetex.data.preprocess import REFERENCE_LOAD_RATIO

    cfg, _ = config_and_context(method, data, model, tmp_path)
    built = type(build_method(cfg))
    jitter = method in JITTER or built.__name__ in JITTER
    assert built.load_ratio == (REFERENCE_LOAD_RATIO if jitter else 1.0), built.__name__


def test_the_context_carries_the_crop_width_and_the_methods_use_it(tmp_path):
    cfg, _ = config_and_context("pix2pix", "paired", P2P, tmp_path)
    assert RunContext.of(cfg).crop == (16, 16)
    cfg.data.size, cfg.data.width = 16, 64
    assert RunContext.of(cfg).width == 64 and RunContext.of(cfg).crop == (16, 64)
    assert build_method(cfg).settings.depth == 4  # the U-Net's depth from the shorter side (16 px: 4)
    cfg, _ = config_and_context("cyclegan", TWO, CYCLE, tmp_path)
    cfg.data.width = 24
    method = build_method(cfg)
    method.setup_training()
    assert method.pools["A"].images.shape[-2:] == (16, 24)  # the pools hold crops of the training shape
    cfg, _ = config_and_context("asymmetric-authors", THREE, {**CYCLE, "d_layers": 2}, tmp_path)
    cfg.data.width = 24
    d = build_method(cfg).D
    assert d(torch.zeros(2, 3, 16, 24))[1].shape == (2, 3)  # StarGAN's domain head spans the non-square map
    cfg, _ = config_and_context("adversarial", "builtin", ADV, tmp_path)
    cfg.data.width = 64
    with pytest.raises(ValueError, match="trains on square images: data.width 64 is not data.size 32"):
        build_method(cfg)

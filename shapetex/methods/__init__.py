"""The method registry: a method is chosen by name from this dict, never by importing a matching module.

`build_method(cfg)` is the one way a run's method is made: the RunConfig gives a `RunContext` and the typed
settings (`resolve_settings`), and the method is built from those two alone."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError, RunConfig
from ..engine import Engine
from .adversarial import AdversarialTranslator
from .autoencoder import Autoencoder
from .base import Method
from .context import RunContext
from .cut import CUT, FastCUT
from .cycle import AsymmetricGAN, AuthorsAsymmetricGAN, CycleGAN
from .pix2pix import Pix2Pix

METHODS: dict[str, type[Method]] = {
    "adversarial": AdversarialTranslator,
    "autoencoder": Autoencoder,
    "asymmetric": AsymmetricGAN,
    "asymmetric-authors": AuthorsAsymmetricGAN,
    "cut": CUT,
    "cyclegan": CycleGAN,
    "fastcut": FastCUT,
    "pix2pix": Pix2Pix,
}


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def resolve_settings(cfg: RunConfig) -> Any:
    """The run's method settings, typed and with every default decided; a ConfigError naming the setting, its
    value and the type it wants when one does not fit."""
    return get_method(cfg.method).resolve_settings(cfg.model, RunContext.of(cfg))


def build_method(cfg: RunConfig, engine: Engine | None = None) -> Method:
    """The run's method, built from its resolved settings and its run context."""
    cls = get_method(cfg.method)
    context = RunContext.of(cfg)
    settings = cls.resolve_settings(cfg.model, context)
    return cls.variant(settings, context)(settings, context, engine)

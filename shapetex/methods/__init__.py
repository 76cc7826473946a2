"""The method registry: a method is chosen by name from this dict, never by importing a matching module."""

from __future__ import annotations

from .adversarial import AdversarialTranslator
from .autoencoder import Autoencoder
from .base import Method
from .cut import CUT, FastCUT
from .cycle import AsymmetricGAN, CycleGAN
from .pix2pix import Pix2Pix

METHODS: dict[str, type[Method]] = {
    "adversarial": AdversarialTranslator,
    "autoencoder": Autoencoder,
    "asymmetric": AsymmetricGAN,
    "cut": CUT,
    "cyclegan": CycleGAN,
    "fastcut": FastCUT,
    "pix2pix": Pix2Pix,
}


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]

"""shapetex: image-to-image translation with GANs."""

__version__ = "0.1.0"


def __getattr__(name):
    # `from shapetex import Translator` without importing torch for `shapetex --help`-style uses
    if name == "Translator":
        from .api import Translator

        return Translator
    raise AttributeError(name)

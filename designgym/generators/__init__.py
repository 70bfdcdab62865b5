"""Generators: latent vectors to designs. See :class:`Generator` and :func:`load`."""

from designgym.generators import fork_safety  # noqa: F401  (makes forked children safe: see the module)
from designgym.generators.base import Generator, default_device, resolve_device
from designgym.generators.models import ConvVAE
from designgym.generators.registry import GeneratorIntegrityError, available, card, load

__all__ = [
    "ConvVAE",
    "Generator",
    "GeneratorIntegrityError",
    "available",
    "card",
    "default_device",
    "load",
    "resolve_device",
]

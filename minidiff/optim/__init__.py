"""Optimizers, one per file, behind a registry: ``create(name, params, **hparams)`` and ``available()``.

Adding an optimizer means adding one module to this package that decorates its class with
``@register("name")``; the registry imports every module here on first use, so nothing else needs editing.
This ``__init__`` imports only the registry, so ``import minidiff.optim`` stays cheap.
"""

from minidiff.optim.registry import available, create, get, register

__all__ = ["available", "create", "get", "register"]

"""The optimizer registry: ``register(name)``, ``create(name, params, **hparams)``, ``available()``.

An entry is a ``torch.optim.Optimizer`` subclass or any factory ``(params, **hparams) -> Optimizer``. Entries are
discovered, not listed: :func:`available` imports every module of the ``minidiff.optim`` package (except this
one and names starting with ``_``), and each optimizer module registers itself when imported. :func:`create`
first imports the module named after the optimizer (``"adamw"`` -> ``adamw.py``, ``"my-opt"`` -> ``my_opt.py``)
and scans the whole package only if that does not register the name, so one optimizer never depends on
another module importing cleanly. Helper modules (linalg, quantize, ...) are scanned too and register nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

__all__ = ["register", "create", "available"]

F = TypeVar("F", bound=Callable[..., torch.optim.Optimizer])

_REGISTRY: dict[str, Callable[..., torch.optim.Optimizer]] = {}


def _same_object(a: Any, b: Any) -> bool:
    # A module re-imported (importlib.reload, notebooks) registers a new class object with the same name.
    key = lambda obj: (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
    return a is b or key(a) == key(b)


def register(name: str) -> Callable[[F], F]:
    """Decorator registering an optimizer class or factory under ``name``; returns it unchanged.

    >>> @register("my-sgd")          # doctest: +SKIP
    ... class MySGD(torch.optim.Optimizer): ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")

    def wrap(obj: F) -> F:
        if not callable(obj):
            raise TypeError(f"register({name!r}) needs an Optimizer subclass or a factory, got {obj!r}")
        if name in _REGISTRY and not _same_object(_REGISTRY[name], obj):
            raise ValueError(f"optimizer name {name!r} is already registered to {_REGISTRY[name]!r}")
        _REGISTRY[name] = obj
        return obj

    return wrap


def _load_all() -> None:
    import minidiff.optim as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name == "registry" or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
        except ImportError as err:
            # Name the module: an optimizer with an optional dependency must import it lazily, inside its code.
            raise ImportError(f"minidiff.optim could not import its module {info.name!r}: {err}") from err


def _load(name: str) -> None:
    """Make ``name`` registered: import the module named after it (``"my-opt"`` -> ``my_opt.py``), else all."""
    if name in _REGISTRY:
        return
    module = name.replace("-", "_").lower()
    if module.isidentifier() and module != "registry" and not module.startswith("_"):
        if importlib.util.find_spec(f"minidiff.optim.{module}") is not None:
            importlib.import_module(f"minidiff.optim.{module}")
    if name not in _REGISTRY:
        _load_all()


def available() -> list[str]:
    """Sorted names of every registered optimizer."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Callable[..., torch.optim.Optimizer]:
    """The class (or factory) registered as ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _load(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; available optimizers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict], **hparams: Any
) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over ``params`` (tensors or param-group dicts).

    Unknown names raise ``ValueError`` listing the available ones.
    """
    return get(name)(params, **hparams)

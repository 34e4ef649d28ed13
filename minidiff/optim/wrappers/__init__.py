"""Layers that sit above *any* optimizer and change what it sees or how far it steps, never its update rule.

:class:`OptimizerWrapper` is the shared base: the wrapper *is* a ``torch.optim.Optimizer`` (so LR schedulers,
``zero_grad`` and step hooks work on it) whose ``param_groups``, ``state`` and ``defaults`` are the wrapped
optimizer's own objects. A scheduler attached to the wrapper therefore drives the base optimizer's learning
rate, and ``state_dict()`` nests the base's state dict beside the wrapper's own state.

Wrappers in this package (imported lazily, so importing the package costs nothing and modules added by other
authors are never imported from here):

- ``clip.CoordinateClip`` -- coordinate-wise gradient clipping in front of any optimizer (O15).
- ``lbw_guard.LBWGuard`` -- bounded learning-rate control from gradient telemetry (O21).
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["OptimizerWrapper", "CoordinateClip", "LBWGuard"]

_LAZY = {"CoordinateClip": "clip", "LBWGuard": "lbw_guard"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OptimizerWrapper(torch.optim.Optimizer):
    """Base class of the wrappers: shares the wrapped optimizer's groups and state; subclasses override ``step``.

    Subclasses keep their own state in plain attributes and list them by overriding :meth:`_wrapper_state` and
    :meth:`_load_wrapper_state` so that a ``state_dict`` round trip restores them.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer instance, got {type(optimizer).__name__}"
            )
        # What torch.optim.Optimizer.__init__ sets up, minus the param groups, which stay the base's.
        self.optimizer = optimizer
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.optimizer.defaults

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.optimizer!r})"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        return self.optimizer.step(closure)

    # ---- state dicts: the base's, plus the wrapper's own
    def _wrapper_state(self) -> dict[str, Any]:
        return {}

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.optimizer.state_dict(), "wrapper": self._wrapper_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "wrapper"}:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict expects the dict its state_dict() returns, with keys "
                f"'base' and 'wrapper'; got keys {sorted(state_dict)}"
            )
        self.optimizer.load_state_dict(state_dict["base"])
        self._load_wrapper_state(state_dict["wrapper"])


def swap_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Set ``p.grad = g`` for each pair and return the previous gradients (to put back after the base step)."""
    previous = [p.grad for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    return previous

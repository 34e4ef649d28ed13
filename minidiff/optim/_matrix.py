"""The base class of the matrix optimizers (Muon, NorMuon, PolarGrad, Conda, Shampoo, SOAP, Dion, SinkGD, SWAN).

It builds on :class:`minidiff.optim._common.MinidiffOptimizer` -- closure, ``None`` grads skipped, sparse grads and
complex params rejected, the library's NaN/Inf "skip" policy, ``state["step"]``, fp32 state and fp32 working
copies for bf16/fp16 parameters, dtype-preserving ``load_state_dict`` -- and adds what the matrix optimizers share:

* ``param_kind = "matrix"``: anything but a 2-D parameter raises a ``ValueError`` naming its shape and pointing to
  :mod:`minidiff.optim.groups` (SOAP sets ``param_kind = "any"``);
* ``_validate(group)``: checks that need more than one ``(name, value)`` test (choices, dtypes, optional values),
  run on every param group like ``hparam_checks``, so a bad group override fails as early as a bad default;
* a per-parameter update hook ``_update_param(p, grad, state, group, step)``, since every matrix rule is a
  matrix function of one parameter at a time, and ``_decay`` (decoupled weight decay θ ← θ(1 − ηλ)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from minidiff.optim._common import MinidiffOptimizer, check_in_range

__all__ = ["MatrixOptimizer", "check_choice", "check_bool", "check_float_dtype", "check_unit_interval"]

_GROUPS_HINT = (
    "route embeddings, the LM head, norm gains and biases to AdamW with minidiff.optim.groups.hybrid(name, model, "
    "...) or split them with minidiff.optim.groups.matrix_param_groups(model)"
)


def check_unit_interval(name: str, value: Any) -> None:
    """0 ≤ value < 1 (a momentum or EMA coefficient)."""
    check_in_range(name, value, 0.0, 1.0)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if not any(value == c and type(value) is type(c) for c in choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_float_dtype(name: str, value: Any) -> None:
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"{name} must be a floating torch.dtype such as torch.bfloat16, got {value!r}")


class MatrixOptimizer(MinidiffOptimizer):
    """Shape checks with a routing hint, group validation and a per-parameter update loop."""

    param_kind: str = "matrix"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        n_groups = len(self.param_groups)
        try:
            super().add_param_group(param_group)
            self._validate(self.param_groups[-1])
        except ValueError:
            del self.param_groups[n_groups:]  # a rejected group must not stay half-added
            raise

    def _check_param(self, p: torch.Tensor) -> None:
        if self.param_kind == "matrix" and not p.is_complex() and p.ndim != 2:
            raise ValueError(
                f"{type(self).__name__} optimizes 2-D hidden weight matrices only (param_kind='matrix'), got a "
                f"parameter of shape {tuple(p.shape)}; {_GROUPS_HINT}"
            )
        super()._check_param(p)

    def _validate(self, group: dict[str, Any]) -> None:
        """Checks beyond ``hparam_checks``; raise ValueError naming the argument."""

    def _update(self, group: dict, params: list, grads: list, states: list, step: int) -> None:
        for p, grad, state in zip(params, grads, states):
            self._update_param(p, grad, state, group, step)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        """Update one parameter in place (an fp32 working copy for bf16/fp16 parameters)."""
        raise NotImplementedError

    @staticmethod
    def _decay(p: torch.Tensor, group: dict) -> None:
        """Decoupled weight decay θ ← (1 − ηλ)θ with the scheduled lr, torch.optim.AdamW's convention."""
        if group.get("weight_decay", 0.0):
            p.mul_(1.0 - group["lr"] * group["weight_decay"])

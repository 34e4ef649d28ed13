r"""InvAdam: "inverse Adam", the first phase of DualAdam on its own (arXiv 2603.07122).

Update, m̂ and v̂ Adam's bias-corrected moments::

    θ_t = θ_{t-1} (1 − ηλ) − η m̂_t ⊙ (√v̂_t + ε)

The momentum is *multiplied* by Adam's preconditioner instead of divided by it. It is DualAdam with
``switch_rate = 0`` (γ_t = 1 for ever), which is how we implement it; no peer package has an InvAdam class.

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0``. The step scales like g², so it is not
invariant to the gradient's scale and is unbounded; it is a teaching foil for Adam more than a practical
optimizer. ε stays inside, m̂ ⊙ (√v̂ + ε), as in the official DualAdam code ([uncertain]: a third-party
description writes m̂ ⊙ √v̂; the two differ by ε·|m̂|).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff.optim.dualadam import DualAdam
from minidiff.optim.registry import register

__all__ = ["InvAdam"]


@register("invadam")
class InvAdam(DualAdam):
    """InvAdam (arXiv 2603.07122): θ ← θ(1 − ηλ) − η m̂ ⊙ (√v̂ + ε); DualAdam that never switches."""

    hparam_checks = {k: v for k, v in DualAdam.hparam_checks.items() if k != "switch_rate"}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, switch_rate=0.0)

r"""Coordinate-wise gradient clipping in front of any optimizer (Pan & Li; 2023, arXiv 2306.00204).

Per param group of the wrapped optimizer, with d coordinates and k = ⌊c·d⌋::

    τ = the (k+1)-th largest |g_i| over the group,     ĝ = clip(g, −τ, τ)

and the wrapped optimizer steps on ĝ. The paper proposes it as "a universal technique" for SGD, Adam and
others: only the few coordinates with outsized gradients are cut, which lowers the directional sharpness of
the step. :class:`minidiff.optim.sgd_clip.SGDClip` is the same clip built into momentum SGD.

The wrapper never modifies ``p.grad``: it hands the base optimizer the clipped copies for one step and puts the
original gradients back afterwards. A closure is evaluated once, by the wrapper, before clipping (so optimizers
that re-evaluate a closure several times, like LBFGS, are not supported). Non-finite gradients are passed
through untouched, so the base optimizer's NaN/Inf policy still applies to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from minidiff.optim._common import check_in_range, coordinate_clip, finite_mask
from minidiff.optim.wrappers import OptimizerWrapper, swap_grads

__all__ = ["CoordinateClip"]


class CoordinateClip(OptimizerWrapper):
    """Clip the top ``fraction`` of gradient coordinates (per param group) before the wrapped optimizer steps.

    >>> opt = CoordinateClip(torch.optim.AdamW(model.parameters()), fraction=0.1)  # doctest: +SKIP

    ``thresholds`` holds the last τ of each param group (``inf`` when nothing was clipped).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, fraction: float = 0.1) -> None:
        check_in_range("fraction", fraction, 0.0, 1.0, high_open=False)
        super().__init__(optimizer)
        self.fraction = float(fraction)
        self.thresholds: list[float] = []

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, clipped, self.thresholds = [], [], []
        for group in self.param_groups:
            with_grad = [p for p in group["params"] if p.grad is not None]
            finite = [p for p, ok in zip(with_grad, finite_mask([p.grad for p in with_grad])) if ok]
            grads, tau = coordinate_clip([p.grad for p in finite], self.fraction)
            params += finite
            clipped += [g.to(p.grad.dtype) for p, g in zip(finite, grads)]
            self.thresholds.append(tau)
        originals = swap_grads(params, clipped)
        try:
            self.optimizer.step()
        finally:
            swap_grads(params, originals)
        return loss

    def _wrapper_state(self) -> dict[str, Any]:
        return {"fraction": self.fraction}

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        self.fraction = float(state.get("fraction", self.fraction))

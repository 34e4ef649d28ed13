r"""SGDP: SGD with momentum whose update loses its radial part on scale-invariant weights (Heo et al.; 2021,
ICLR; arXiv 2006.08217). The projection is AdamP's (:func:`minidiff.optim.adamp.project_radial`).

Update (paper Algorithm 1; code clovaai/AdamP ``adamp/sgdp.py``), momentum μ, dampening τ::

    b_t = μ b_{t-1} + (1 − τ) g_t                 (b_0 = 0, so b_1 = (1 − τ) g_1)
    d_t = b_t                                     (nesterov: d_t = g_t + μ b_t)
    d_t ← d_t − ŵ ⟨ŵ, d_t⟩_row  and  r = wd_ratio   if the channel or the layer view of w looks scale invariant
    w_t = w_{t-1} (1 − η λ r / (1 − μ)) − η d_t

Defaults (reference README): ``lr=0.1, momentum=0.9, weight_decay=1e-5, nesterov=True`` for ImageNet;
``delta=0.1, wd_ratio=0.1, eps=1e-8``. Our constructor keeps torch.optim.SGD-like defaults
(``lr=1e-3, momentum=0``) so that nothing is implied by omission.

Conventions (all as the reference): the buffer starts at zero (torch's SGD instead sets b_1 = g_1); the decay is
decoupled and divided by (1 − μ), the factor by which momentum lengthens the effective step, so that λ means
the same with and without momentum. pytorch_optimizer's ``SGDP`` computes the same update.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    check_eps,
    check_in_range,
    check_lr,
    check_non_negative,
    decoupled_weight_decay_,
)
from minidiff.optim.adamp import project_all
from minidiff.optim.registry import register

__all__ = ["SGDP"]

_unit = lambda name, value: check_in_range(name, value, 0.0, 1.0, high_open=False)


@register("sgdp")
class SGDP(MinidiffOptimizer):
    """SGDP (arXiv 2006.08217): momentum SGD whose update loses its radial part on scale-invariant weights."""

    state_keys = ("momentum_buffer",)
    hparam_checks = {
        "lr": check_lr,
        "momentum": lambda name, value: check_in_range(name, value, 0.0, 1.0),
        "dampening": _unit,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "delta": check_non_negative,
        "wd_ratio": _unit,
    }
    test_hparams = {"lr": 5e-2, "momentum": 0.9}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        eps: float = 1e-8,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening = 0, got {momentum=}, {dampening=}"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
        )
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        lr, momentum = group["lr"], group["momentum"]
        bufs = [s["momentum_buffer"] for s in states]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads, alpha=1.0 - group["dampening"])  # b ← μ b + (1 − τ) g
        directions = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        directions, ratios = project_all(
            params, grads, directions, group["delta"], group["eps"], group["wd_ratio"]
        )
        ratios = [r / (1.0 - momentum) for r in ratios]
        decoupled_weight_decay_(params, lr, group["weight_decay"], ratios)  # w ← w (1 − ηλr / (1 − μ))
        torch._foreach_add_(params, directions, alpha=-lr)  # w ← w − η d

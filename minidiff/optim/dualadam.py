r"""DualAdam: start with "inverse Adam" and switch linearly to Adam (LongJin-lab; 2026, arXiv 2603.07122).

Adam divides the momentum by √v̂; inverse Adam *multiplies* by it, taking large steps where gradients are large
(the paper argues this explores flatter regions early). DualAdam mixes the two with a weight that decays
linearly to zero, after which it is plain Adam.

Update (code LongJin-lab/DualAdam ``DualAdam.py``), m̂, v̂ Adam's bias-corrected moments, s = switch_rate::

    u_t = m̂_t / (√v̂_t + ε)                        Adam direction
    ũ_t = m̂_t ⊙ (√v̂_t + ε)                        inverse-Adam direction
    γ_t = max(0, 1 − t s)
    θ_t = θ_{t-1} (1 − ηλ) − η [(1 − γ_t) u_t + γ_t ũ_t]     while γ_t ≥ s
    θ_t = θ_{t-1} (1 − ηλ) − η u_t                            afterwards (plain AdamW)

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, switch_rate=0.01, weight_decay=0`` (the paper's CIFAR
script uses lr 1e-2 with a cosine schedule, s = 8e-5, λ = 0). Meant for every parameter.

Conventions: the decay is decoupled (θ(1 − ηλ), torch's AdamW convention); pytorch_optimizer's ``DualAdam``
adds coupled L2 by default (``weight_decouple=False``) and matches us with ``weight_decouple=True``.
ũ keeps ε inside (m̂ ⊙ (√v̂ + ε)) as the official code does; a third-party description writes m̂ ⊙ √v̂. ũ scales
like g², so it is neither invariant to the gradient's scale nor bounded: keep early learning rates small.
In the Adam phase our operations are torch AdamW's, so the trajectories agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    adam_denominator,
    adam_moments_,
    bias_correction,
    check_betas,
    check_eps,
    check_in_range,
    check_lr,
    check_non_negative,
    decoupled_weight_decay_,
)
from minidiff.optim.registry import register

__all__ = ["DualAdam", "inverse_weight"]


def inverse_weight(step: int, switch_rate: float) -> float:
    """γ_t = max(0, 1 − t·s), the weight of the inverse-Adam direction; 0 once γ_t < s (pure Adam)."""
    gamma = max(0.0, 1.0 - step * switch_rate)
    return gamma if gamma >= switch_rate else 0.0


@register("dualadam")
class DualAdam(MinidiffOptimizer):
    """DualAdam (arXiv 2603.07122): a linear switch from inverse Adam, m̂⊙(√v̂+ε), to Adam, m̂/(√v̂+ε)."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "switch_rate": lambda name, value: check_in_range(name, value, 0.0, 1.0, high_open=False),
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        switch_rate: float = 0.01,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, switch_rate=switch_rate)
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        gamma = inverse_weight(step, group["switch_rate"])
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        decoupled_weight_decay_(params, lr, group["weight_decay"])
        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        denom = adam_denominator(exp_avg_sqs, beta2, step, group["eps"])  # √v̂ + ε
        step_size = -lr / bias_correction(beta1, step)  # m̂ = m / (1 − β1^t) folded into the step
        # θ ← θ − η [(1 − γ) m̂ / (√v̂ + ε) + γ m̂ ⊙ (√v̂ + ε)], one in-place pass per term
        if gamma < 1.0:
            torch._foreach_addcdiv_(params, exp_avgs, denom, value=(1.0 - gamma) * step_size)
        if gamma > 0.0:
            torch._foreach_addcmul_(params, exp_avgs, denom, value=gamma * step_size)

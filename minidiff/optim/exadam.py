r"""EXAdam: Adam with moment-aware debiasing and a gradient-accelerated numerator (Adly; 2024,
arXiv 2412.20302).

Update (paper v2 eqs.; code AhmedMostafa16/EXAdam ``exadam.py``), with m, v Adam's EMAs::

    d1 = 1 + β2^t · v_t / (v_t + ε)               "enhanced" debiasing factors, → 1 as t grows
    d2 = 1 + β1^t · m_t² / (m_t² + ε)
    m̃ = m_t d1 / (1 − β1^t),   ṽ = v_t d2 / (1 − β2^t),   g̃ = g_t d1 / (1 − β1^t)
    θ_t = θ_{t-1} − α_t (m̃ + g̃) / (√ṽ + ε)

``dynamic_step=False`` (default, paper v2 and the official code's HEAD): α_t = α.
``dynamic_step=True`` (paper v1, code commit 9ff8463): α_t = α · ln(√2 · √(t + 1)), a step size growing like
½ ln t. The headline "48.07% faster convergence" is v1's; v2 reports 38.46%.

Decoupled decay θ ← θ(1 − αλ) before the step, as in the official code (the paper has no decay).

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0``; the README uses lr 3e-4, λ 1e-5 for NLP.
Meant for every parameter.

What to expect: at step 1 the update is (1 + β2)(1 + 1/(1 − β1))/√(1 + β1) ≈ 15.95 times lr per coordinate
(11.06 for v1); late in training it tends to (m + g)/√v, about twice Adam's. pytorch_optimizer's ``EXAdam`` is
v2 and computes the same update up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    adam_moments_,
    bias_correction,
    check_betas,
    check_eps,
    check_lr,
    check_non_negative,
    decoupled_weight_decay_,
)
from minidiff.optim.registry import register

__all__ = ["EXAdam"]


@register("exadam")
class EXAdam(MinidiffOptimizer):
    """EXAdam (arXiv 2412.20302): θ ← θ − α_t (m̃ + g̃) / (√ṽ + ε) with moment-aware debiasing d1, d2."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        dynamic_step: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, dynamic_step=dynamic_step)
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        alpha_t = lr * math.log(math.sqrt(2.0) * math.sqrt(step + 1)) if group["dynamic_step"] else lr
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        decoupled_weight_decay_(params, lr, group["weight_decay"])
        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)

        # In-place sequences on scratch lists: fresh CPU allocations cost more than an extra pass over memory.
        d1 = torch._foreach_add(exp_avg_sqs, eps)
        torch._foreach_reciprocal_(d1)
        torch._foreach_mul_(d1, exp_avg_sqs)  # v / (v + ε)
        torch._foreach_mul_(d1, beta2**step)
        torch._foreach_add_(d1, 1.0)  # d1 = 1 + β2^t v / (v + ε)
        d2 = torch._foreach_mul(exp_avgs, exp_avgs)
        torch._foreach_add_(d2, eps)
        torch._foreach_reciprocal_(d2)  # 1 / (m² + ε); m² / (m² + ε) = 1 − ε / (m² + ε)
        torch._foreach_mul_(d2, -eps * beta1**step)
        torch._foreach_add_(d2, 1.0 + beta1**step)  # d2 = 1 + β1^t m² / (m² + ε)

        torch._foreach_mul_(d2, exp_avg_sqs)
        torch._foreach_div_(d2, bias_correction(beta2, step))
        torch._foreach_sqrt_(d2)
        torch._foreach_add_(d2, eps)  # √ṽ + ε
        torch._foreach_div_(d1, d2)  # d1 / (√ṽ + ε), shared by m̃ and g̃
        step_size = -alpha_t / bias_correction(beta1, step)
        torch._foreach_addcmul_(params, exp_avgs, d1, value=step_size)  # θ ← θ − α_t m̃ / (√ṽ + ε)
        torch._foreach_addcmul_(params, grads, d1, value=step_size)  # θ ← θ − α_t g̃ / (√ṽ + ε)

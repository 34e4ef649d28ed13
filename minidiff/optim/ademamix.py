r"""AdEMAMix: Adam with a mixture of a fast and a slow gradient EMA (Pagliardini, Ablin, Grangier; 2024,
arXiv 2409.03137).

A single EMA cannot both react quickly and remember gradients from thousands of steps ago; AdEMAMix keeps two
and adds them. Update (paper Algorithm 1; code apple/ml-ademamix ``pytorch/ademamix.py``)::

    m1_t = β1 m1_{t-1} + (1 − β1) g_t                       fast EMA, bias-corrected
    m2_t = β3(t) m2_{t-1} + (1 − β3(t)) g_t                 slow EMA, NOT bias-corrected
    ν_t  = β2 ν_{t-1} + (1 − β2) g_t²
    θ_t  = θ_{t-1} − η [ (m1_t / (1 − β1^t) + α(t) m2_t) / (√(ν_t / (1 − β2^t)) + ε) + λ θ_{t-1} ]

Warm-up schedulers (the slow EMA is unstable early without them), with T_α and T_β3 the warm-up lengths::

    α(t)  = min(t α / T_α, α)
    β3(t) = min(exp(ln β1 ln β3 / ((1 − t/T_β3) ln β3 + (t/T_β3) ln β1)), β3)

β3(t) interpolates linearly in *half-life* f(β) = ln 0.5 / ln β − 1 from β1 (t = 0) to β3 (t = T_β3); the
closed form above is that interpolation solved for β. ``None`` (the default) disables a scheduler.

Defaults: the reference class uses ``betas=(0.9, 0.999, 0.9999), alpha=2``; the paper's LM runs use α = 8,
λ = 0.1 and T_α = T_β3 = the number of training steps. ``β1 = 0`` drops the fast EMA (m1 = g) and its buffer.
Meant for every parameter. Three state tensors (m1, m2, ν) when β1 > 0.

Conventions: the decay is decoupled and multiplied by η (θ(1 − ηλ) before the step, which equals the paper's
−ηλθ_{t−1} since the Adam part does not read θ), as in the reference. pytorch_optimizer's ``AdEMAMix``
differs in its defaults: coupled L2 (``weight_decouple=False``), α = 5 and one ``t_alpha_beta3`` for both
schedulers; with ``weight_decouple=True`` and equal warm-ups it computes our update (to rounding: we apply the
two EMAs as two in-place steps instead of summing them into a temporary).
ε is added outside the root, after bias-correcting ν, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    adam_denominator,
    bias_correction,
    check_betas,
    check_eps,
    check_lr,
    check_non_negative,
    decoupled_weight_decay_,
    state_dtype,
)
from minidiff.optim.registry import register

__all__ = ["AdEMAMix", "alpha_schedule", "beta3_schedule"]


def _check_warmup(name: str, value) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"{name} must be None or a number of steps > 0, got {value!r}")


def alpha_schedule(step: int, alpha: float, warmup: float | None) -> float:
    """α(t) = min(t α / T_α, α): a linear ramp of the slow EMA's weight."""
    return alpha if warmup is None else min(step * alpha / warmup, alpha)


def beta3_schedule(step: int, beta1: float, beta3: float, warmup: float | None) -> float:
    """β3(t): from β1 at t = 0 to β3 at t = T, linear in half-life ln 0.5 / ln β − 1."""
    if warmup is None or beta1 == 0:
        return beta3
    log1, log3 = math.log(beta1), math.log(beta3)
    frac = step / warmup
    return min(math.exp(log1 * log3 / ((1.0 - frac) * log3 + frac * log1)), beta3)


@register("ademamix")
class AdEMAMix(MinidiffOptimizer):
    """AdEMAMix (arXiv 2409.03137): Adam whose numerator adds α·(slow EMA of g) to the fast, bias-corrected one."""

    hparam_checks = {
        "lr": check_lr,
        "betas": partial(check_betas, n=3),
        "alpha": check_non_negative,
        "alpha_warmup": _check_warmup,
        "beta3_warmup": _check_warmup,
        "eps": check_eps,
        "weight_decay": check_non_negative,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        alpha_warmup: float | None = None,
        beta3_warmup: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            alpha=alpha,
            alpha_warmup=alpha_warmup,
            beta3_warmup=beta3_warmup,
            eps=eps,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _init_state(self, group, p, state):
        zeros = lambda: torch.zeros_like(p, dtype=state_dtype(p), memory_format=torch.preserve_format)
        if group["betas"][0] > 0:  # β1 = 0 needs no fast EMA: m1 = g
            state["exp_avg"] = zeros()
        state["exp_avg_slow"] = zeros()
        state["exp_avg_sq"] = zeros()

    def _update(self, group, params, grads, states, step):
        beta1, beta2, beta3 = group["betas"]
        lr = group["lr"]
        alpha_t = alpha_schedule(step, group["alpha"], group["alpha_warmup"])
        beta3_t = beta3_schedule(step, beta1, beta3, group["beta3_warmup"])
        slows = [s["exp_avg_slow"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        decoupled_weight_decay_(params, lr, group["weight_decay"])  # the −ηλθ_{t−1} term
        if beta1 > 0:
            fasts = [s["exp_avg"] for s in states]
            torch._foreach_lerp_(fasts, grads, 1.0 - beta1)  # m1 ← β1 m1 + (1 − β1) g
        else:
            fasts = grads
        torch._foreach_lerp_(slows, grads, 1.0 - beta3_t)  # m2 ← β3(t) m2 + (1 − β3(t)) g
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)  # ν ← β2 ν + (1 − β2) g²

        denom = adam_denominator(exp_avg_sqs, beta2, step, group["eps"])  # √(ν / (1 − β2^t)) + ε
        # θ ← θ − η (m1 / (1 − β1^t) + α(t) m2) / denom, as two in-place passes (no temporary for the sum)
        torch._foreach_addcdiv_(params, fasts, denom, value=-lr / bias_correction(beta1, step))
        if alpha_t != 0:
            torch._foreach_addcdiv_(params, slows, denom, value=-lr * alpha_t)

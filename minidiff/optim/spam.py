r"""SPAM: Spike-Aware Adam with Momentum reset (Huang, Zhu, Jin, Liu, Wang, Liu; 2025, ICLR; arXiv 2501.06842).

LLM training sees gradient spikes up to 1000× the typical gradient; one spike stays in Adam's moments for
~1/(1 − β2) steps. SPAM clips spikes coordinate-wise against the second moment, periodically forgets the
moments, and warms the step size up again after each reset.

Update (code: ffuhu/SPAM-Optimizer ``galore_torch/SPAM.py``, a fork of the official SPAM-Optimizer), step t::

    reset:   every ΔT steps (t mod ΔT = 0):  m ← 0, v ← 0
    clip:    once t ≥ A and (t mod ΔT) ≥ A:  g_i ← sign(g_i) √(θ v_{t-1,i})   where g_i² > θ v_{t-1,i}
    Adam:    m_t = β1 m + (1 − β1) g,   v_t = β2 v + (1 − β2) g²
    warm-up: s_k = 1 − 0.99 (1 + cos(π k / (N + 1))) / 2 for k = t mod ΔT < N after the first reset, else 1
    θ_t = θ_{t-1} − η s_k √(1 − β2^t) / (1 − β1^t) · m_t / (√v_t + ε)
    θ_t ← θ_t (1 − η λ)                                  decoupled decay, *after* the step, as the reference

The bias corrections use the total step t and are never reset (as the reference): the post-reset warm-up s_k
(from 0.01 back to 1 over N steps) is what tames the first steps after a reset.

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-6, threshold θ=5000, grad_accu_steps A=20,
reset_interval ΔT=500, warmup_steps N=150`` (the paper's runs; the reference class defaults to N = 50 and is
launched with 150; pytorch_optimizer's ``SPAM`` uses 50). The reference's names: ``update_proj_gap`` = ΔT,
``warmup_epoch`` = N. Meant for every parameter (LLM pre-training).

Not implemented: the reference's sparse momentum (``density`` < 1, moments kept on a random subset of a 2-D
weight, re-drawn at each reset); we keep dense moments. ``grad_accu_steps`` must be ≥ 2 when clipping is on:
with A ≤ 1 step 1 clips against v_0 = 0, every gradient becomes 0, v stays 0 and nothing is ever learned.
Clipping acts on a copy; ``p.grad`` is never modified (the reference and pytorch_optimizer clip it in place).
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
    check_non_negative_int,
    check_positive_int,
    decoupled_weight_decay_,
)
from minidiff.optim.registry import register

__all__ = ["SPAM", "spike_clip", "warmup_factor"]


def spike_clip(
    grads: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor], threshold: float
) -> list[torch.Tensor]:
    """g_i ← sign(g_i)·√(θ v_i) where g_i² > θ v_i, i.e. clamp(g, ±√(θ v)); returns new tensors."""
    limit = torch._foreach_mul(exp_avg_sqs, threshold)
    torch._foreach_sqrt_(limit)
    clipped = torch._foreach_minimum(grads, limit)
    torch._foreach_neg_(limit)
    torch._foreach_maximum_(clipped, limit)
    return clipped


def warmup_factor(step: int, reset_interval: int, warmup_steps: int) -> float:
    """s_k = 1 − 0.99·(1 + cos(πk/(N+1)))/2 with k = t mod ΔT, for k < N after the first reset; else 1."""
    k = step % reset_interval
    if step < reset_interval or k >= warmup_steps:
        return 1.0
    return 1.0 - 0.99 * (1.0 + math.cos(math.pi * k / (warmup_steps + 1))) / 2.0


@register("spam")
class SPAM(MinidiffOptimizer):
    """SPAM (arXiv 2501.06842): Adam with spike clipping against θ·v, periodic moment resets and re-warm-up."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "threshold": check_non_negative,
        "grad_accu_steps": check_non_negative_int,
        "reset_interval": check_positive_int,
        "warmup_steps": check_non_negative_int,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        threshold: float = 5000.0,
        grad_accu_steps: int = 20,
        reset_interval: int = 500,
        warmup_steps: int = 150,
    ) -> None:
        if threshold != 0 and grad_accu_steps < 2:
            raise ValueError(
                f"grad_accu_steps must be >= 2 when threshold > 0, got {grad_accu_steps}: below 2 the first step "
                "clips every gradient against v = 0 and nothing is ever learned"
            )
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            threshold=threshold,
            grad_accu_steps=grad_accu_steps,
            reset_interval=reset_interval,
            warmup_steps=warmup_steps,
        )
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr, threshold, accu, interval = (
            group["lr"],
            group["threshold"],
            group["grad_accu_steps"],
            group["reset_interval"],
        )
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        if step % interval == 0:  # momentum reset
            torch._foreach_zero_(exp_avgs)
            torch._foreach_zero_(exp_avg_sqs)
        if threshold != 0 and step >= accu and step % interval >= accu:
            grads = spike_clip(grads, exp_avg_sqs, threshold)  # against v_{t−1}
        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)

        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_add_(denom, group["eps"])  # √v + ε (bias correction folded into the step size)
        warm = warmup_factor(step, interval, group["warmup_steps"])
        step_size = lr * warm * math.sqrt(bias_correction(beta2, step)) / bias_correction(beta1, step)
        torch._foreach_addcdiv_(params, exp_avgs, denom, value=-step_size)
        decoupled_weight_decay_(params, lr, group["weight_decay"])  # after the step, as the reference

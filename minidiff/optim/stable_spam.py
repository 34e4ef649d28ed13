r"""Stable-SPAM: SPAM with adaptive spike clipping and adaptive gradient-norm scaling (Huang, Hu, Jaiswal,
Wang, Liu, Liu; 2025, arXiv 2502.17055), for training stably in 4 bits.

Per tensor, before an Adam step (code: TianjinYellow/StableSPAM ``galore_torch/stablespam.py``), step t::

    AdaClip   M_t = θ M_{t-1} + (1 − θ) max|g|,   M̂ = M_t / (1 − θ^t)
              g_i ← g_i / max|g| · M̂        where |g_i| > M̂       (rescale, not clamp: the largest becomes M̂)
    AdaGN     n = ‖g‖,  μ_t = γ1 μ_{t-1} + (1 − γ1) n,  ν_t = γ2 ν_{t-1} + (1 − γ2) n²
              g ← g / n · μ̂_t / (√ν̂_t + ε)                (μ̂, ν̂ bias-corrected with γ1^t, γ2^t)
    reset     every ΔT steps: m, v ← 0 and Adam's bias-correction counter k restarts at 1
    Adam      θ_t = θ_{t-1}(1 − ηλ) − η / (1 − β1^k) · m / (√v / √(1 − β2^k) + ε)

Optional cosine factor (``total_steps`` = T): c_t = η_min + (1 − η_min)(1 + cos(π min(t, T+1) / (T+1))) / 2
multiplies γ1 and β1 (so both momenta shorten towards the end), c_t = 1 without it.

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, gamma1=0.7, gamma2=0.9, theta=0.999,
reset_interval ΔT=1000, total_steps=None, eta_min=0.5, weight_decay=0`` (the paper's 4-bit runs use ΔT = 500,
lr 4e-4). Meant for every parameter. AdaGN replaces the gradient's norm by μ̂/(√ν̂ + ε), a ratio ≈ 1 in a
steady state (Adam downstream is scale-invariant, so only relative norms matter): a spike of 100× the steady
norm comes out with norm (0.7 + 30)/√(0.9 + 1000) ≈ 0.97, no larger than an ordinary gradient.

Conventions -- we follow the paper's intent where the official code slips, as pytorch_optimizer's
``StableSPAM`` does, and say so:

- the official code takes references to m, v and *then* assigns fresh zeros at a reset, so the reset step still
  uses the old moments with k = 1 corrections and the reset lands one step late; we zero m, v before the step.
- the official code restarts the step counter that also bias-corrects M, μ, ν, whose EMAs are *not* reset;
  we correct M, μ, ν with the total step t (never reset) and only Adam's m, v with k.
- a tensor whose gradient is all zeros: the official code leaves it unnormalized (0 stays 0) but still moves
  m, v and the norm EMAs, and so do we; pytorch_optimizer skips such a tensor entirely.
- the cosine factor stays at η_min after T (the official code's cosine would rise again).

Clipping acts on a copy; ``p.grad`` is never modified.
"""

from __future__ import annotations

import math
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
    check_positive_int,
    decoupled_weight_decay_,
)
from minidiff.optim.registry import register

__all__ = ["StableSPAM", "cosine_factor"]


def cosine_factor(step: int, total_steps: int | None, eta_min: float) -> float:
    """c_t = η_min + (1 − η_min)(1 + cos(π·min(t, T+1)/(T+1)))/2, or 1 without ``total_steps``."""
    if total_steps is None:
        return 1.0
    t = min(step, total_steps + 1)
    return eta_min + (1.0 - eta_min) * (1.0 + math.cos(math.pi * t / (total_steps + 1))) / 2.0


def _check_total(name: str, value) -> None:
    if value is not None:
        check_positive_int(name, value)


_unit_open = lambda name, value: check_in_range(name, value, 0.0, 1.0)


@register("stable_spam")
class StableSPAM(MinidiffOptimizer):
    """Stable-SPAM (arXiv 2502.17055): AdaClip (spike rescaling) + AdaGN (norm scaling) + resets, then Adam."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "gamma1": _unit_open,
        "gamma2": _unit_open,
        "theta": _unit_open,
        "reset_interval": check_positive_int,
        "total_steps": _check_total,
        "eta_min": lambda name, value: check_in_range(name, value, 0.0, 1.0, high_open=False),
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        gamma1: float = 0.7,
        gamma2: float = 0.9,
        theta: float = 0.999,
        reset_interval: int = 1000,
        total_steps: int | None = None,
        eta_min: float = 0.5,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            gamma1=gamma1,
            gamma2=gamma2,
            theta=theta,
            reset_interval=reset_interval,
            total_steps=total_steps,
            eta_min=eta_min,
        )
        super().__init__(params, defaults)

    def _init_state(self, group, p, state):
        super()._init_state(group, p, state)
        for key in ("max_ema", "norm_ema", "norm_sq_ema"):  # M, μ, ν
            state[key] = torch.zeros((), dtype=torch.float32, device=p.device)

    def _stabilize(self, group, grads, states, step, c_t) -> list[torch.Tensor]:
        """AdaClip then AdaGN on each gradient (new tensors; one allocation per tensor in the usual case)."""
        theta, gamma1, gamma2, eps = group["theta"], group["gamma1"] * c_t, group["gamma2"], group["eps"]
        out = []
        for g, s in zip(grads, states):
            g_min, g_max = torch.aminmax(g)
            g_max = torch.maximum(g_max, -g_min).float()  # max|g| without materializing |g|
            s["max_ema"].lerp_(g_max, 1.0 - theta)  # M ← θ M + (1 − θ) max|g|
            m_hat = s["max_ema"] / bias_correction(theta, step)
            if g_max > m_hat:  # AdaClip: rescale the entries above M̂ (rare: only on spikes)
                g = torch.where(g.abs() > m_hat, g * (m_hat / g_max), g)

            norm = torch.linalg.vector_norm(g).float()
            s["norm_ema"].lerp_(norm, 1.0 - gamma1)  # μ ← γ1 μ + (1 − γ1) n
            s["norm_sq_ema"].lerp_(norm.square(), 1.0 - gamma2)  # ν ← γ2 ν + (1 − γ2) n²
            mu_hat = s["norm_ema"] / bias_correction(gamma1, step)
            nu_hat = s["norm_sq_ema"] / bias_correction(gamma2, step)
            target = mu_hat / (nu_hat.sqrt() + eps)
            out.append(g * (target / norm.clamp_min(torch.finfo(torch.float32).tiny)))  # AdaGN; 0 stays 0
        return out

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr, interval = group["lr"], group["reset_interval"]
        c_t = cosine_factor(step, group["total_steps"], group["eta_min"])
        beta1 = beta1 * c_t
        k = step if step < interval else step % interval + 1  # Adam's counter, restarted at each reset
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        decoupled_weight_decay_(params, lr, group["weight_decay"])
        grads = self._stabilize(group, grads, states, step, c_t)
        if step % interval == 0:
            torch._foreach_zero_(exp_avgs)
            torch._foreach_zero_(exp_avg_sqs)
        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        denom = adam_denominator(exp_avg_sqs, beta2, k, group["eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denom, value=-lr / bias_correction(beta1, k))

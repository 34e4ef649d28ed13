r"""AdamHD: Adam with decoupled *Huber* decay in place of AdamW's L2 decay (Guo & Fan; 2025, ScaleOpt workshop;
arXiv 2511.14721).

L2 decay pulls every weight toward 0 in proportion to its size, so large weights that the model needs are
over-decayed. The Huber penalty H_δ is quadratic for |θ| ≤ δ and linear beyond (its gradient is clip(θ, ±δ)),
so small weights decay like AdamW and large ones by a constant amount per step (ℓ1-like, sparsifying).

Update: an Adam step, then the proximal map of τ H_δ with τ = η λ, coordinate-wise in closed form::

    θ̃_t = θ_{t-1} − η m̂_t / (√v̂_t + ε)                                   (Adam, bias-corrected)
    θ_t = prox_{τ H_δ}(θ̃_t) = θ̃_t / (1 + τ)               if |θ̃_t| ≤ (1 + τ) δ
                             θ̃_t − τ δ sign(θ̃_t)          otherwise
        = θ̃_t − τ · clip(θ̃_t / (1 + τ), −δ, δ)            (the one-line form the code uses)

To first order in τ this is θ̃ − ηλ·clip(θ̃, ±δ): as δ → ∞ it is AdamW up to O(τ²) (the prox of L2 gives
θ̃/(1 + τ) where AdamW's explicit step gives θ(1 − τ)). The map is continuous at |θ̃| = (1 + τ)δ, and a
weight beyond it loses exactly τδ per step.

The threshold δ: a float fixes it for every tensor. ``delta=None`` (default) sets a per-tensor δ_t from an
EMA of the tensor's RMS magnitude √(mean θ²) (decay ``delta_beta``, bias-corrected), so "large" means large for
that layer ([uncertain]: the paper describes δ_t as "a per-layer threshold set from an exponential moving
average of parameter magnitudes"; the statistic, RMS, and the decay are our reading).

Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2`` (torch AdamW's; the paper reuses
AdamW's λ grid), ``delta=None, delta_beta=0.99``. Meant for every parameter (the paper pre-trains GPT-2/3).

Conventions: the Adam step is torch AdamW's (bias-corrected, ε outside the root) -- [uncertain] whether the
paper bias-corrects; we do, so that λ = 0 gives exactly torch's Adam. No peer implementation exists.
:meth:`AdamHD.huber_fraction` reports the fraction of coordinates in the linear zone (if it is ~0, AdamHD is
just AdamW).
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
    check_positive,
    scalars_to_floats,
)
from minidiff.optim.registry import register

__all__ = ["AdamHD", "huber_prox_"]


def huber_prox_(
    params: list[torch.Tensor], tau: float, deltas: list[float], scratch: list[torch.Tensor] | None = None
) -> None:
    """θ ← θ − τ·clip(θ/(1+τ), −δ, δ) in place: the proximal map of τ·H_δ, one δ per tensor.

    ``scratch`` (tensors shaped like ``params``, overwritten) saves allocating the clipped pull.
    """
    if tau == 0:
        return
    if scratch is None:
        pull = torch._foreach_div(params, 1.0 + tau)
    else:
        pull = scratch
        torch._foreach_copy_(pull, params)
        torch._foreach_div_(pull, 1.0 + tau)
    torch._foreach_clamp_min_(pull, [-d for d in deltas])
    torch._foreach_clamp_max_(pull, deltas)
    torch._foreach_add_(params, pull, alpha=-tau)


def _check_delta(name: str, value) -> None:
    if value is not None:
        check_positive(name, value)


@register("adamhd")
class AdamHD(MinidiffOptimizer):
    """AdamHD (arXiv 2511.14721): an Adam step, then θ ← θ − ηλ·clip(θ/(1 + ηλ), ±δ) (Huber prox)."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "delta": _check_delta,
        "delta_beta": lambda name, value: check_in_range(name, value, 0.0, 1.0),
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        delta: float | None = None,
        delta_beta: float = 0.99,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, delta=delta, delta_beta=delta_beta
        )
        super().__init__(params, defaults)

    def _init_state(self, group, p, state):
        super()._init_state(group, p, state)
        if group["delta"] is None:
            state["magnitude_ema"] = torch.zeros((), dtype=torch.float32, device=p.device)

    def _deltas(self, group, params, states, step) -> list[float]:
        """δ per tensor: the fixed ``delta``, or the bias-corrected EMA of RMS(θ_{t−1})."""
        if group["delta"] is not None:
            return [float(group["delta"])] * len(params)
        beta = group["delta_beta"]
        emas = [s["magnitude_ema"] for s in states]
        norms = torch._foreach_norm(params)  # a fused L2 norm; an L1 norm would materialize |θ|
        magnitudes = [n.float() / p.numel() ** 0.5 for n, p in zip(norms, params)]  # RMS(θ)
        torch._foreach_lerp_(emas, magnitudes, 1.0 - beta)
        deltas = [d / bias_correction(beta, step) for d in scalars_to_floats(emas)]
        return [max(d, torch.finfo(torch.float32).tiny) for d in deltas]  # all-zero tensors: δ > 0 still

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        deltas = self._deltas(group, params, states, step)

        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        denom = adam_denominator(exp_avg_sqs, beta2, step, group["eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denom, value=-lr / bias_correction(beta1, step))  # θ̃
        huber_prox_(params, lr * group["weight_decay"], deltas, scratch=denom)  # θ ← prox_{τH_δ}(θ̃), τ = ηλ

    @torch.no_grad()
    def huber_fraction(self) -> float:
        """Fraction of coordinates with |θ| > δ (the linear, ℓ1-like zone), over every parameter with state."""
        beyond, total = 0, 0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                if group["delta"] is not None:
                    delta = float(group["delta"])
                else:
                    delta = float(state["magnitude_ema"]) / bias_correction(
                        group["delta_beta"], state["step"]
                    )
                beyond += int((p.detach().abs() > delta).sum())
                total += p.numel()
        return beyond / max(total, 1)

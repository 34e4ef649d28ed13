r"""AdamP: Adam with the radial component of the update projected out for scale-invariant weights
(Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha; 2021, ICLR; arXiv 2006.08217).

A weight followed by BatchNorm/LayerNorm is *scale invariant*: the loss depends on w/‖w‖ only, so its gradient
is orthogonal to w, and any radial part of the update only grows ‖w‖, which shrinks the effective step size.
Momentum makes this worse. AdamP removes the radial part when it detects scale invariance.

Update (paper Algorithm 2; code clovaai/AdamP ``adamp/adamp.py``)::

    m_t = β1 m_{t-1} + (1 − β1) g_t,   v_t = β2 v_{t-1} + (1 − β2) g_t²
    p_t = m_t / (√v_t / √(1 − β2^t) + ε)          (nesterov: (β1 m_t + (1 − β1) g_t) / (...))
    for view in (channel: rows of dim 0, layer: the whole tensor), stop at the first that fires:
        if max_rows |cos(g_t, w_{t-1})| < δ / √(row length):
            p_t ← p_t − ŵ ⟨ŵ, p_t⟩_row,   ŵ = w_{t-1} / (‖w_{t-1}‖_row + ε)
            r = wd_ratio
    w_t = w_{t-1} (1 − η λ r) − η / (1 − β1^t) · p_t          (r = 1 when nothing fired)

Only tensors with more than one dimension are tested; vectors (biases, norm gains) get plain AdamW.

Defaults (reference): ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, delta=0.1, wd_ratio=0.1,
nesterov=False``; the README trains with λ = 1e-2. Meant for every parameter; it pays off on weights before a
normalization layer.

Conventions: ε is added after dividing √v by √(1 − β2^t), as in the reference (and torch's Adam).
pytorch_optimizer's ``AdamP`` computes √(1 − β2^t)/(√v + ε), i.e. an effective ε/√(1 − β2^t): the two agree for
|g| ≫ ε and differ visibly for tiny gradients. The cosine carries an absolute value (|cos|), as in the reference
code; the paper's eq. (11) omits it (clovaai/AdamP#6).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

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

__all__ = ["AdamP", "project_radial"]


def project_radial(
    w: torch.Tensor, grad: torch.Tensor, update: torch.Tensor, delta: float, eps: float
) -> tuple[torch.Tensor, bool]:
    """Remove the radial component of ``update`` if ``w`` looks scale invariant (AdamP/SGDP projection).

    Tries the channel view (each row of dim 0) and then the layer view (the whole tensor); the first view whose
    max |cos(g, w)| is below δ/√(row length) fires. Returns ``(update, fired)``; ``update`` is a new tensor when
    it fired and the input otherwise.
    """
    channel = lambda x: x.reshape(x.shape[0], -1)
    layer = lambda x: x.reshape(1, -1)
    expand = (-1,) + (1,) * (w.ndim - 1)
    for view in (channel, layer):
        w_rows = view(w)
        cosine = F.cosine_similarity(view(grad), w_rows, dim=1, eps=eps).abs()
        if cosine.max() < delta / math.sqrt(w_rows.shape[1]):
            w_hat = w / (w_rows.norm(dim=1).reshape(expand) + eps)  # ŵ, unit rows
            radial = view(w_hat * update).sum(dim=1).reshape(expand)  # ⟨ŵ, p⟩ per row
            return update - w_hat * radial, True
    return update, False


def project_all(params, grads, updates, delta, eps, wd_ratio) -> tuple[list[torch.Tensor], list[float]]:
    """:func:`project_radial` on each tensor with ndim > 1; returns the updates and the decay ratios r."""
    projected, ratios = [], []
    for w, g, u in zip(params, grads, updates):
        fired = False
        if w.ndim > 1:
            u, fired = project_radial(w, g, u, delta, eps)
        projected.append(u)
        ratios.append(wd_ratio if fired else 1.0)
    return projected, ratios


@register("adamp")
class AdamP(MinidiffOptimizer):
    """AdamP (arXiv 2006.08217): Adam whose update loses its radial part on scale-invariant weights."""

    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_eps,
        "weight_decay": check_non_negative,
        "delta": check_non_negative,
        "wd_ratio": lambda name, value: check_in_range(name, value, 0.0, 1.0, high_open=False),
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        updates = adam_denominator(exp_avg_sqs, beta2, step, eps)  # √v / √(1 − β2^t) + ε
        torch._foreach_reciprocal_(updates)  # p = m / (...), built in place in the denominator's memory
        numer = torch._foreach_lerp(exp_avgs, grads, 1.0 - beta1) if group["nesterov"] else exp_avgs
        torch._foreach_mul_(updates, numer)  # nesterov: numer = β1 m + (1 − β1) g
        updates, ratios = project_all(params, grads, updates, group["delta"], eps, group["wd_ratio"])
        decoupled_weight_decay_(params, lr, group["weight_decay"], ratios)  # w ← w (1 − ηλr)
        torch._foreach_add_(params, updates, alpha=-lr / bias_correction(beta1, step))

r"""Lion: EvoLved Sign Momentum (Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le; 2023,
arXiv 2302.06675), found by program search.

Update (paper Algorithm 2; code google/automl ``lion/lion_pytorch.py``), gradient g_t, momentum m::

    θ_t = θ_{t-1} (1 − η λ)                       decoupled weight decay
    c_t = β1 m_{t-1} + (1 − β1) g_t               interpolation used for the update
    θ_t = θ_t − η sign(c_t)                       every coordinate moves by exactly η (or 0 where c = 0)
    m_t = β2 m_{t-1} + (1 − β2) g_t               momentum tracked with a *different* β

No ε, no bias correction, one state tensor (half of Adam's memory). The update has norm η√d, larger than
Adam's, so the paper uses a learning rate 3–10× smaller than AdamW's and λ 3–10× larger (so that η·λ, the
decay per step, stays comparable).

Paper defaults: ``lr=1e-4, betas=(0.9, 0.99), weight_decay=0``; language models use ``betas=(0.95, 0.98)``.
Meant for every parameter (the paper trains whole ViTs, LMs and diffusion models with it).

Conventions: the decay is θ(1 − ηλ) with η the *current* learning rate, as in the paper's code,
pytorch_optimizer's ``Lion`` and lion-pytorch's default. lion-pytorch's ``decoupled_weight_decay=True`` means
something else (λ divided by the initial lr); we do not offer it. sign(0) = 0: a coordinate whose c is exactly
zero is not moved.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    cache_sized_chunks,
    check_betas,
    check_lr,
    check_non_negative,
    decoupled_weight_decay_,
)
from minidiff.optim.registry import register

__all__ = ["Lion"]


@register("lion")
class Lion(MinidiffOptimizer):
    """Lion (arXiv 2302.06675): θ ← θ(1 − ηλ) − η·sign(β1·m + (1 − β1)·g), then m ← β2·m + (1 − β2)·g."""

    state_keys = ("exp_avg",)
    hparam_checks = {"lr": check_lr, "betas": check_betas, "weight_decay": check_non_negative}
    test_hparams = {"lr": 3e-3}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        exp_avgs = [s["exp_avg"] for s in states]
        # cache-sized chunks: c is consumed while it is still in cache (one pass over 40 MB per op is ~1.5x
        # slower on CPU than the same ops on 4 MB at a time; benchmarks/optim_step.py)
        for ps, gs, ms in cache_sized_chunks(params, grads, exp_avgs):
            decoupled_weight_decay_(ps, lr, group["weight_decay"])  # θ ← θ(1 − ηλ)
            update = torch._foreach_lerp(ms, gs, 1.0 - beta1)  # c = β1 m + (1 − β1) g
            torch._foreach_sign_(update)
            torch._foreach_add_(ps, update, alpha=-lr)  # θ ← θ − η sign(c)
            torch._foreach_lerp_(ms, gs, 1.0 - beta2)  # m ← β2 m + (1 − β2) g

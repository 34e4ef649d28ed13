r"""Shampoo: preconditioned stochastic tensor optimization (Gupta, Koren & Singer, 2018, arXiv 1802.09568), for
matrices (the paper's Algorithm 1).

For :math:`W \in \mathbb{R}^{m \times n}`::

    M ← β M + (1 − β) G                      (momentum; β = 0 gives M = G, the paper's rule)
    L ← L + G Gᵀ,    R ← R + Gᵀ G             (summed statistics, L₀ = εI_m, R₀ = εI_n)
    W ← (1 − ηλ) W − η L^{−1/r} M R^{−1/r}    (r = ``root`` = 4: the paper's exponent −1/(2·order))

The inverse roots are recomputed by an eigendecomposition (float32, float64 for float64 parameters) at steps
1, 1 + f, 1 + 2f, ... for ``update_freq`` f and reused in between. With ``root=2`` this is the
"Shampoo^{1/2}" that the SOAP paper relates to Adafactor in Shampoo's eigenbasis.

Why it is a matrix optimizer: for one step from zero statistics with ε → 0,
:math:`L^{-1/4} G R^{-1/4} = (U\Sigma^2U^\top)^{-1/4} U\Sigma V^\top (V\Sigma^2V^\top)^{-1/4} = UV^\top =
\mathrm{polar}(G)` -- Shampoo's first step is Muon's update (tested in float64).

Defaults: lr 1e-3, momentum 0, ``eps`` (the ridge ε) 1e-6, root 4, update_freq 1, weight_decay 0 -- as
``pytorch_optimizer.Shampoo`` (``matrix_eps=1e-6``, ``preconditioning_compute_steps=1``).

**Intended parameters**: 2-D matrices (both preconditioners are dense: m² + n² memory).

**Conventions where peers differ**: ``pytorch_optimizer.Shampoo`` computes the roots by SVD and, with momentum,
blends the *preconditioned* update of the previous step into the gradient; here momentum is an EMA of raw
gradients, preconditioned afterwards, and statistics always use the raw gradient. With momentum 0 and
weight_decay 0 the two agree (tested); ``ScalableShampoo`` (grafting, blocking, delayed start) is not
reproduced.
"""

from __future__ import annotations

import torch

from minidiff.optim._common import (
    check_lr,
    check_non_negative,
    check_positive,
    check_positive_int,
    state_dtype,
)
from minidiff.optim._matrix import MatrixOptimizer, check_unit_interval
from minidiff.optim.linalg import matrix_inverse_root
from minidiff.optim.registry import register

__all__ = ["Shampoo"]


@register("shampoo")
class Shampoo(MatrixOptimizer):
    """Shampoo on 2-D matrices; see the module docstring."""

    param_kind = "matrix"
    hparam_checks = {
        "lr": check_lr,
        "momentum": check_unit_interval,
        "weight_decay": check_non_negative,
        "eps": check_non_negative,
        "root": check_positive,
        "update_freq": check_positive_int,
    }
    test_hparams = {"lr": 1e-2}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        root: float = 4.0,
        update_freq: int = 1,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps, root=root, update_freq=update_freq
        )
        super().__init__(params, defaults)

    def _init_state(self, group: dict, p: torch.Tensor, state: dict) -> None:
        m, n = p.shape
        state["L"] = group["eps"] * torch.eye(m, dtype=state_dtype(p), device=p.device)
        state["R"] = group["eps"] * torch.eye(n, dtype=state_dtype(p), device=p.device)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        state["L"].addmm_(grad, grad.mT)
        state["R"].addmm_(grad.mT, grad)
        if (step - 1) % group["update_freq"] == 0:
            state["L_inv_root"] = matrix_inverse_root(state["L"], group["root"])
            state["R_inv_root"] = matrix_inverse_root(state["R"], group["root"])
        direction = grad
        if group["momentum"] > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(grad)
            direction = state["momentum_buffer"].lerp_(grad, 1 - group["momentum"])
        update = state["L_inv_root"] @ direction @ state["R_inv_root"]
        self._decay(p, group)
        p.add_(update.to(p.dtype), alpha=-group["lr"])

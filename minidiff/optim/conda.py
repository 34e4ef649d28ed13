r"""Conda: Column-Normalized Adam (Wang, Zhou, Dong, Li, Li, Zhou, Lao, Fang & Lin, 2025, arXiv 2509.24218;
code github.com/jie040109/Conda).

Adam in a basis taken from the SVD of the momentum. For :math:`W \in \mathbb{R}^{m \times n}`::

    M ← β₁ M + (1 − β₁) G
    every T steps (steps 1, T + 1, 2T + 1, ...):  thin SVD M = U Σ Vᵀ;  P = V if m ≥ n else U
    G̃ = G P  (m ≥ n)  or  Pᵀ G  (m < n);          M̃ = the same projection of M
    v ← β₂ v + (1 − β₂) G̃ ⊙ G̃                       (v lives in the projected space)
    W ← W − η · √(1 − β₂ᵗ)/(1 − β₁ᵗ) · scale · back(M̃ ⊘ (√v + ε))
    W ← W − ηλ W                                      (decoupled decay after the step, as the code)

with back(X) = X Pᵀ or P X. In the basis P the columns of M̃ are the singular directions scaled by σ, so dividing
by √v normalises them column by column -- Muon would set every column to unit norm; Conda does it per
coordinate with Adam's running statistics. The rank is full (P is square), so the projection is a rotation.

Defaults (official code): lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, ``update_proj_gap`` T = 2000,
``scale`` 1.0. The paper's LLaMA runs use lr 0.01, scale 0.25, T 2000, betas (0.9, 0.99); GPT-2 125M lr 0.006,
weight_decay 0.01. The SVD runs in float32 (float64 for float64 parameters).

**Intended parameters**: attention and MLP ``nn.Linear`` weights; in the paper embeddings, head and norms are
plain-Adam groups of the same optimizer with the same lr (here: :func:`minidiff.optim.groups.hybrid`).

**State** (all tensors, so ``state_dict`` round-trips): ``step``, ``exp_avg`` [m, n], ``exp_avg_sq`` [m, n]
(projected space) and ``projector`` (P, n×n or m×m).

**Peer and convention** -- ``pytorch_optimizer.Conda(update_proj_gap=T)`` refreshes the SVD at the 1-based steps
1, T, 2T, ... instead of the official 1, T + 1, 2T + 1, ...; they agree when T = 1 or T exceeds the run and
differ otherwise (tests pin both facts). It also projects every 2-D parameter of its groups and keeps the
projector as a Python object in its state.
"""

from __future__ import annotations

import math

import torch

from minidiff.optim._common import (
    bias_correction,
    check_betas,
    check_lr,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from minidiff.optim._matrix import MatrixOptimizer
from minidiff.optim.registry import register

__all__ = ["Conda"]


def _project(X: torch.Tensor, P: torch.Tensor, tall: bool) -> torch.Tensor:
    return X @ P if tall else P.mT @ X


def _project_back(X: torch.Tensor, P: torch.Tensor, tall: bool) -> torch.Tensor:
    return X @ P.mT if tall else P @ X


@register("conda")
class Conda(MatrixOptimizer):
    """Conda on 2-D hidden matrices; see the module docstring."""

    param_kind = "matrix"
    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_non_negative,
        "weight_decay": check_non_negative,
        "update_proj_gap": check_positive_int,
        "scale": check_positive,
    }
    test_hparams = {"lr": 1e-2}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        update_proj_gap: int = 2000,
        scale: float = 1.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            update_proj_gap=update_proj_gap,
            scale=scale,
        )
        super().__init__(params, defaults)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        (beta1, beta2), M, v = group["betas"], state["exp_avg"], state["exp_avg_sq"]
        M.lerp_(grad, 1 - beta1)
        tall = p.shape[0] >= p.shape[1]
        if (step - 1) % group["update_proj_gap"] == 0:  # the official refresh steps 1, T + 1, 2T + 1, ...
            svd_dtype = torch.float64 if M.dtype == torch.float64 else torch.float32
            U, _, Vh = torch.linalg.svd(M.to(svd_dtype), full_matrices=False)
            state["projector"] = (Vh.mT if tall else U).to(M.dtype)
        P = state["projector"]
        G_proj, M_proj = _project(grad, P, tall), _project(M, P, tall)
        v.mul_(beta2).addcmul_(G_proj, G_proj, value=1 - beta2)
        update = _project_back(M_proj / (v.sqrt() + group["eps"]), P, tall) * group["scale"]
        step_size = group["lr"] * math.sqrt(bias_correction(beta2, step)) / bias_correction(beta1, step)
        p.add_(update.to(p.dtype), alpha=-step_size)
        self._decay(p, group)

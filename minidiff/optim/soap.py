r"""SOAP: ShampoO with Adam in the Preconditioner's eigenbasis (Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener,
Janson & Kakade, 2024, arXiv 2409.11321; code github.com/nikhilvyas/SOAP).

For a matrix :math:`W \in \mathbb{R}^{m \times n}` with Shampoo statistics L (m×m), R (n×n) and their eigenbases
:math:`Q_L, Q_R`::

    G′ = Q_Lᵀ G Q_R                                   (rotate into the eigenbasis)
    m ← β₁ m + (1 − β₁) G                              (kept unrotated; rotated when used -- equivalent)
    v ← β₂ v + (1 − β₂) G′ ⊙ G′                         (Adam's second moment, in the rotated space)
    W ← W − η √(1 − β₂ᵗ)/(1 − β₁ᵗ) · Q_L ((Q_Lᵀ m Q_R) ⊘ (√v + ε)) Q_Rᵀ
    W ← W − ηλ W
    L ← β_s L + (1 − β_s) G Gᵀ,   R ← β_s R + (1 − β_s) Gᵀ G      (after the step: the projection used above never
                                                                       contains the current gradient)

The first step only builds L, R and their eigenbases (``eigh``, eigenvalues descending) and leaves W unchanged.
Every ``precondition_frequency`` steps the bases are refreshed by one power-iteration step, Q ← QR(L Q), after
sorting Q's columns by the estimated eigenvalues diag(QᵀLQ) (and permuting v the same way). Tensors of any rank
work the same way with one preconditioner per dimension; a dimension larger than ``max_precond_dim`` gets the
identity (one-sided SOAP, e.g. a vocab × d embedding), and 1-D parameters are plain Adam unless
``precondition_1d``. Hence ``param_kind = "any"``: SOAP runs on every parameter of a model (the paper's LM runs
use it throughout [uncertain]).

Defaults (official code): lr 3e-3, betas (0.95, 0.95), ``shampoo_beta`` None (→ β₂), eps 1e-8, weight_decay
0.01, precondition_frequency 10, max_precond_dim 10000, precondition_1d False, correct_bias True. The
``merge_dims`` option of the reference (merging small conv dimensions) is not implemented.

**State** (tensors and ints only): ``step`` (the first, preconditioner-only call counts), ``exp_avg``, ``exp_avg_sq`` and, per preconditioned dimension d, ``GG_d`` and
``Q_d``; a dimension without them is the identity. (The reference keeps lists mixing tensors and ``[]``.)

**Peers**: ``pytorch_optimizer.SOAP`` (same conventions, unrotated m, first step skipped per group) matches to
round-off (tested, float32). ``heavyball.SOAP`` differs in defaults (β₁ 0.9, frequency 2, max dim 2048, merged
dims, a regularised eigenbasis) and is not a tight reference.
"""

from __future__ import annotations

import math
from itertools import chain

import torch

from minidiff.optim._common import (
    bias_correction,
    check_betas,
    check_lr,
    check_non_negative,
    check_positive_int,
)
from minidiff.optim._matrix import MatrixOptimizer, check_bool, check_unit_interval
from minidiff.optim.registry import register

__all__ = ["SOAP"]


def _eigenbasis(GG: torch.Tensor) -> torch.Tensor:
    """Eigenvectors of a symmetric PSD matrix, columns ordered by decreasing eigenvalue."""
    eye = torch.eye(GG.shape[0], dtype=GG.dtype, device=GG.device)
    try:
        _, Q = torch.linalg.eigh(GG + 1e-30 * eye)
    except RuntimeError:  # rare convergence failure in float32: retry in float64
        _, Q = torch.linalg.eigh(GG.double() + 1e-30 * eye.double())
        Q = Q.to(GG.dtype)
    return Q.flip(1)


@register("soap")
class SOAP(MatrixOptimizer):
    """SOAP on parameters of any shape; see the module docstring."""

    param_kind = "any"
    state_keys = ("exp_avg", "exp_avg_sq")
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "eps": check_non_negative,
        "weight_decay": check_non_negative,
        "precondition_frequency": check_positive_int,
        "max_precond_dim": check_positive_int,
        "precondition_1d": check_bool,
        "correct_bias": check_bool,
        "normalize_grads": check_bool,
    }
    test_hparams = {"lr": 1e-2, "weight_decay": 0.0}

    def __init__(
        self,
        params,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        precondition_1d: bool = False,
        correct_bias: bool = True,
        normalize_grads: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            shampoo_beta=shampoo_beta,
            eps=eps,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            precondition_1d=precondition_1d,
            correct_bias=correct_bias,
            normalize_grads=normalize_grads,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        if group["shampoo_beta"] is not None:
            check_unit_interval("shampoo_beta", group["shampoo_beta"])

    @staticmethod
    def _project(X: torch.Tensor, state: dict, backward: bool = False) -> torch.Tensor:
        """Apply Q_dᵀ (forward) or Q_d (backward) along every dimension d; identity where no Q_d is stored."""
        for d in range(X.ndim):
            Q = state.get(f"Q_{d}")
            if Q is None:  # rotate dims so that the next dimension comes first
                X = X.permute(*range(1, X.ndim), 0)
            else:  # contract dim 0 with Q; the new axis is appended last
                X = torch.tensordot(X, Q, dims=([0], [1 if backward else 0]))
        return X

    def _init_preconditioners(self, grad: torch.Tensor, state: dict, group: dict) -> None:
        for d, size in enumerate(grad.shape):
            if size <= group["max_precond_dim"] and (grad.ndim > 1 or group["precondition_1d"]):
                state[f"GG_{d}"] = torch.zeros(size, size, dtype=grad.dtype, device=grad.device)
        self._update_preconditioners(grad, state, group, refresh=False)
        for d in range(grad.ndim):
            if f"GG_{d}" in state:
                state[f"Q_{d}"] = _eigenbasis(state[f"GG_{d}"])

    @staticmethod
    def _update_preconditioners(grad: torch.Tensor, state: dict, group: dict, refresh: bool) -> None:
        beta_s = group["shampoo_beta"] if group["shampoo_beta"] is not None else group["betas"][1]
        for d in range(grad.ndim):
            if f"GG_{d}" in state:
                others = [*chain(range(d), range(d + 1, grad.ndim))]
                state[f"GG_{d}"].lerp_(torch.tensordot(grad, grad, dims=(others, others)), 1 - beta_s)
        if refresh:
            SOAP._refresh_bases(state)

    @staticmethod
    def _refresh_bases(state: dict) -> None:
        """One power-iteration step per basis, Q ← QR(GG Q), columns sorted by diag(Qᵀ GG Q) (v permuted alike)."""
        v = state["exp_avg_sq"]
        for d in range(v.ndim):
            if f"Q_{d}" not in state:
                continue
            GG, Q = state[f"GG_{d}"], state[f"Q_{d}"]
            power = GG @ Q
            order = torch.argsort((Q * power).sum(0), descending=True)
            v = v.index_select(d, order)
            qr_dtype = torch.float64 if Q.dtype == torch.float64 else torch.float32
            state[f"Q_{d}"] = torch.linalg.qr(power.index_select(1, order).to(qr_dtype))[0].to(Q.dtype)
        state["exp_avg_sq"] = v

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        if step == 1:  # the first step only builds the preconditioners
            self._init_preconditioners(grad, state, group)
            return
        t, (beta1, beta2) = step - 1, group["betas"]  # t counts the updates actually made
        grad_rotated = self._project(grad, state)
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].lerp_(grad_rotated.square(), 1 - beta2)
        denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
        update = self._project(self._project(state["exp_avg"], state) / denom, state, backward=True)
        if group["normalize_grads"]:
            update = update / (update.square().mean().sqrt() + group["eps"])
        step_size = group["lr"]
        if group["correct_bias"]:
            step_size *= math.sqrt(bias_correction(beta2, t)) / bias_correction(beta1, t)
        p.add_(update.to(p.dtype), alpha=-step_size)
        self._decay(p, group)
        self._update_preconditioners(grad, state, group, refresh=t % group["precondition_frequency"] == 0)

r"""Dion: DIstributed OrthoNormalization (Ahn, Xu, Abreu & Langford, 2025, arXiv 2504.05295; code
github.com/microsoft/dion, ``dion_simple.py`` / ``dion_reference.py``).

A low-rank, communication-friendly approximation of Muon: one warm-started power iteration per step replaces
Newton–Schulz, and error feedback keeps what the rank-r factor missed in the momentum. For
:math:`W \in \mathbb{R}^{m \times n}`, rank :math:`r` and the previous right factor :math:`Q \in \mathbb{R}^{n \times r}`::

    M ← M + G                                   (momentum buffer, summed)
    P = orth(M Q)                               (QR, P ∈ ℝ^{m×r}, Pᵀ P = I)
    R = Mᵀ P                                    (R ∈ ℝ^{n×r})
    M ← M − (1 − μ) P Rᵀ                        (error feedback: decay only the captured part)
    Q = R ⊘ ‖R‖_col                             (columns normalised, + ε)
    W ← (1 − ηλ) W − η s(m, n) P Qᵀ

:math:`PQ^\top` has singular values ≈ 1 on the captured subspace, like Muon's :math:`UV^\top`: with full rank and
a constant gradient it converges to polar(G) (0.70, 0.09, 0.015, 3e-6 relative error after 1, 5, 20, 60 steps
with μ = 0.95). :math:`Q_0` ~ N(0, 1), drawn from ``torch.Generator().manual_seed(seed + index)`` where ``index`` is
the parameter's position in the optimizer, so runs are reproducible without touching the global RNG.

Rank: ``rank`` if given, else ``max(1, round(rank_fraction · min(m, n)))``. Scale ``s``: ``"spectral"`` (default,
dion's ``spectral_norm``) √(m/n) -- without Muon's max(1, ·); ``"rms"`` 0.2√max(m, n).

Defaults (microsoft/dion): lr 0.01, mu 0.95, weight_decay 0.01, rank_fraction 1.0, eps 1e-8. We use
``torch.linalg.qr`` (dion defaults to a randomized Cholesky QR for speed) and one power iteration; Orth-Dion (QR
of R instead of column normalisation) is not implemented.

**Intended parameters**: 2-D weights; embeddings, head and vectors → AdamW (or Lion in dion's examples).
**State** (tensors): ``momentum`` [m, n], ``Q`` [n, r]. No packaged peer (dion installs from git only).
"""

from __future__ import annotations

import math

import torch

from minidiff.optim._common import check_lr, check_non_negative, check_non_negative_int, state_dtype
from minidiff.optim._matrix import MatrixOptimizer, check_choice, check_unit_interval
from minidiff.optim.registry import register

__all__ = ["Dion", "dion_power_step"]

DION_SCALES = ("spectral", "rms")


def dion_power_step(
    M: torch.Tensor, Q: torch.Tensor, mu: float, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Dion step on the momentum ``M`` [m, n] (updated in place by error feedback) from ``Q`` [n, r].

    Returns ``P`` [m, r] with orthonormal columns and the new ``Q`` [n, r] (unit columns).
    """
    work = torch.float64 if M.dtype == torch.float64 else torch.float32
    P = torch.linalg.qr((M @ Q).to(work))[0].to(M.dtype)  # [m, r]
    R = M.mT @ P  # [n, r]
    M.addmm_(P, R.mT, alpha=-(1 - mu))
    norms = R.norm(dim=0, keepdim=True)
    # A zero column (e.g. after a zero gradient) would zero Q for good: keep the old column instead.
    return P, torch.where(norms > 0, R / (norms + eps), Q)


@register("dion")
class Dion(MatrixOptimizer):
    """Dion on 2-D hidden matrices; see the module docstring."""

    param_kind = "matrix"
    hparam_checks = {
        "lr": check_lr,
        "mu": check_unit_interval,
        "weight_decay": check_non_negative,
        "eps": check_non_negative,
        "seed": check_non_negative_int,
    }
    test_hparams = {"lr": 0.02, "weight_decay": 0.0}

    def __init__(
        self,
        params,
        lr: float = 0.01,
        mu: float = 0.95,
        weight_decay: float = 0.01,
        rank_fraction: float = 1.0,
        rank: int | None = None,
        scale: str = "spectral",
        eps: float = 1e-8,
        seed: int = 0,
    ) -> None:
        defaults = dict(
            lr=lr,
            mu=mu,
            weight_decay=weight_decay,
            rank_fraction=rank_fraction,
            rank=rank,
            scale=scale,
            eps=eps,
            seed=seed,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        fraction = group["rank_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"rank_fraction must be a number in (0, 1], got {fraction!r}")
        rank = group["rank"]
        if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
            raise ValueError(f"rank must be None or an int >= 1, got {rank!r}")
        check_choice("scale", group["scale"], DION_SCALES)

    def _init_state(self, group: dict, p: torch.Tensor, state: dict) -> None:
        m, n = p.shape
        r = min(group["rank"] or max(1, round(group["rank_fraction"] * min(m, n))), m, n)
        index = next(i for i, q in enumerate(q for g in self.param_groups for q in g["params"]) if q is p)
        gen = torch.Generator().manual_seed(group["seed"] + index)
        state["momentum"] = torch.zeros_like(p, dtype=state_dtype(p))
        state["Q"] = torch.randn(n, r, generator=gen, dtype=torch.float64).to(p.device, state_dtype(p))

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        M, Q = state["momentum"], state["Q"]
        M.add_(grad)
        P, Q_new = dion_power_step(M, Q, group["mu"], group["eps"])
        Q.copy_(Q_new)
        m, n = p.shape
        s = math.sqrt(m / n) if group["scale"] == "spectral" else 0.2 * math.sqrt(max(m, n))
        self._decay(p, group)
        p.add_((P @ Q.mT).to(p.dtype), alpha=-group["lr"] * s)

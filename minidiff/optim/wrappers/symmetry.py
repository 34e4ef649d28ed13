r"""Symmetry-compatible layer-wise updates (Lau & Su, 2026, "Symmetry-Compatible Principle for Optimizer Design:
Embeddings, LM Heads, SwiGLU MLPs, and MoE Routers", arXiv 2605.18106; code timlautk/equivariant_optimizers).

Principle: the update map U(M) of a weight block must be *equivariant* under the symmetry group of that block.
A hidden matrix has bi-orthogonal symmetry (U(AMB) = A U(M) B for orthogonal A, B): Muon and PolarGrad. Other
blocks have smaller groups, hence other maps; each acts on the momentum M ← βM + (1 − β)G (β = 0.95):

=================  ==================================================  ===========================================
rule               U(M)                                                equivariance
=================  ==================================================  ===========================================
``row``            rows to unit norm: M_i / (‖M_i‖ + ε)                 U(PM) = P U(M), U(MO) = U(M) O (embeddings:
                                                                       token permutations × orthogonal features)
``centered_row``   C(rownorm(C M)), C = I − 11ᵀ/m (subtract the mean    as ``row``, plus 1ᵀU = 0: the shared logit
                   row before and after)                               shift of an untied LM head / MoE router
``right``          ν^α · M (MᵀM + εI)^{−1/2},  ν = ⟨M, M(MᵀM+εI)^{−1/2}⟩  U(AMO) = A U(M) O for orthogonal A, O
``left``           ν^α · (MMᵀ + εI)^{−1/2} M                            the mirror image (router: left spectral)
``hybrid``         row-normalise R = rownorm(M), then ν^α polar(R),     row permutations and right rotations
                   ν = ⟨R, polar(R)⟩ (the repository's row_then_polar)
``polar``          polar(M) by 5 Polar Express steps (float32),         bi-orthogonal (Muon-like, for hidden
                   × √max(1, m/n)                                      matrices)
=================  ==================================================  ===========================================

Orientation (which axis carries the symmetry): ``"row"`` as is; ``"col"`` transposes first (column-aware, for the
SwiGLU down projection [d, d_ff] whose *columns* are neurons); ``"gate_up_pair"`` reshapes minidiff's fused SwiGLU
``gate_up`` weight [2·d_ff, d] (rows 0..d_ff−1 are gate, d_ff..2·d_ff−1 are up) to [d_ff, 2d] so that neuron i's
gate and up rows are normalised *together* (row-aware), then back.

:func:`symmetry_compatible` builds the whole stack for a model from :mod:`minidiff.optim.groups` roles. Default
routes: embedding → ``row``, lm_head → ``centered_row``, router → ``centered_row`` (the notes' default), attention
/ MLP / other hidden matrices → the ``matrix`` optimizer (Muon), everything else (norms, biases, time MLP) → the
``base`` optimizer (AdamW betas (0.9, 0.95)) -- any registry name or factory. Setting e.g.
``routes={"mlp_gate_up": "row", "mlp_down": "row"}`` gives the row-aware / column-aware SwiGLU updates. The
repository's own defaults differ (embedding ``right``, head ``hybrid``, router ``left``); its Qwen3-0.6B recipe uses
lr 2e-2 (Muon), 0.5 (embedding), 5e-3 (head), α = 1, 5 inner steps -- pass per-role learning rates through
``role_hparams``. Per-head attention orthogonalisation is not implemented (fused ``qkv`` is treated as one matrix).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from minidiff.optim._common import check_lr, check_non_negative
from minidiff.optim._compose import ComposedOptimizer
from minidiff.optim._matrix import MatrixOptimizer, check_choice, check_unit_interval
from minidiff.optim.groups import _build, named_parameters_by_role
from minidiff.optim.linalg import matrix_inverse_root, newton_schulz

__all__ = [
    "RULES",
    "ORIENTATIONS",
    "DEFAULT_ROUTES",
    "symmetric_update",
    "SymmetryUpdates",
    "SymmetryCompatible",
    "symmetry_compatible",
]

RULES = ("row", "centered_row", "right", "left", "hybrid", "polar")
ORIENTATIONS = ("row", "col", "gate_up_pair")
DEFAULT_ROUTES = {
    "embedding": "row",
    "lm_head": "centered_row",
    "router": "centered_row",
    "attention": "matrix",
    "mlp_gate_up": "matrix",
    "mlp_down": "matrix",
    "modulation": "matrix",
    "hidden": "matrix",
}
_ROLE_ORIENTATION = {"mlp_gate_up": "gate_up_pair", "mlp_down": "col"}


def _orient(M: torch.Tensor, orientation: str) -> torch.Tensor:
    if orientation == "col":
        return M.mT
    if orientation == "gate_up_pair":
        if M.shape[0] % 2:
            raise ValueError(
                f"orientation 'gate_up_pair' needs an even number of rows, got shape {tuple(M.shape)}"
            )
        gate, up = M.chunk(2, dim=0)
        return torch.cat([gate, up], dim=1)  # [d_ff, 2d]: row i = (gate_i, up_i)
    return M


def _unorient(U: torch.Tensor, orientation: str) -> torch.Tensor:
    if orientation == "col":
        return U.mT
    if orientation == "gate_up_pair":
        gate, up = U.chunk(2, dim=1)
        return torch.cat([gate, up], dim=0)
    return U


def _row_normalize(X: torch.Tensor, eps: float) -> torch.Tensor:
    return X / (X.norm(dim=-1, keepdim=True) + eps)


def _center(X: torch.Tensor) -> torch.Tensor:
    return X - X.mean(dim=-2, keepdim=True)


def _scaled(U: torch.Tensor, X: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """ν^α U with ν = ⟨X, U⟩ (the nuclear norm of X when U = polar(X))."""
    if alpha == 0:
        return U
    return U * (X * U).sum().clamp_min(eps) ** alpha


def symmetric_update(
    M: torch.Tensor, rule: str, *, orientation: str = "row", alpha: float = 1.0, eps: float = 1e-8
) -> torch.Tensor:
    """U(M) for one of :data:`RULES`, computed in float32 (float64 for float64 input); see the module table."""
    check_choice("rule", rule, RULES)
    check_choice("orientation", orientation, ORIENTATIONS)
    X = _orient(M if M.dtype == torch.float64 else M.float(), orientation)
    if rule == "row":
        U = _row_normalize(X, eps)
    elif rule == "centered_row":
        U = _center(_row_normalize(_center(X), eps))
    elif rule == "right":
        U = _scaled(X @ matrix_inverse_root(X.mT @ X, 2, eps), X, alpha, eps)
    elif rule == "left":
        U = _scaled(matrix_inverse_root(X @ X.mT, 2, eps) @ X, X, alpha, eps)
    elif rule == "hybrid":
        R = _row_normalize(X, eps)
        U = _scaled(newton_schulz(R, 5, "polar_express", dtype=X.dtype), R, alpha, eps)
    else:  # polar
        U = newton_schulz(X, 5, "polar_express", dtype=X.dtype) * math.sqrt(max(1.0, X.shape[0] / X.shape[1]))
    return _unorient(U, orientation).to(M.dtype)


class SymmetryUpdates(MatrixOptimizer):
    """Momentum + one symmetry-compatible rule per param group: W ← (1 − ηλ)W − η U(βM + (1 − β)G).

    Group options: ``rule`` (:data:`RULES`), ``orientation`` (:data:`ORIENTATIONS`), ``beta``, ``alpha``, ``eps``.
    """

    param_kind = "matrix"
    state_keys = ("momentum_buffer",)
    hparam_checks = {
        "lr": check_lr,
        "beta": check_unit_interval,
        "alpha": check_non_negative,
        "eps": check_non_negative,
        "weight_decay": check_non_negative,
    }

    def __init__(
        self,
        params,
        lr: float = 0.02,
        rule: str = "row",
        orientation: str = "row",
        beta: float = 0.95,
        alpha: float = 1.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            rule=rule,
            orientation=orientation,
            beta=beta,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_choice("rule", group["rule"], RULES)
        check_choice("orientation", group["orientation"], ORIENTATIONS)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        M = state["momentum_buffer"].lerp_(grad, 1 - group["beta"])
        U = symmetric_update(
            M, group["rule"], orientation=group["orientation"], alpha=group["alpha"], eps=group["eps"]
        )
        self._decay(p, group)
        p.add_(U.to(p.dtype), alpha=-group["lr"])


class SymmetryCompatible(ComposedOptimizer):
    """The layer-wise stack: children ``"symmetry"`` (:class:`SymmetryUpdates`), ``"matrix"`` and ``"base"``."""


def symmetry_compatible(
    model: nn.Module,
    *,
    routes: dict[str, str] | None = None,
    lr: float = 0.02,
    beta: float = 0.95,
    alpha: float = 1.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    matrix: str | Callable[..., torch.optim.Optimizer] = "muon",
    matrix_kwargs: dict[str, Any] | None = None,
    base: str | Callable[..., torch.optim.Optimizer] = "adamw",
    base_kwargs: dict[str, Any] | None = None,
    role_hparams: dict[str, dict[str, Any]] | None = None,
) -> SymmetryCompatible:
    """Route every parameter of ``model`` by role: a rule of :data:`RULES`, ``"matrix"`` or ``"base"``.

    ``routes`` overrides :data:`DEFAULT_ROUTES` (unlisted roles go to ``base``). ``lr``, ``beta``, ``alpha``,
    ``eps`` and ``weight_decay`` are the :class:`SymmetryUpdates` defaults; ``role_hparams`` sets per-role values
    (e.g. ``{"embedding": {"lr": 0.5}}``) in whichever child the role lands. ``base_kwargs`` defaults to AdamW
    with lr 3e-4, betas (0.9, 0.95).
    """
    routes = {**DEFAULT_ROUTES, **(routes or {})}
    for role, route in routes.items():
        if route not in (*RULES, "matrix", "base"):
            raise ValueError(f"routes[{role!r}] must be one of {RULES + ('matrix', 'base')}, got {route!r}")
    role_hparams = role_hparams or {}
    groups: dict[str, list[dict[str, Any]]] = {"symmetry": [], "matrix": [], "base": []}
    for role, named in named_parameters_by_role(model).items():
        route = routes.get(role, "base")
        group = {"params": [p for _, p in named], "param_names": [n for n, _ in named], "role": role}
        if route in RULES:
            group.update(rule=route, orientation=_ROLE_ORIENTATION.get(role, "row"))
        if route != "base":
            for name, p in named:
                if p.ndim != 2:
                    raise ValueError(
                        f"route {route!r} of role {role!r} needs 2-D weights; {name} is {tuple(p.shape)}"
                    )
        groups["symmetry" if route in RULES else route].append({**group, **role_hparams.get(role, {})})
    children: dict[str, torch.optim.Optimizer] = {}
    if groups["symmetry"]:
        children["symmetry"] = SymmetryUpdates(
            groups["symmetry"], lr=lr, beta=beta, alpha=alpha, eps=eps, weight_decay=weight_decay
        )
    if groups["matrix"]:
        children["matrix"] = _build(matrix, groups["matrix"], matrix_kwargs or {})
    if groups["base"]:
        kwargs = base_kwargs if base_kwargs is not None else {"lr": 3e-4, "betas": (0.9, 0.95)}
        children["base"] = _build(base, groups["base"], kwargs)
    return SymmetryCompatible(children)

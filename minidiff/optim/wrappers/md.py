r"""Magnitude–Direction (MD) decoupling over any base optimizer (Hägele, Hernández-Cano, Kosson & Jaggi, 2026,
"Improving Neural Network Training by Decoupling the Magnitude and Direction of Weight Vectors", arXiv 2606.25971;
reference code swiss-ai/Megatron-LM-MoE ``megatron/core/optimizer/md_decoupling.py``).

The model keeps seeing one fused weight :math:`W \in \mathbb{R}^{m \times n}`, factorised as

.. math::  W = \mathrm{diag}(\varphi(r))\, \hat W\, \mathrm{diag}(\varphi(c)),

with a direction :math:`\hat W` on a sphere (``sphere="row"``: unit rows; ``"col"``: unit columns; ``"flat"``:
:math:`\|\hat W\|_F = \sqrt{\max(m, n)}`) and learnable per-row and per-column gains r, c (``phi`` = identity or
softplus). One step, given the gradient G of the fused W:

1. divide the gains out: :math:`\hat W = W \oslash (\varphi(r)\varphi(c)^\top)`;
2. gain gradients :math:`\partial L/\partial r_i = \varphi'(r_i)\sum_j G_{ij}\hat W_{ij}\varphi(c_j)`,
   :math:`\partial L/\partial c_j = \varphi'(c_j)\sum_i G_{ij}\hat W_{ij}\varphi(r_i)` and the direction gradient
   :math:`\partial L/\partial \hat W = G \odot \varphi(r)\varphi(c)^\top` (:func:`md_gradients`; tested against
   autograd of the explicit factorised module);
3. optionally project the direction gradient onto the sphere's tangent space (``tangent=True``; per row for the
   row sphere, per column for the column sphere, globally for the flat one);
4. the **base optimizer** steps on :math:`\hat W` with that gradient (Adam, Muon with Nesterov, anything);
5. re-project :math:`\hat W` onto the sphere, take an Adam step on the gains with their own learning rate
   ``gain_lr`` (betas (0.9, 0.999), eps 1e-8, no decay), and write :math:`W` back.

The paper uses no weight decay and no warm-up for decoupled weights (give the base optimizer ``weight_decay=0``
for them) and finds per-row *and* per-column gains best. ``gain_lr`` follows the LR schedule: it is multiplied by
``group["lr"] / group["initial_lr"]`` of the base group that holds the weight (``initial_lr`` is what torch's
schedulers record). The default ``gain_lr = 1e-3`` is our choice [uncertain: the paper's value]. Gains are clamped
at ``min_gain`` (identity φ) so dividing them out is safe; the factorisation at wrap time puts the row (or column,
or global) norms into the gains, and a weight the chosen gains cannot represent (e.g. ``gains="none"``) is replaced
by its projection -- a deliberate change of W.

Which weights: ``params`` (default: every 2-D parameter of the base optimizer). 1-D parameters, and usually the
embedding and head, stay plain parameters of the base optimizer, as in the paper. No packaged peer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from minidiff.optim._common import check_betas, check_non_negative, check_positive
from minidiff.optim._matrix import check_bool, check_choice
from minidiff.optim.wrappers import OptimizerWrapper, swap_grads

__all__ = ["MagnitudeDirection", "md_gradients", "project_to_sphere", "SPHERES", "GAINS", "PHIS"]

SPHERES = ("row", "col", "flat")
GAINS = ("row_col", "row", "col", "none")
PHIS = ("identity", "softplus")


def _phi(x: torch.Tensor, phi: str) -> torch.Tensor:
    return x if phi == "identity" else F.softplus(x)


def _phi_prime(x: torch.Tensor, phi: str) -> torch.Tensor:
    return torch.ones_like(x) if phi == "identity" else torch.sigmoid(x)


def _phi_inverse(y: torch.Tensor, phi: str) -> torch.Tensor:
    return y if phi == "identity" else y + torch.log(-torch.expm1(-y))  # softplus⁻¹(y) = log(eʸ − 1)


def project_to_sphere(W: torch.Tensor, sphere: str, eps: float = 1e-12) -> torch.Tensor:
    """Unit rows (``"row"``), unit columns (``"col"``) or Frobenius norm √max(m, n) (``"flat"``)."""
    if sphere == "row":
        return W / W.norm(dim=1, keepdim=True).clamp_min(eps)
    if sphere == "col":
        return W / W.norm(dim=0, keepdim=True).clamp_min(eps)
    if sphere == "flat":
        return W * (math.sqrt(max(W.shape)) / W.norm().clamp_min(eps))
    raise ValueError(f"sphere must be one of {SPHERES}, got {sphere!r}")


def _tangent(G: torch.Tensor, W: torch.Tensor, sphere: str) -> torch.Tensor:
    """Remove the component of G along W (per row, per column or globally): G − (⟨W, G⟩/‖W‖²) W."""
    dims = {"row": (1,), "col": (0,), "flat": (0, 1)}[sphere]
    coef = (W * G).sum(dims, keepdim=True) / W.square().sum(dims, keepdim=True).clamp_min(1e-30)
    return G - coef * W


def md_gradients(
    G: torch.Tensor, W_hat: torch.Tensor, r: torch.Tensor, c: torch.Tensor, phi: str = "identity"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chain rule through W = diag(φ(r)) Ŵ diag(φ(c)): returns (∂L/∂r [m], ∂L/∂c [n], ∂L/∂Ŵ [m, n])."""
    sr, sc = _phi(r, phi), _phi(c, phi)
    GW = G * W_hat
    grad_r = (GW * sc[None, :]).sum(1) * _phi_prime(r, phi)
    grad_c = (GW * sr[:, None]).sum(0) * _phi_prime(c, phi)
    return grad_r, grad_c, G * sr[:, None] * sc[None, :]


class MagnitudeDirection(OptimizerWrapper):
    """MD decoupling of ``params`` (default: all 2-D parameters) over ``optimizer``; see the module docstring.

    >>> base = create("muon", hidden_matrices, weight_decay=0.0)              # doctest: +SKIP
    >>> opt = MagnitudeDirection(base, sphere="row", gains="row_col", gain_lr=1e-3)

    ``direction(p)`` and ``gains(p)`` return Ŵ and (φ(r), φ(c)) of a decoupled weight.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        params: Iterable[torch.Tensor] | None = None,
        *,
        sphere: str = "row",
        gains: str = "row_col",
        phi: str = "identity",
        gain_lr: float = 1e-3,
        gain_betas: tuple[float, float] = (0.9, 0.999),
        gain_eps: float = 1e-8,
        tangent: bool = False,
        min_gain: float = 1e-6,
    ) -> None:
        check_choice("sphere", sphere, SPHERES)
        check_choice("gains", gains, GAINS)
        check_choice("phi", phi, PHIS)
        check_non_negative("gain_lr", gain_lr)
        check_betas("gain_betas", gain_betas)
        check_positive("gain_eps", gain_eps)
        check_bool("tangent", tangent)
        check_positive("min_gain", min_gain)
        super().__init__(optimizer)
        self.sphere, self.gain_mode, self.phi, self.tangent = sphere, gains, phi, tangent
        self.gain_lr, self.gain_betas, self.gain_eps, self.min_gain = (
            gain_lr,
            tuple(gain_betas),
            gain_eps,
            min_gain,
        )
        owned = [p for g in self.param_groups for p in g["params"]]
        chosen = [p for p in owned if p.ndim == 2] if params is None else list(params)
        for p in chosen:
            if not any(p is q for q in owned):
                raise ValueError("params must be parameters of the wrapped optimizer")
            if p.ndim != 2:
                raise ValueError(
                    f"MD decoupling factorises 2-D weights, got a parameter of shape {tuple(p.shape)}"
                )
        self.decoupled = chosen
        self._lr0 = [g["lr"] for g in self.param_groups]
        self.md_state: dict[int, dict[str, Any]] = {}
        with torch.no_grad():
            for p in chosen:
                self._factorise(p)

    # ---- factorisation
    def _learns(self, which: str) -> bool:
        return self.gain_mode == "row_col" or self.gain_mode == which

    def _factorise(self, p: torch.Tensor) -> None:
        W = p.detach().to(torch.float64 if p.dtype == torch.float64 else torch.float32)
        m, n = W.shape
        row, col = (
            torch.ones(m, dtype=W.dtype, device=W.device),
            torch.ones(n, dtype=W.dtype, device=W.device),
        )
        if self.sphere == "row" and self._learns("row"):
            row = W.norm(dim=1)
        elif self.sphere == "col" and self._learns("col"):
            col = W.norm(dim=0)
        elif self.sphere == "flat" and self.gain_mode != "none":
            scale = W.norm() / math.sqrt(max(m, n))
            (row if self._learns("row") else col).fill_(float(scale))
        row, col = row.clamp_min(self.min_gain), col.clamp_min(self.min_gain)
        state = {
            "row_gain": _phi_inverse(row, self.phi),
            "col_gain": _phi_inverse(col, self.phi),
            "gain_step": 0,
        }
        for name in ("row_gain", "col_gain"):
            state[f"{name}_exp_avg"] = torch.zeros_like(state[name])
            state[f"{name}_exp_avg_sq"] = torch.zeros_like(state[name])
        self.md_state[id(p)] = state
        p.copy_(self._compose(project_to_sphere(W / (row[:, None] * col[None, :]), self.sphere), state))

    def _scales(self, state: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        sr, sc = _phi(state["row_gain"], self.phi), _phi(state["col_gain"], self.phi)
        return sr.clamp_min(self.min_gain), sc.clamp_min(self.min_gain)

    def _compose(self, W_hat: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        sr, sc = self._scales(state)
        return sr[:, None] * W_hat * sc[None, :]

    def gains(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ(r), φ(c)) of a decoupled weight."""
        return self._scales(self.md_state[id(p)])

    def direction(self, p: torch.Tensor) -> torch.Tensor:
        """Ŵ = W ⊘ (φ(r) φ(c)ᵀ) of a decoupled weight (float32/float64)."""
        sr, sc = self.gains(p)
        return p.detach().to(sr.dtype) / (sr[:, None] * sc[None, :])

    # ---- the step
    def _gain_adam(self, state: dict[str, Any], name: str, grad: torch.Tensor, lr: float) -> None:
        beta1, beta2 = self.gain_betas
        t = state["gain_step"]
        m, v = state[f"{name}_exp_avg"], state[f"{name}_exp_avg_sq"]
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v / (1 - beta2**t)).sqrt_().add_(self.gain_eps)
        state[name].addcdiv_(m, denom, value=-lr / (1 - beta1**t))
        if self.phi == "identity":
            state[name].clamp_(min=self.min_gain)

    def _lr_factor(self, p: torch.Tensor) -> float:
        for i, group in enumerate(self.param_groups):
            if any(p is q for q in group["params"]):
                lr0 = group.get("initial_lr", self._lr0[i] if i < len(self._lr0) else group["lr"])
                return group["lr"] / lr0 if lr0 else 1.0
        return 1.0

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        active, gain_grads, direction_grads = [], [], []
        for p in self.decoupled:
            if p.grad is None or not torch.isfinite(p.grad).all():
                continue  # the base optimizer's own None/NaN policy applies to it
            state = self.md_state[id(p)]
            sr, sc = self._scales(state)
            W_hat = p.detach().to(sr.dtype) / (sr[:, None] * sc[None, :])
            grad_r, grad_c, grad_hat = md_gradients(
                p.grad.to(sr.dtype), W_hat, state["row_gain"], state["col_gain"], self.phi
            )
            if self.tangent:
                grad_hat = _tangent(grad_hat, W_hat, self.sphere)
            p.copy_(W_hat)
            active.append(p)
            gain_grads.append((grad_r, grad_c))
            direction_grads.append(grad_hat.to(p.grad.dtype))
        originals = swap_grads(active, direction_grads)
        try:
            self.optimizer.step()
        finally:
            swap_grads(active, originals)
        for p, (grad_r, grad_c) in zip(active, gain_grads):
            state = self.md_state[id(p)]
            W_hat = project_to_sphere(p.detach().to(grad_r.dtype), self.sphere)
            state["gain_step"] += 1
            lr = self.gain_lr * self._lr_factor(p)
            if self._learns("row"):
                self._gain_adam(state, "row_gain", grad_r, lr)
            if self._learns("col"):
                self._gain_adam(state, "col_gain", grad_c, lr)
            p.copy_(self._compose(W_hat, state))
        return loss

    # ---- state dicts: gains by position in ``decoupled``
    def _wrapper_state(self) -> dict[str, Any]:
        return {"md_state": [dict(self.md_state[id(p)]) for p in self.decoupled], "lr0": list(self._lr0)}

    def _load_wrapper_state(self, state: dict[str, Any]) -> None:
        saved = state["md_state"]
        if len(saved) != len(self.decoupled):
            raise ValueError(
                f"state holds {len(saved)} decoupled weights, this wrapper has {len(self.decoupled)}"
            )
        for p, entry in zip(self.decoupled, saved):
            self.md_state[id(p)] = {
                k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()
            }
        self._lr0 = list(state.get("lr0", self._lr0))

r"""SWAN: SGD with Whitening And Normalization (Ma, Gong, Scetbon & Meeds, 2024, arXiv 2412.13148; ICML 2025).

A stateless pre-processing of the instantaneous gradient :math:`G \in \mathbb{R}^{m \times n}`::

    G̃ = (G − ḡ 1ᵀ) ⊘ (s 1ᵀ)          GradNorm: each row centred and divided by its standard deviation over the
                                      n columns (ḡ, s ∈ ℝ^m)
    ΔW = (G̃ G̃ᵀ)^{−1/2} G̃             GradWhitening = polar(G̃), computed by Newton–Schulz
    ΔW ← (‖G̃‖_F / ‖ΔW‖_F) ΔW          optional rescaling (``rescale``): ‖G̃‖_F = √(mn), so the update has RMS 1
    W ← (1 − ηλ) W − η ΔW

(G̃G̃ᵀ)^{−1/2}G̃ = UVᵀ for G̃ = UΣVᵀ: the whitening step is the same polar factor Muon approximates, applied
to a normalised gradient instead of momentum. SinkGD (:mod:`minidiff.optim.sinkgd`) is the cheaper relative that
replaces whitening by column normalisation. No optimizer state.

Defaults: the whitening uses the classical cubic Newton–Schulz iteration (the paper computes the inverse square
root with Newton–Schulz in float32) for ``ns_steps`` = 10 [uncertain: the paper's iteration count]; lr 1e-3 (our
choice for an RMS-1 update), eps 1e-8, ``rescale=True`` [uncertain], weight_decay 0. The paper's first-steps Adam
warm-up variants are not reproduced: this is the fully stateless "SWAN-0" form.

**Intended parameters**: 2-D linear weights (LLaMA attention and MLP); embeddings, head and norms → Adam. No
packaged peer.
"""

from __future__ import annotations

import torch

from minidiff.optim._common import check_lr, check_non_negative
from minidiff.optim._matrix import MatrixOptimizer, check_bool
from minidiff.optim.muon import check_ns_args, orthogonalize
from minidiff.optim.registry import register

__all__ = ["SWAN", "grad_norm", "grad_whitening"]


def grad_norm(G: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """GradNorm: centre every row and divide it by its (biased) standard deviation over the columns."""
    centred = G - G.mean(dim=-1, keepdim=True)
    return centred / (centred.square().mean(dim=-1, keepdim=True).sqrt() + eps)


def grad_whitening(
    G: torch.Tensor, steps: int = 10, coefficients: str | list = "cubic", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """GradWhitening: (G Gᵀ)^{-1/2} G = polar(G) by Newton–Schulz, returned in ``G``'s dtype."""
    return orthogonalize(G, steps, coefficients, dtype).to(G.dtype)


@register("swan")
class SWAN(MatrixOptimizer):
    """Stateless SWAN on 2-D hidden matrices; see the module docstring."""

    param_kind = "matrix"
    hparam_checks = {"lr": check_lr, "eps": check_non_negative, "weight_decay": check_non_negative}
    test_hparams = {"lr": 1e-2}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        rescale: bool = True,
        ns_steps: int = 10,
        ns_coefficients: str | list = "cubic",
        ns_dtype: torch.dtype = torch.float32,
    ) -> None:
        defaults = dict(
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            rescale=rescale,
            ns_steps=ns_steps,
            ns_coefficients=ns_coefficients,
            ns_dtype=ns_dtype,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_bool("rescale", group["rescale"])
        check_ns_args(group)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        G = grad_norm(grad, group["eps"])
        dW = grad_whitening(G, group["ns_steps"], group["ns_coefficients"], group["ns_dtype"])
        if group["rescale"]:
            dW = dW * (G.norm() / (dW.norm() + group["eps"]))
        self._decay(p, group)
        p.add_(dW.to(p.dtype), alpha=-group["lr"])

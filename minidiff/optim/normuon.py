r"""NorMuon: Muon with neuron-wise (row-wise) second-moment normalisation (Li et al., 2025, arXiv 2510.05491;
code github.com/zichongli5/NorMuon).

Paper, Algorithm 1, for :math:`W \in \mathbb{R}^{m \times n}` (rows = output neurons)::

    M ← β₁ M + (1 − β₁) G
    O = NS₅(M)                                        (Muon's orthogonalisation)
    v ← β₂ v + (1 − β₂) mean_cols(O ⊙ O)              (v ∈ ℝ^{m×1}: one statistic per neuron, no bias correction)
    Ô = O ⊘ (√v + ε)                                   (rows rescaled to equal RMS)
    η̂ = 0.2 η √(mn) / ‖Ô‖_F                            (update RMS 0.2, AdamW's)
    W ← W − ηλW − η̂ Ô

``update_scale="match_rms"`` (default) is this rule. ``update_scale="preserve_norm"`` is the official code: after
the row normalisation rescale Ô back to ‖O‖_F and multiply η by Muon's √max(1, m/n) (or Moonlight's
0.2√max(m, n) with ``scale="moonlight"``); the official code also feeds NS the Nesterov blend
(1 − β₁)G + β₁M, so use ``nesterov=True`` with it. ε is added to ‖Ô‖_F as well (as both references do).

Defaults: lr 0.02, β₁ = β₂ = 0.95 (``momentum``, ``beta2``), ε 1e-10, weight_decay 0, NS as Muon (5 quintic steps
in bf16), ``nesterov=False`` as in Algorithm 1.

**Intended parameters**: 2-D hidden matrices; embeddings, head, gains and biases → AdamW
(:func:`minidiff.optim.groups.hybrid`).

**Peers**: ``pytorch_optimizer.NorMuon(update_scale='match_rms' | 'preserve_norm')`` implements both variants with
the same operations: with ``nesterov=True`` it matches this class bit for bit in bf16 and to 1e-12 with a float64
NS (tested, both variants). dion's NorMuon uses heavy-ball momentum without Nesterov, Polar Express and a per-shard rescale.
Weight decay here applies whenever the parameter has a gradient (the official code does the same).
"""

from __future__ import annotations

import math

import torch

from minidiff.optim._common import check_lr, check_non_negative, state_dtype
from minidiff.optim._matrix import MatrixOptimizer, check_bool, check_choice, check_unit_interval
from minidiff.optim.muon import MUON_SCALES, check_ns_args, muon_scale, orthogonalize
from minidiff.optim.registry import register

__all__ = ["NorMuon"]

UPDATE_SCALES = ("match_rms", "preserve_norm")


@register("normuon")
class NorMuon(MatrixOptimizer):
    """NorMuon on 2-D hidden matrices; see the module docstring."""

    param_kind = "matrix"
    state_keys = ("momentum_buffer",)
    hparam_checks = {
        "lr": check_lr,
        "momentum": check_unit_interval,
        "beta2": check_unit_interval,
        "weight_decay": check_non_negative,
        "eps": check_non_negative,
    }
    test_hparams = {"lr": 0.02}

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.95,
        beta2: float = 0.95,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        update_scale: str = "match_rms",
        scale: str = "kj",
        eps: float = 1e-10,
        ns_steps: int = 5,
        ns_coefficients: str | list = "muon",
        ns_dtype: torch.dtype = torch.bfloat16,
        ns_eps: float = 1e-7,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            beta2=beta2,
            nesterov=nesterov,
            weight_decay=weight_decay,
            update_scale=update_scale,
            scale=scale,
            eps=eps,
            ns_steps=ns_steps,
            ns_coefficients=ns_coefficients,
            ns_dtype=ns_dtype,
            ns_eps=ns_eps,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_bool("nesterov", group["nesterov"])
        check_choice("update_scale", group["update_scale"], UPDATE_SCALES)
        check_choice("scale", group["scale"], MUON_SCALES)
        check_ns_args(group, eps_key="ns_eps")

    def _init_state(self, group: dict, p: torch.Tensor, state: dict) -> None:
        super()._init_state(group, p, state)
        state["second_momentum_buffer"] = torch.zeros(p.shape[0], 1, dtype=state_dtype(p), device=p.device)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        buf, v, eps = state["momentum_buffer"], state["second_momentum_buffer"], group["eps"]
        buf.lerp_(grad, 1 - group["momentum"])
        update = grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
        O = orthogonalize(
            update, group["ns_steps"], group["ns_coefficients"], group["ns_dtype"], group["ns_eps"]
        ).to(buf.dtype)
        original_norm = O.norm()
        v.lerp_(O.square().mean(dim=-1, keepdim=True), 1 - group["beta2"])  # [m, 1]
        O.div_(v.sqrt().add_(eps))
        if group["update_scale"] == "preserve_norm":
            O.mul_(original_norm / O.norm().add_(eps))
            lr = group["lr"] * muon_scale(p.shape, group["scale"])
        else:
            O.mul_(0.2 * math.sqrt(O.numel()) / O.norm().add_(eps))
            lr = group["lr"]
        self._decay(p, group)
        p.add_(O.to(p.dtype), alpha=-lr)

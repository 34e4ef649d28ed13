r"""Muon: MomentUm Orthogonalized by Newton–Schulz (Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein, 2024;
blog post and github.com/KellerJordan/Muon; scaled up in "Muon is Scalable for LLM Training", Liu et al., 2025,
arXiv 2502.16982).

For a hidden weight matrix :math:`W \in \mathbb{R}^{m \times n}` (rows = fan-out) with gradient :math:`G`::

    M ← β M + (1 − β) G                          (EMA momentum, β = momentum)
    N = (1 − β) G + β M     if nesterov else M    (KellerJordan/Muon's Nesterov blend)
    O = NS_K(N)                                   (K odd-polynomial steps ≈ polar(N) = U Vᵀ; see linalg)
    W ← (1 − ηλ) W − η · s(m, n) · O

with the shape factor ``scale``:

* ``"kj"`` (default): :math:`s = \sqrt{\max(1, m/n)}` [KellerJordan/Muon] -- "lr in units of spectral norm";
* ``"moonlight"``: :math:`s = 0.2\sqrt{\max(m, n)}`, which gives the update AdamW's RMS (≈ 0.2) so one learning
  rate serves Muon and its AdamW partner (Moonlight: lr 1e-3, weight_decay 0.1);
* ``"none"``: :math:`s = 1`.

Weight decay always uses the unscaled lr. Defaults follow KellerJordan/Muon: lr 0.02, momentum 0.95, Nesterov,
5 steps of the (3.4445, −4.7750, 2.0315) quintic in bfloat16, weight_decay 0. ``ns_dtype`` and ``ns_coefficients``
are arguments so tests can run the iteration in float64 and chapters can try Polar Express. The iteration goes
through :func:`orthogonalize`, i.e. ``minidiff.kernels``' switch: Triton on CUDA, the readable
:func:`minidiff.optim.linalg.newton_schulz` elsewhere.

**Intended parameters**: 2-D hidden matrices only (attention and MLP weights). Embeddings, the LM head, norm
gains and biases go to AdamW (KellerJordan: lr 3e-4, betas (0.9, 0.95), eps 1e-10) -- use
:func:`minidiff.optim.groups.hybrid`. Convolutions are not flattened here.

**Conventions where peers differ**: ``torch.optim.Muon`` has the same rule but defaults lr 1e-3, weight_decay 0.1
and clamps the NS input norm at eps instead of adding it (the same number in bf16); given the same arguments it
matches this class bit for bit on CPU in bf16, and to 1e-13 with a float64 NS (tested). Moonlight's heavy-ball momentum :math:`M ← μM + G` with Nesterov
:math:`G + μM` is this rule up to a constant factor :math:`1/(1-β)`, which the Frobenius normalisation inside NS
removes. heavyball uses β 0.9, Nesterov ``G + M`` and the modded-nanogpt schedule; dion uses :math:`\sqrt{m/n}`
without the max. Unlike KellerJordan's reference we never overwrite ``p.grad`` with the Nesterov blend.
"""

from __future__ import annotations

import math

import torch

from minidiff.optim._common import check_lr, check_non_negative, check_positive_int
from minidiff.optim._matrix import (
    MatrixOptimizer,
    check_bool,
    check_choice,
    check_float_dtype,
    check_unit_interval,
)
from minidiff.optim.linalg import COEFFICIENTS, coefficient_schedule
from minidiff.optim.registry import register

__all__ = ["Muon", "muon_scale", "MUON_SCALES", "check_ns_args", "orthogonalize"]

MUON_SCALES = ("kj", "moonlight", "none")


def muon_scale(shape: torch.Size | tuple[int, int], scale: str) -> float:
    """The shape factor s(m, n) multiplying the orthogonalised update."""
    m, n = shape[0], shape[1]
    if scale == "kj":
        return math.sqrt(max(1.0, m / n))
    if scale == "moonlight":
        return 0.2 * math.sqrt(max(m, n))
    if scale == "none":
        return 1.0
    raise ValueError(f"scale must be one of {MUON_SCALES}, got {scale!r}")


def orthogonalize(
    X: torch.Tensor, steps: int, coefficients: str | list, dtype: torch.dtype, eps: float = 1e-7
) -> torch.Tensor:
    """:func:`minidiff.optim.linalg.newton_schulz` through ``minidiff.kernels``' switch: the Triton kernel for CUDA
    tensors when triton is importable, the torch reference otherwise (always for float64); ``MINIDIFF_KERNELS=torch``
    forces the reference. Returns a tensor of ``dtype``."""
    from minidiff.kernels.orthogonalize import (
        newton_schulz,
    )  # imported on first use: keeps the registry light

    return newton_schulz(X, steps, coefficients, dtype=dtype, eps=eps)


def check_ns_args(group: dict, eps_key: str = "eps") -> None:
    """Validate the Newton–Schulz arguments shared by Muon-like optimizers."""
    check_positive_int("ns_steps", group["ns_steps"])
    coefficients = group["ns_coefficients"]
    if isinstance(coefficients, str):
        check_choice("ns_coefficients", coefficients, sorted(COEFFICIENTS))
    else:
        try:
            coefficient_schedule(coefficients, 1)
        except ValueError as err:
            raise ValueError(f"ns_coefficients: {err}") from None
    check_float_dtype("ns_dtype", group["ns_dtype"])
    check_non_negative(eps_key, group[eps_key])


@register("muon")
class Muon(MatrixOptimizer):
    """Muon on 2-D hidden matrices; see the module docstring for the rule, defaults and conventions."""

    param_kind = "matrix"
    state_keys = ("momentum_buffer",)
    hparam_checks = {"lr": check_lr, "momentum": check_unit_interval, "weight_decay": check_non_negative}
    test_hparams = {"lr": 0.02}

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        scale: str = "kj",
        ns_steps: int = 5,
        ns_coefficients: str | list = "muon",
        ns_dtype: torch.dtype = torch.bfloat16,
        eps: float = 1e-7,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            scale=scale,
            ns_steps=ns_steps,
            ns_coefficients=ns_coefficients,
            ns_dtype=ns_dtype,
            eps=eps,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_bool("nesterov", group["nesterov"])
        check_choice("scale", group["scale"], MUON_SCALES)
        check_ns_args(group)

    def _update_param(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, step: int) -> None:
        buf, beta = state["momentum_buffer"], group["momentum"]
        buf.lerp_(grad, 1 - beta)
        update = grad.lerp(buf, beta) if group["nesterov"] else buf
        O = orthogonalize(
            update, group["ns_steps"], group["ns_coefficients"], group["ns_dtype"], group["eps"]
        )
        self._decay(p, group)
        p.add_(O.to(p.dtype), alpha=-group["lr"] * muon_scale(p.shape, group["scale"]))

r"""Fused element-wise optimizer updates for the Adam family, over many tensors at once.

Each function updates lists of tensors in place (parameters and their optimizer states) and dispatches to the
torch reference below or to one Triton launch per dtype combination (:mod:`minidiff.kernels._triton_elementwise`,
a multi-tensor kernel reading a table of pointers, so a model with hundreds of tensors costs one launch, like
``torch.optim.AdamW(fused=True)``). All arithmetic is float32; parameters and gradients may be float32, bfloat16
or float16, states float32 (or the parameter's dtype). Step-dependent scalars (bias corrections, schedules) are
computed by the caller and passed in, so the kernels know nothing about step counters.

**AdamW** (Loshchilov & Hutter, arXiv 1711.05101; torch's operation order)::

    θ ← θ (1 − ηλ);  m ← m + (1 − β1)(g − m);  v ← β2 v + (1 − β2) g²
    θ ← θ − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)

**Lion** (Chen et al., arXiv 2302.06675)::

    θ ← θ (1 − ηλ);  θ ← θ − η sign(β1 m + (1 − β1) g);  m ← β2 m + (1 − β2) g

**AdEMAMix** (Pagliardini et al., arXiv 2409.03137), α and β3 already scheduled by the caller::

    θ ← θ (1 − ηλ);  m1 ← β1-EMA of g (or m1 = g when β1 = 0);  m2 ← β3-EMA of g;  v ← β2-EMA of g²
    θ ← θ − η (m1 / (1 − β1^t) + α m2) / (√v / √(1 − β2^t) + ε)

Bad input: lists of different lengths, shapes, devices, or non-floating tensors raise ``ValueError``. The
Triton path takes float32/bfloat16/float16, contiguous, 16-byte aligned tensors; anything else (float64, a
strided view) falls back to the torch reference (with a warning when Triton was forced).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from minidiff.kernels._dispatch import choose, common_device

__all__ = ["adam_step_", "lion_step_", "ademamix_step_", "lerp_"]

Tensors = Sequence[torch.Tensor]
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def lerp_(state: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """state ← state + w (target − state), torch's ``lerp_`` (its two-branch formula is what the kernels copy)."""
    return state.lerp_(target, weight)


def _check_lists(kernel: str, lists: dict[str, Tensors]) -> torch.device:
    lengths = {name: len(ts) for name, ts in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{kernel}: the tensor lists must have equal lengths, got {lengths}")
    params = next(iter(lists.values()))
    for name, ts in lists.items():
        for i, (t, p) in enumerate(zip(ts, params)):
            if not t.is_floating_point():
                raise ValueError(f"{kernel}: {name}[{i}] must be a floating tensor, got dtype {t.dtype}")
            if t.shape != p.shape:
                raise ValueError(
                    f"{kernel}: {name}[{i}] has shape {tuple(t.shape)}, expected {tuple(p.shape)}"
                )
    every = [t for ts in lists.values() for t in ts]
    return common_device(every, kernel) if every else torch.device("cpu")


def _triton_problem(lists: dict[str, Tensors]) -> str | None:
    states = [ts for name, ts in lists.items() if name not in ("params", "grads")]
    for i, per_tensor in enumerate(zip(*states)):
        if len({t.dtype for t in per_tensor}) > 1:
            return f"needs the states of tensor {i} to share one dtype"
    for name, ts in lists.items():
        for i, t in enumerate(ts):
            if t.dtype not in TRITON_DTYPES:
                return f"supports float32/bfloat16/float16 tensors, got {name}[{i}] of dtype {t.dtype}"
            if not t.is_contiguous() or t.data_ptr() % 16:
                return f"needs contiguous 16-byte aligned tensors, {name}[{i}] is not"
    return None


def _dispatch(kernel: str, lists: dict[str, Tensors], backend: str | None) -> str:
    device = _check_lists(kernel, lists)
    return choose(kernel, device, backend, _triton_problem(lists))


def adam_step_(
    params: Tensors,
    grads: Tensors,
    exp_avgs: Tensors,
    exp_avg_sqs: Tensors,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    backend: str | None = None,
) -> None:
    """One AdamW step (torch's convention) on every tensor of the lists, in place; ``step`` counts from 1."""
    lists = {"params": params, "grads": grads, "exp_avgs": exp_avgs, "exp_avg_sqs": exp_avg_sqs}
    bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
    if _dispatch("adam_step_", lists, backend) == "triton":
        from minidiff.kernels import _triton_elementwise

        _triton_elementwise.adam(
            params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, bias1, bias2
        )
        return
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        work = p.float() if p.dtype != m.dtype else p  # low-precision params: update an fp32 copy
        g = g.to(m.dtype)
        work.mul_(1.0 - lr * weight_decay)
        lerp_(m, g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
        work.addcdiv_(m, denom, value=-lr / bias1)
        if work is not p:
            p.copy_(work)


def lion_step_(
    params: Tensors,
    grads: Tensors,
    exp_avgs: Tensors,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    backend: str | None = None,
) -> None:
    """One Lion step on every tensor of the lists, in place (sign(0) = 0: such coordinates do not move)."""
    lists = {"params": params, "grads": grads, "exp_avgs": exp_avgs}
    if _dispatch("lion_step_", lists, backend) == "triton":
        from minidiff.kernels import _triton_elementwise

        _triton_elementwise.lion(params, grads, exp_avgs, lr, beta1, beta2, weight_decay)
        return
    for p, g, m in zip(params, grads, exp_avgs):
        work = p.float() if p.dtype != m.dtype else p
        g = g.to(m.dtype)
        work.mul_(1.0 - lr * weight_decay)
        update = m.lerp(g, 1.0 - beta1).sign_()  # sign(β1 m + (1 − β1) g)
        work.add_(update, alpha=-lr)
        lerp_(m, g, 1.0 - beta2)
        if work is not p:
            p.copy_(work)


def ademamix_step_(
    params: Tensors,
    grads: Tensors,
    exp_avgs: Tensors | None,
    exp_avg_slows: Tensors,
    exp_avg_sqs: Tensors,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    backend: str | None = None,
) -> None:
    """One AdEMAMix step with the *scheduled* ``alpha`` = α(t) and ``beta3`` = β3(t); ``exp_avgs`` is ``None``
    when β1 = 0 (the fast EMA is then the gradient itself)."""
    if (exp_avgs is None) != (beta1 == 0):
        raise ValueError("ademamix_step_: pass exp_avgs=None exactly when beta1 == 0")
    lists = {"params": params, "grads": grads, "exp_avg_slows": exp_avg_slows, "exp_avg_sqs": exp_avg_sqs}
    if exp_avgs is not None:
        lists["exp_avgs"] = exp_avgs
    bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
    if _dispatch("ademamix_step_", lists, backend) == "triton":
        from minidiff.kernels import _triton_elementwise

        _triton_elementwise.ademamix(
            params, grads, exp_avgs, exp_avg_slows, exp_avg_sqs, lr, beta1, beta2, beta3, alpha, eps, weight_decay,
            bias1, bias2,
        )  # fmt: skip
        return
    fasts = exp_avgs if exp_avgs is not None else [None] * len(params)
    for p, g, m1, m2, v in zip(params, grads, fasts, exp_avg_slows, exp_avg_sqs):
        work = p.float() if p.dtype != v.dtype else p
        g = g.to(v.dtype)
        work.mul_(1.0 - lr * weight_decay)
        if m1 is not None:
            lerp_(m1, g, 1.0 - beta1)
        lerp_(m2, g, 1.0 - beta3)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
        numer = (m1 if m1 is not None else g) / bias1
        numer.add_(m2, alpha=alpha)
        work.addcdiv_(numer, denom, value=-lr)
        if work is not p:
            p.copy_(work)

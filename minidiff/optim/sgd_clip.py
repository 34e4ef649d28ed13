r"""SGD (with momentum) on coordinate-wise clipped gradients (Pan & Li; 2023, arXiv 2306.00204, "Toward
understanding why Adam converges faster than SGD for transformers").

The paper measures the *directional sharpness* uᵀHu/‖u‖² of an update u and finds SGD's much worse than
Adam's on transformers, because a small fraction of coordinates with large gradients also sit in sharp
directions. Clipping just those coordinates lowers the sharpness of SGD's step and speeds it up.

Update, with d the number of coordinates in the param group, c = ``clip_fraction`` and k = ⌊c·d⌋::

    τ_t   = the (k+1)-th largest |g_{t,i}| over the group
    ĝ_t   = clip(g_t, −τ_t, τ_t)                  the top-k coordinates are cut to the next magnitude
    b_t   = μ b_{t-1} + (1 − τd) ĝ_t   (b_1 = ĝ_1)          torch.optim.SGD's momentum, dampening τd
    d_t   = b_t   (nesterov: ĝ_t + μ b_t)
    θ_t   = θ_{t-1}(1 − ηλ) − η d_t

c = 0 is exactly torch.optim.SGD (with decoupled decay); c = 1 zeroes every gradient. The clip is applied to
the raw gradient, before momentum. :class:`minidiff.optim.wrappers.clip.CoordinateClip` puts the same clip in
front of any optimizer (Adam, Lion, ...).

Defaults: ``lr=1e-3, momentum=0, dampening=0, nesterov=False, weight_decay=0`` (torch.optim.SGD's) and
``clip_fraction=0.1`` ([uncertain]: the paper sweeps c; 0.1 is our choice, and its public code is not
identified). Meant for every parameter.

Conventions: decoupled decay θ(1 − ηλ) (torch's SGD adds λθ to the gradient instead; the two agree without
momentum); the threshold is shared by the group's tensors ("over all coordinates", as the notes' reference
``clip_top_coordinates``), computed with one top-k selection over the concatenated magnitudes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff.optim._common import (
    MinidiffOptimizer,
    check_in_range,
    check_lr,
    check_non_negative,
    coordinate_clip,
    decoupled_weight_decay_,
    state_dtype,
)
from minidiff.optim.registry import register

__all__ = ["SGDClip"]

_unit = lambda name, value: check_in_range(name, value, 0.0, 1.0, high_open=False)


@register("sgd_clip")
class SGDClip(MinidiffOptimizer):
    """Momentum SGD on gradients whose top ``clip_fraction`` coordinates are clipped (arXiv 2306.00204)."""

    hparam_checks = {
        "lr": check_lr,
        "momentum": lambda name, value: check_in_range(name, value, 0.0, 1.0),
        "dampening": _unit,
        "weight_decay": check_non_negative,
        "clip_fraction": _unit,
    }
    test_hparams = {"lr": 5e-2, "momentum": 0.9}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        clip_fraction: float = 0.1,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening = 0, got {momentum=}, {dampening=}"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            clip_fraction=clip_fraction,
        )
        super().__init__(params, defaults)

    def _init_state(self, group, p, state):
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(
                p, dtype=state_dtype(p), memory_format=torch.preserve_format
            )

    def _update(self, group, params, grads, states, step):
        lr, momentum = group["lr"], group["momentum"]
        grads, tau = coordinate_clip(grads, group["clip_fraction"])  # ĝ = clip(g, ±τ)
        for s in states:
            s["clip_threshold"] = tau
        decoupled_weight_decay_(params, lr, group["weight_decay"])
        if momentum > 0:
            bufs = [s["momentum_buffer"] for s in states]
            if step == 1:
                torch._foreach_copy_(bufs, grads)  # b_1 = ĝ_1, as torch's SGD
            else:
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1.0 - group["dampening"])  # b ← μ b + (1 − τd) ĝ
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_add_(params, grads, alpha=-lr)  # θ ← θ − η d

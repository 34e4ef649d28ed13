r"""Lion with a block-wise dynamically quantised 8-bit momentum (Lion: Chen et al., 2023, arXiv 2302.06675;
8-bit states: Dettmers et al., 2022, arXiv 2110.02861).

Lion keeps one state, the momentum m, so its 8-bit version stores one uint8 tensor (``state1``, signed dynamic
map), one float32 absmax per block (``absmax1``) and the map (``qmap1``): n + 4⌈n/B⌉ bytes instead of 4n. Per step::

    m = N_b · Q[q]                                          dequantise
    θ ← θ (1 − ηλ);  θ ← θ − η sign(β1 m + (1 − β1) g);  m ← β2 m + (1 − β2) g
    (q, N) = quantise(m)                                    requantise

Lion is a natural fit for 8 bits: its update reads only the *sign* of an interpolation of m and g, so
quantisation noise in m flips an update only where β1 m + (1 − β1) g is within the noise of zero.

Defaults: Lion's (lr 1e-4, betas (0.9, 0.99), weight_decay 0), ``block_size`` 2048 (the paper's; bitsandbytes'
``Lion8bit`` uses 256), tensors under ``min_8bit_size`` = 4096 elements and parameters marked
``optim_bits = 32`` keep a 32-bit momentum (see :mod:`minidiff.optim.adamw8bit`). The fused step is
:func:`minidiff.kernels.lion8bit_step_`; 32-bit tensors take :func:`minidiff.kernels.lion_step_`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from minidiff import kernels
from minidiff.optim.adamw8bit import MIN_8BIT_SIZE, EightBitOptimizer
from minidiff.optim.quantize import DEFAULT_BLOCK_SIZE
from minidiff.optim.registry import register

__all__ = ["Lion8bit"]


@register("lion8bit")
class Lion8bit(EightBitOptimizer):
    """Lion with a block-wise 8-bit momentum; see the module docstring."""

    state_keys = ("exp_avg",)
    quantized_states = (("state1", True),)
    test_hparams = {"lr": 3e-3, "min_8bit_size": 0, "block_size": 16}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_8bit_size: int = MIN_8BIT_SIZE,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, weight_decay=weight_decay, block_size=block_size, min_8bit_size=min_8bit_size
        )
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        hp = dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"])
        eight, full = self._split(group, params, grads, states)
        for p, g, s in eight:
            kernels.lion8bit_step_(
                p, g, s["state1"], s["absmax1"], s["qmap1"], block_size=group["block_size"], **hp
            )
        if full:
            p32, g32, s32 = zip(*full)
            kernels.lion_step_(p32, g32, [s["exp_avg"] for s in s32], **hp)

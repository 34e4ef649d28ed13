r"""AdamW with block-wise dynamically quantised 8-bit states (Dettmers, Lewis, Shleifer & Zettlemoyer, 2022,
"8-bit Optimizers via Block-wise Quantization", arXiv 2110.02861).

The update is AdamW's (torch's convention, see :mod:`minidiff.optim.adamw`); only the storage of m and v changes.
Each step, per block of B elements (:mod:`minidiff.optim.quantize`)::

    m = N¹_b · Q_signed[q¹],   v = N²_b · Q_unsigned[q²]          dequantise
    θ ← θ (1 − ηλ);  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²
    θ ← θ − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)          the 32-bit update, in float32
    (q¹, N¹) = quantise(m),   (q², N²) = quantise(v)                requantise, fresh absmax per block

State per tensor of n elements: two uint8 tensors shaped like the parameter (``state1``, ``state2``), two float32
absmax vectors of ⌈n/B⌉ (``absmax1``, ``absmax2``) and the two 256-value maps (``qmap1``, ``qmap2``, one tensor
shared by every parameter on a device) -- 2n + 8⌈n/B⌉ bytes instead of AdamW's 8n (≈ 0.25×). The fused
dequantise-update-requantise step is :func:`minidiff.kernels.adam8bit_step_` (Triton on GPU, its torch reference
elsewhere); small tensors take the 32-bit multi-tensor :func:`minidiff.kernels.adam_step_`.

**What stays 32-bit** (as in bitsandbytes): tensors with fewer than ``min_8bit_size`` = 4096 elements (biases,
norm gains: their state is cheap and quantisation error hurts them most), and parameters marked
``p.optim_bits = 32`` -- :class:`minidiff.nn.stable_embedding.StableEmbedding` marks its weight, following the
paper's recommendation to keep the embedding's state in 32 bits (with its Xavier init and LayerNorm).

Defaults: torch's AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2), ``block_size`` 2048 as in the
paper. **Differences from bitsandbytes** ``AdamW8bit``: bnb uses B = 256; its CPU quantiser rounds to a
neighbouring rather than the nearest map value about 30 % of the time (we are exact nearest), so trajectories
agree to quantisation noise, not bit for bit; bnb keeps one copy of the map per parameter.
``state_dict()`` holds the quantised states (uint8 + absmax + map) and round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from minidiff import kernels
from minidiff.optim._common import (
    MinidiffOptimizer,
    check_betas,
    check_eps,
    check_lr,
    check_non_negative,
    check_non_negative_int,
    check_positive_int,
)
from minidiff.optim.quantize import DEFAULT_BLOCK_SIZE, create_dynamic_map, num_blocks
from minidiff.optim.registry import register

__all__ = ["AdamW8bit", "EightBitOptimizer", "MIN_8BIT_SIZE", "state_bytes"]

MIN_8BIT_SIZE = 4096  # bitsandbytes' default


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors, each storage counted once (shared maps count once)."""
    seen, total = set(), 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                if storage.data_ptr() not in seen:
                    seen.add(storage.data_ptr())
                    total += storage.nbytes()
    return total


class EightBitOptimizer(MinidiffOptimizer):
    """Shared plumbing of the 8-bit optimizers: which tensors are quantised, the maps, exact state-dict round trips.

    A subclass lists its quantised states in ``quantized_states`` as ``(name, signed)`` pairs, e.g.
    ``(("state1", True), ("state2", False))`` and its 32-bit fallback states in ``state_keys``.
    """

    quantized_states: tuple[tuple[str, bool], ...] = ()
    hparam_checks = {
        "lr": check_lr,
        "betas": check_betas,
        "weight_decay": check_non_negative,
        "block_size": check_positive_int,
        "min_8bit_size": check_non_negative_int,
    }

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self._maps: dict[tuple[bool, torch.device], torch.Tensor] = {}
        super().__init__(params, defaults)

    def _map(self, signed: bool, device: torch.device) -> torch.Tensor:
        """The dynamic map, one tensor per (signedness, device) shared by all parameters."""
        key = (signed, device)
        if key not in self._maps:
            self._maps[key] = create_dynamic_map(signed=signed).to(device)
        return self._maps[key]

    @staticmethod
    def uses_8bit(p: torch.Tensor, group: dict[str, Any]) -> bool:
        """Quantise this parameter's state? Large enough, and not marked ``optim_bits = 32``."""
        return p.numel() >= group["min_8bit_size"] and getattr(p, "optim_bits", 8) != 32

    def _init_state(self, group, p, state) -> None:
        if not self.uses_8bit(p, group):
            super()._init_state(group, p, state)  # 32-bit states named in state_keys
            return
        blocks = num_blocks(p.numel(), group["block_size"])
        for i, (name, signed) in enumerate(self.quantized_states, start=1):
            # absmax 0 dequantises every index to 0: the zero state.
            state[name] = torch.zeros(p.shape, dtype=torch.uint8, device=p.device)
            state[f"absmax{i}"] = torch.zeros(blocks, dtype=torch.float32, device=p.device)
            state[f"qmap{i}"] = self._map(signed, p.device)

    def _split(self, group, params, grads, states):
        """(8-bit, 32-bit) lists of (param, grad, state) triples."""
        eight, full = [], []
        for p, g, s in zip(params, grads, states):
            (eight if "state1" in s else full).append((p, g, s))
        return eight, full

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch casts every state tensor of a floating parameter to its dtype; keep uint8 states uint8."""
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        current = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, current):
            for key, value in state_dict["state"].get(saved_id, {}).items():
                if isinstance(value, torch.Tensor) and not value.is_floating_point():
                    self.state[p][key] = value.to(device=p.device)


@register("adamw8bit")
class AdamW8bit(EightBitOptimizer):
    """AdamW with block-wise 8-bit m and v (arXiv 2110.02861); see the module docstring."""

    state_keys = ("exp_avg", "exp_avg_sq")
    quantized_states = (("state1", True), ("state2", False))
    hparam_checks = {**EightBitOptimizer.hparam_checks, "eps": check_eps}
    # Tiny test tensors would all stay 32-bit under the defaults: quantise everything, in small blocks.
    test_hparams = {"min_8bit_size": 0, "block_size": 16}

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_8bit_size: int = MIN_8BIT_SIZE,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            block_size=block_size,
            min_8bit_size=min_8bit_size,
        )
        super().__init__(params, defaults)

    def _update(self, group, params, grads, states, step):
        beta1, beta2 = group["betas"]
        hp = dict(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            step=step,
        )
        eight, full = self._split(group, params, grads, states)
        for p, g, s in eight:
            kernels.adam8bit_step_(
                p, g, s["state1"], s["absmax1"], s["qmap1"], s["state2"], s["absmax2"], s["qmap2"],
                block_size=group["block_size"], **hp,
            )  # fmt: skip
        if full:
            p32, g32, s32 = zip(*full)
            kernels.adam_step_(p32, g32, [s["exp_avg"] for s in s32], [s["exp_avg_sq"] for s in s32], **hp)

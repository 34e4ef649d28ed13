"""Semi-autoregressive decoding over fixed-size blocks, with any sampler inside a block.

LLaDA's ``generate`` (Nie et al., 2025, arXiv 2502.09992): the generated region is cut into blocks of
``block_length`` positions, decoded left to right; the ``steps`` are split equally over the blocks (so ``steps``
must be a multiple of their number), and within the current block the inner sampler runs as usual while positions
right of it are excluded -- they stay MASK (or noise), the model still sees them (full attention, a fixed-length
canvas), but they cannot be committed. Block diffusion (BD3-LM, Arriola et al., 2025, arXiv 2503.09573) decodes
blocks the same way with a block-causal model and a KV cache; its first-hitting inner sampler is
``sampler="first_hitting"`` here (without the cache: every step runs the model on the whole canvas).

Every sampler of this package accepts ``block_length`` directly; this function only names the combination.
The block of each step is recorded in ``trace.block_bounds``.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.sampling.trace import Trace

__all__ = ["sample_semi_ar"]


def sample_semi_ar(
    model, process, prompt=None, *, block_length: int, sampler: str = "confidence", **kwargs
) -> tuple[torch.Tensor, Trace]:
    """Decode block by block with ``sampler`` (a name from ``SAMPLERS``: ``"confidence"`` is LLaDA's default,
    ``"first_hitting"`` BD3-LM's); keyword arguments go to that sampler."""
    from minidiff.diffusion.sampling import SAMPLERS

    if sampler not in SAMPLERS or sampler == "semi_ar":
        names = [name for name in SAMPLERS if name != "semi_ar"]
        raise ValueError(f"sampler must be one of {names}, got {sampler!r}")
    if not isinstance(block_length, int) or isinstance(block_length, bool) or block_length < 1:
        raise ValueError(f"block_length must be a positive int, got {block_length!r}")
    return SAMPLERS[sampler](model, process, prompt, block_length=block_length, **kwargs)

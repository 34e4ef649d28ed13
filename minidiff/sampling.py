"""Categorical sampling shared by every sampler: temperature, top-k, nucleus (top-p) and Gumbel-max.

Gumbel noise is drawn in float64: LLaDA's reference code (Nie et al., 2025, arXiv 2502.09992) notes that
low-precision Gumbel-max inflates perplexity, because float32 ``-log(-log(u))`` saturates for u near 1 and
the rare tokens it should pick become impossible.
"""

from __future__ import annotations

import torch

__all__ = ["filter_logits", "gumbel_noise", "sample_categorical"]


def filter_logits(
    logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Set logits outside the top-k / the nucleus of mass ``top_p`` to ``-inf`` (the argmax always survives)."""
    if top_k is not None:
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass strictly before it already reaches top_p
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def gumbel_noise(
    shape: torch.Size | tuple, *, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log u)`` computed in float64."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=device)
    return -torch.log(-torch.log(u.clamp_min(1e-300)))


def sample_categorical(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one index per row of ``logits [..., V]``; ``temperature=0`` is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    logits = filter_logits(logits, top_k=top_k, top_p=top_p)
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.double() / temperature + gumbel_noise(
        logits.shape, generator=generator, device=logits.device
    )
    return scores.argmax(-1)

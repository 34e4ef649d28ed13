"""Autoregressive language modelling: the next-token objective and KV-cached decoding.

The baseline every diffusion chapter compares against, and the limit of block diffusion at block size 1.
The model is any :class:`~minidiff.nn.Transformer` with a causal mask. The objective is the negative
log-likelihood ``-(1/N) sum_i log p_theta(x_i | x_<i)`` in nats per token, over answer positions (and the EOS)
of a :class:`~minidiff.data.Batch`, or over every position of a plain ``[B, L]`` tensor of text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minidiff.data.tasks.base import Batch
from minidiff.nn.cache import KVCache
from minidiff.sampling import sample_categorical

__all__ = ["next_token_loss", "generate"]


def next_token_loss(model, batch: Batch | torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean next-token cross-entropy (nats/token) and ``{"tokens": number of predicted tokens}``.

    For a :class:`Batch` only answer positions (including EOS) are targets, so the prompt is context, as in
    supervised fine-tuning; for a tensor every position after the first is a target.
    """
    if isinstance(batch, Batch):
        tokens, targets_on = batch.tokens, batch.answer_mask[:, 1:]
    elif isinstance(batch, torch.Tensor):
        tokens, targets_on = batch, torch.ones_like(batch[:, 1:], dtype=torch.bool)
    else:
        raise TypeError(
            f"batch must be a minidiff.data.Batch or a [B, L] LongTensor, got {type(batch).__name__}"
        )
    logits = model(tokens[:, :-1])  # [B, L-1, V]
    nll = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
    weights = targets_on.flatten().float()
    n = weights.sum().clamp_min(1.0)
    return (nll * weights).sum() / n, {"tokens": float(n)}


@torch.no_grad()
def generate(
    model,
    prompts: torch.Tensor | Batch,
    max_new_tokens: int,
    *,
    prompt_lengths: torch.Tensor | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample continuations token by token with a KV cache.

    ``prompts [B, P]`` may hold prompts of different lengths, right-padded, with their lengths in
    ``prompt_lengths``: every row is teacher-forced through its own prompt and sampled after it. Once a row
    emits ``eos_id`` the rest of it is ``pad_id``; decoding stops early when every row has finished.
    ``prompts`` may also be a :class:`~minidiff.data.Batch`, whose ``[BOS] prompt`` parts are used (its answers
    are ignored). Returns ``[B, max(prompt_lengths) + max_new_tokens]`` (or shorter after an early stop).
    """
    if isinstance(prompts, Batch):
        if prompt_lengths is not None:
            raise ValueError("prompt_lengths must be None when prompts is a Batch (it carries its own)")
        prompt_lengths = prompts.prompt_lengths
        prompts = prompts.tokens[:, : int(prompt_lengths.max())]
    if prompts.dim() != 2:
        raise ValueError(f"prompts must have shape [B, P], got {tuple(prompts.shape)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    b, p = prompts.shape
    if prompt_lengths is None:
        prompt_lengths = torch.full((b,), p, dtype=torch.long, device=prompts.device)
    prompt_lengths = prompt_lengths.to(prompts.device)
    if int(prompt_lengths.min()) < 1 or int(prompt_lengths.max()) > p:
        raise ValueError(f"prompt_lengths must lie in [1, {p}], got {prompt_lengths.tolist()}")
    total = int(prompt_lengths.max()) + max_new_tokens
    out = torch.full((b, total), pad_id, dtype=torch.long, device=prompts.device)
    out[:, :p] = prompts
    start = int(prompt_lengths.min())
    cache = KVCache(len(model.blocks))
    logits = model(out[:, :start], kv_cache=cache)[:, -1]
    finished = torch.zeros(b, dtype=torch.bool, device=prompts.device)
    for pos in range(start, total):
        sampled = sample_categorical(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        in_prompt = pos < prompt_lengths
        token = torch.where(in_prompt, out[:, pos], sampled)
        token = torch.where(finished & ~in_prompt, torch.full_like(token, pad_id), token)
        out[:, pos] = token
        if eos_id is not None:
            finished |= (token == eos_id) & ~in_prompt
            if bool(finished.all()):
                return out[:, : pos + 1]
        if pos + 1 < total:
            logits = model(token[:, None], kv_cache=cache)[:, -1]
    return out

"""Boolean attention masks, ``True`` where a query may attend to a key (the convention of
``torch.nn.functional.scaled_dot_product_attention``).

Every mask is a ``[L_q, L_k]`` bool tensor built from block ids, so any block size works, including sizes that
do not divide the length (the last block is then shorter). The block-diffusion training mask follows BD3-LM
(Arriola et al., 2025, arXiv 2503.09573): the input is the concatenation ``[x_t | x_0]`` of a noisy and a clean
copy of the sequence, and

* a noisy block attends to itself (bidirectionally) and to the clean blocks strictly before it,
* a clean block attends to the clean blocks up to and including itself (block-causal).

NBDiff (Tian et al., 2025) replaces the clean half's block-causal mask by token-level causal attention, so the
clean half is exactly an AR model ("context-causal"); ``block_diffusion(..., clean="token")`` builds that variant.
"""

from __future__ import annotations

import torch

__all__ = [
    "causal",
    "full",
    "block_ids",
    "block_causal",
    "context_causal",
    "block_diffusion",
    "key_padding",
    "combine",
]


def _check_len(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _check_block(block_size: int) -> None:
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")


def causal(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Lower-triangular mask: position i sees positions j <= i."""
    _check_len("length", length)
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def full(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bidirectional mask: every position sees every position."""
    _check_len("length", length)
    return torch.ones(length, length, dtype=torch.bool, device=device)


def block_ids(length: int, block_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Block index of every position, ``[length]``; the last block may be shorter."""
    _check_len("length", length)
    _check_block(block_size)
    return torch.arange(length, device=device) // block_size


def block_causal(length: int, block_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bidirectional inside a block, causal across blocks: i sees j iff block(j) <= block(i)."""
    b = block_ids(length, block_size, device)
    return b[None, :] <= b[:, None]


def context_causal(prefix_len: int, block_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Token-causal clean prefix followed by one bidirectional active block (NBDiff's inference mask).

    Shape ``[prefix_len + block_len]^2``: prefix position i sees j <= i; a block position sees the whole prefix
    and the whole block.
    """
    _check_len("prefix_len", prefix_len)
    _check_len("block_len", block_len)
    n = prefix_len + block_len
    mask = causal(n, device)
    mask[prefix_len:, :] = True
    return mask


def block_diffusion(
    length: int, block_size: int, *, clean: str = "block", device: torch.device | str | None = None
) -> torch.Tensor:
    """The ``[2L, 2L]`` training mask over ``[x_t | x_0]`` (BD3-LM), see the module docstring.

    ``clean="block"`` makes the clean half block-causal (BD3-LM, SDAR); ``clean="token"`` makes it token-causal
    (NBDiff's context-causal variant, whose clean-half outputs are then next-token predictions).
    """
    if clean not in ("block", "token"):
        raise ValueError(f"clean must be 'block' or 'token', got {clean!r}")
    b = block_ids(length, block_size, device)
    same_block = b[:, None] == b[None, :]
    earlier_block = b[None, :] < b[:, None]
    noisy_to_noisy = same_block
    noisy_to_clean = earlier_block
    clean_to_noisy = torch.zeros(length, length, dtype=torch.bool, device=device)
    clean_to_clean = block_causal(length, block_size, device) if clean == "block" else causal(length, device)
    top = torch.cat([noisy_to_noisy, noisy_to_clean], dim=1)
    bottom = torch.cat([clean_to_noisy, clean_to_clean], dim=1)
    return torch.cat([top, bottom], dim=0)


def key_padding(valid: torch.Tensor) -> torch.Tensor:
    """``[B, L_k]`` bool (True = a real token) -> ``[B, 1, 1, L_k]`` mask that hides padded keys."""
    if valid.dtype != torch.bool or valid.dim() != 2:
        raise ValueError(
            f"valid must be a [B, L] bool tensor, got dtype {valid.dtype} and shape {tuple(valid.shape)}"
        )
    return valid[:, None, None, :]


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of broadcastable masks, ignoring ``None``s; ``None`` if all are ``None``."""
    out = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else out & m
    return out

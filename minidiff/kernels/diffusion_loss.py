r"""The masked-diffusion loss without a ``[B, L, V]`` float32 log-softmax.

The continuous-time NELBO of masked diffusion (MDLM, Sahoo et al., 2024, arXiv 2406.07524, eq. 10) scores only the
masked positions, each with a weight w (−α'_t / (1 − α_t), or the discrete-time weight)::

    ℓ_i = w_i · ( logsumexp_v x_{i,v} − x_{i, target_i} )     for masked i,   ℓ_i = 0 otherwise,

where x are the logits with the mask token's logit set to −∞ (the SUBS parameterisation, ``mask_id``). A plain
implementation computes ``log_softmax`` over every position and the whole vocabulary in float32 -- 4·B·L·V bytes,
most of it for unmasked positions that contribute nothing. :func:`masked_diffusion_loss` instead

1. gathers the masked positions (N of them),
2. computes each row's log-sum-exp and target logit (Triton: one program per row, an online max/sum over vocabulary
   chunks read in the logits' own dtype, so nothing of size N·V is written; torch reference: float32 ``[N, V]``),
3. weights and scatters back to ``[B, L]``.

The backward pass (Triton) writes ∂ℓ/∂x = g·w·(softmax(x) − onehot(target)) row by row, zero at the mask token
and at unmasked positions. With ``head=`` the first argument holds hidden states ``[B, L, d]`` and the logits are
computed only for the masked rows (``hidden[masked] @ headᵀ``), so full-vocabulary logits for unmasked positions
never exist at all.

How :mod:`minidiff.diffusion.masked` can call it (``z_t`` the noisy tokens, ``w`` the per-time weight)::

    nelbo, ce = masked_diffusion_loss(logits, x0, z_t == self.mask_id, w[:, None], mask_id=self.mask_id,
                                      return_ce=True)

Bad input: mismatched shapes, non-integer targets, a non-boolean mask or an out-of-range ``mask_id`` raise
``ValueError``; float64 logits run the torch reference (with a warning when Triton was forced).
"""

from __future__ import annotations

import torch

from minidiff.kernels._dispatch import choose, requested_backend

__all__ = ["masked_diffusion_loss", "row_cross_entropy"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _row_cross_entropy_torch(
    logits2d: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, mask_id: int | None
):
    x = logits2d[rows].float()  # [N, V]: masked positions only
    if mask_id is not None:
        x = x.index_fill(1, torch.tensor([mask_id], device=x.device), float("-inf"))
    return torch.logsumexp(x, dim=-1) - x.gather(-1, targets[:, None]).squeeze(-1)


class _RowCrossEntropy(torch.autograd.Function):
    """ce[n] = logsumexp(x[rows[n]]) − x[rows[n], targets[n]] with Triton forward and backward."""

    @staticmethod
    def forward(ctx, logits2d, rows, targets, mask_id):
        from minidiff.kernels import _triton_diffusion_loss

        lse, ce = _triton_diffusion_loss.forward(logits2d, rows, targets, mask_id)
        ctx.save_for_backward(logits2d, rows, targets, lse)
        ctx.mask_id = mask_id
        return ce

    @staticmethod
    def backward(ctx, grad_ce):
        from minidiff.kernels import _triton_diffusion_loss

        logits2d, rows, targets, lse = ctx.saved_tensors
        grad = _triton_diffusion_loss.backward(
            logits2d, rows, targets, lse, grad_ce.float().contiguous(), ctx.mask_id
        )
        return grad, None, None, None


def row_cross_entropy(
    logits2d: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    mask_id: int | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """float32 ``[N]``: cross-entropy of row ``rows[n]`` of ``logits2d [R, V]`` against ``targets[n]``."""
    problem = (
        None
        if logits2d.dtype in TRITON_DTYPES
        else f"supports float32/bfloat16/float16 logits, got {logits2d.dtype}"
    )
    if rows.numel() == 0:  # nothing to score: an empty result, whatever the backend
        requested_backend(backend)
        return _row_cross_entropy_torch(logits2d, rows, targets, mask_id)
    if choose("masked_diffusion_loss", logits2d.device, backend, problem) == "triton":
        if not logits2d.is_contiguous():
            logits2d = logits2d.contiguous()
        return _RowCrossEntropy.apply(logits2d, rows, targets, mask_id)
    return _row_cross_entropy_torch(logits2d, rows, targets, mask_id)


def _check(logits, targets, masked, mask_id, head):
    if head is not None:
        if head.ndim != 2 or logits.shape[-1] != head.shape[1]:
            raise ValueError(
                f"head must be [V, d] with d = hidden.shape[-1] = {logits.shape[-1]}, got shape {tuple(head.shape)}"
            )
        vocab = head.shape[0]
    else:
        vocab = logits.shape[-1]
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating tensor, got dtype {logits.dtype}")
    if masked.dtype != torch.bool:
        raise ValueError(f"masked must be a bool tensor, got dtype {masked.dtype}")
    if (
        targets.dtype not in (torch.int64, torch.int32)
        or targets.shape != logits.shape[:-1]
        or masked.shape != targets.shape
    ):
        raise ValueError(
            f"targets (int64) and masked (bool) must have shape {tuple(logits.shape[:-1])}, got targets "
            f"{tuple(targets.shape)} {targets.dtype} and masked {tuple(masked.shape)}"
        )
    if mask_id is not None and not (isinstance(mask_id, int) and 0 <= mask_id < vocab):
        raise ValueError(f"mask_id must be None or an int in [0, {vocab}), got {mask_id!r}")
    return vocab


def masked_diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    weights: torch.Tensor | float,
    *,
    mask_id: int | None = None,
    head: torch.Tensor | None = None,
    reduction: str = "none",
    return_ce: bool = False,
    backend: str | None = None,
):
    """Weighted cross-entropy at the masked positions, float32.

    Args:
        logits: ``[..., V]`` logits, or ``[..., d]`` hidden states when ``head`` is given.
        targets: ``[...]`` clean token ids (int64).
        masked: ``[...]`` bool, the positions scored (``z_t == mask_id``).
        weights: broadcastable to ``[...]``: per-position weights (e.g. ``w[:, None]`` for one time per sequence).
        mask_id: vocabulary index whose logit is set to −∞ before the softmax (SUBS); ``None`` keeps all logits.
        head: optional ``[V, d]`` output projection (``lm_head.weight``); logits are then formed for masked rows only.
        reduction: ``"none"`` (``[...]``, zeros where unmasked) or ``"sum"``.
        return_ce: also return the unweighted cross-entropy ``[...]`` (zeros where unmasked).
    """
    if reduction not in ("none", "sum"):
        raise ValueError(f"reduction must be 'none' or 'sum', got {reduction!r}")
    _check(logits, targets, masked, mask_id, head)
    weights = torch.as_tensor(weights, device=logits.device)
    try:
        weights = weights.broadcast_to(masked.shape)
    except RuntimeError:
        raise ValueError(
            f"weights of shape {tuple(weights.shape)} do not broadcast to {tuple(masked.shape)}"
        ) from None
    flat_masked = masked.reshape(-1)
    rows = flat_masked.nonzero().squeeze(-1)  # [N] positions scored
    row_targets = targets.reshape(-1)[rows].long()
    if head is not None:
        features = logits.reshape(-1, logits.shape[-1])[rows]  # [N, d]
        logits2d, rows_in = features @ head.mT, torch.arange(rows.numel(), device=rows.device)  # [N, V]
    else:
        logits2d, rows_in = logits.reshape(-1, logits.shape[-1]), rows
    ce_rows = row_cross_entropy(logits2d, rows_in, row_targets, mask_id, backend=backend)
    loss_rows = weights.reshape(-1)[rows].float() * ce_rows
    zeros = torch.zeros(flat_masked.numel(), dtype=torch.float32, device=logits.device)
    loss = zeros.index_put((rows,), loss_rows).view(masked.shape)
    if reduction == "sum":
        loss = loss_rows.sum()
    if not return_ce:
        return loss
    ce = zeros.index_put((rows,), ce_rows).view(masked.shape)
    return loss, ce

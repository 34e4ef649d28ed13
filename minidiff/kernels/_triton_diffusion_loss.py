"""Triton kernels for the masked-diffusion loss (imported only by :mod:`minidiff.kernels.diffusion_loss`).

Forward: one program per scored row; it streams the row's logits in ``BLOCK_V`` chunks (in their own dtype) and
keeps a per-lane running max and rescaled sum of exponentials (the online log-sum-exp), reduced across lanes at
the end. Writes two floats per row: the log-sum-exp (for the backward) and the cross-entropy. Backward: one
program per (row, vocabulary chunk) writes g·(exp(x − lse) − onehot(target)).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minidiff.kernels._dispatch import interpreting


def _block_v(vocab: int) -> int:
    cap = 65536 if interpreting() else 4096
    return min(cap, triton.next_power_of_2(max(vocab, 16)))


@triton.jit
def _forward_kernel(
    LOGITS, ROWS, TARGETS, LSE, CE, V, stride_row, mask_id, HAS_MASK_ID: tl.constexpr, BLOCK_V: tl.constexpr
):
    n = tl.program_id(0)
    base = LOGITS + tl.load(ROWS + n).to(tl.int64) * stride_row
    running_max = tl.full((BLOCK_V,), float("-inf"), tl.float32)
    running_sum = tl.zeros((BLOCK_V,), tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        x = tl.load(base + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        if HAS_MASK_ID:
            x = tl.where(cols == mask_id, float("-inf"), x)
        new_max = tl.maximum(running_max, x)
        # A lane that has seen only −∞ shifts by 0 instead of −∞, so no −∞ − (−∞) = NaN appears.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        running_sum = running_sum * tl.exp(running_max - shift) + tl.exp(x - shift)
        running_max = new_max
    row_max = tl.max(running_max, axis=0)
    row_shift = tl.where(row_max == float("-inf"), 0.0, row_max)
    lse = row_shift + tl.log(tl.sum(running_sum * tl.exp(running_max - row_shift), axis=0))
    target = tl.load(TARGETS + n)
    target_logit = tl.load(base + target).to(tl.float32)
    if HAS_MASK_ID:
        target_logit = tl.where(target == mask_id, float("-inf"), target_logit)
    tl.store(LSE + n, lse)
    tl.store(CE + n, lse - target_logit)


@triton.jit
def _backward_kernel(
    LOGITS, GRAD_LOGITS, ROWS, TARGETS, LSE, GRAD_CE, V, stride_row, mask_id,
    HAS_MASK_ID: tl.constexpr, BLOCK_V: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    offset = tl.load(ROWS + n).to(tl.int64) * stride_row
    x = tl.load(LOGITS + offset + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
    prob = tl.exp(x - tl.load(LSE + n))
    if HAS_MASK_ID:
        prob = tl.where(cols == mask_id, 0.0, prob)
    prob = prob - tl.where(cols == tl.load(TARGETS + n), 1.0, 0.0)
    grad = tl.load(GRAD_CE + n) * prob
    tl.store(GRAD_LOGITS + offset + cols, grad.to(GRAD_LOGITS.dtype.element_ty), mask=cols < V)


def forward(logits2d: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, mask_id: int | None):
    n, vocab = rows.numel(), logits2d.shape[-1]
    lse = torch.empty(n, dtype=torch.float32, device=logits2d.device)
    ce = torch.empty_like(lse)
    if n:
        _forward_kernel[(n,)](
            logits2d, rows, targets, lse, ce, vocab, logits2d.stride(0), -1 if mask_id is None else mask_id,
            HAS_MASK_ID=mask_id is not None, BLOCK_V=_block_v(vocab),
        )  # fmt: skip
    return lse, ce


def backward(logits2d, rows, targets, lse, grad_ce, mask_id):
    grad = torch.zeros_like(logits2d)
    n, vocab = rows.numel(), logits2d.shape[-1]
    if n:
        block = _block_v(vocab)
        _backward_kernel[(n, triton.cdiv(vocab, block))](
            logits2d, grad, rows, targets, lse, grad_ce, vocab, logits2d.stride(0), -1 if mask_id is None else mask_id,
            HAS_MASK_ID=mask_id is not None, BLOCK_V=block,
        )  # fmt: skip
    return grad

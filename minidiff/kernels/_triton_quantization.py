"""Triton kernels for block-wise 8-bit quantisation (imported only by :mod:`minidiff.kernels.quantization`).

The scheme is Dettmers, Lewis, Shleifer & Zettlemoyer, 2022, "8-bit Optimizers via Block-wise Quantization",
arXiv 2110.02861; its torch reference is :mod:`minidiff.optim.quantize`.

One program per quantisation block of ``BLOCK = block_size`` elements, so the block's absmax is a program-local
``max``. The nearest map value is found by bisecting the 255 float32 midpoints (8 gathers from a 1 KiB table
that stays in L1), exactly as ``torch.searchsorted`` does in the reference, and the normalisation uses
correctly rounded division (``div_rn``), so both paths produce the same indices.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minidiff.optim.quantize import num_blocks, quantization_midpoints


def _warps(block: int) -> int:
    return 8 if block >= 2048 else 4


@triton.jit
def _nearest(y, MIDS):
    """Index of the nearest map value: the number of midpoints strictly below ``y`` (8-step bisection)."""
    pos = tl.zeros(y.shape, dtype=tl.int32)
    for k in tl.static_range(8):  # steps of 128, 64, ..., 1
        mid = tl.load(MIDS + pos + ((128 >> k) - 1))
        pos = tl.where(mid < y, pos + (128 >> k), pos)
    return pos


@triton.jit
def _quantize_block(value, mask, Q, ABSMAX, MIDS, block, offs):
    """Quantise one block's float32 ``value`` (masked lanes must hold 0) and store indices and absmax."""
    absmax = tl.max(tl.abs(value), axis=0)
    scale = tl.where(absmax == 0.0, 1.0, absmax)
    q = _nearest(tl.math.div_rn(value, scale), MIDS)
    tl.store(Q + offs, q.to(tl.uint8), mask=mask)
    tl.store(ABSMAX + block, absmax)


@triton.jit
def _quantize_kernel(X, Q, ABSMAX, MIDS, n, BLOCK: tl.constexpr):
    block = tl.program_id(0)
    offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    _quantize_block(x, mask, Q, ABSMAX, MIDS, block, offs)


@triton.jit
def _dequantize_kernel(Q, ABSMAX, CODE, OUT, n, BLOCK: tl.constexpr):
    block = tl.program_id(0)
    offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    q = tl.load(Q + offs, mask=mask, other=0).to(tl.int32)
    value = tl.load(CODE + q, mask=mask, other=0.0) * tl.load(ABSMAX + block)
    tl.store(OUT + offs, value.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _dequantize_block(Q, ABSMAX, CODE, block, offs, mask):
    q = tl.load(Q + offs, mask=mask, other=0).to(tl.int32)
    value = tl.load(CODE + q, mask=mask, other=0.0) * tl.load(ABSMAX + block)
    return tl.where(mask, value, 0.0)


@triton.jit
def _adam8bit_kernel(
    P, G, Q1, ABSMAX1, CODE1, MIDS1, Q2, ABSMAX2, CODE2, MIDS2, n,
    w1, beta1, w2, beta2, eps, decay, step_size, sqrt_bias2,
    BLOCK: tl.constexpr,
):  # fmt: skip
    block = tl.program_id(0)
    offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(P + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
    m = _dequantize_block(Q1, ABSMAX1, CODE1, block, offs, mask)
    v = _dequantize_block(Q2, ABSMAX2, CODE2, block, offs, mask)
    p = p * decay
    m = m * beta1 + w1 * g
    v = v * beta2 + (w2 * g) * g
    denom = tl.math.div_rn(tl.sqrt_rn(v), sqrt_bias2) + eps
    p = p + tl.math.div_rn(-step_size * m, denom)
    tl.store(P + offs, p.to(P.dtype.element_ty), mask=mask)
    _quantize_block(m, mask, Q1, ABSMAX1, MIDS1, block, offs)
    _quantize_block(v, mask, Q2, ABSMAX2, MIDS2, block, offs)


@triton.jit
def _lion8bit_kernel(
    P, G, Q1, ABSMAX1, CODE1, MIDS1, n, lr, w1, beta1, w2, beta2, decay, BLOCK: tl.constexpr
):
    block = tl.program_id(0)
    offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(P + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
    m = _dequantize_block(Q1, ABSMAX1, CODE1, block, offs, mask)
    p = p * decay
    c = beta1 * m + w1 * g
    p = p + (-lr) * tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, 0.0))
    m = m * beta2 + w2 * g
    tl.store(P + offs, p.to(P.dtype.element_ty), mask=mask)
    _quantize_block(m, mask, Q1, ABSMAX1, MIDS1, block, offs)


def quantize(x: torch.Tensor, code: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.contiguous()
    q = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    blocks = num_blocks(x.numel(), block_size)
    absmax = torch.empty(blocks, dtype=torch.float32, device=x.device)
    if blocks:
        mids = quantization_midpoints(code)
        _quantize_kernel[(blocks,)](
            x, q, absmax, mids, x.numel(), BLOCK=block_size, num_warps=_warps(block_size)
        )
    return q, absmax


def dequantize(q, absmax, code, block_size: int, dtype: torch.dtype) -> torch.Tensor:
    q = q.contiguous()
    out = torch.empty(q.shape, dtype=dtype, device=q.device)
    if absmax.numel():
        _dequantize_kernel[(absmax.numel(),)](
            q, absmax, code, out, q.numel(), BLOCK=block_size, num_warps=_warps(block_size)
        )
    return out


def adam8bit(
    p, g, q1, a1, code1, q2, a2, code2, lr, beta1, beta2, eps, weight_decay, bias1, bias2, block_size
):
    if a1.numel():
        mids1, mids2 = quantization_midpoints(code1), quantization_midpoints(code2)
        scalars = (
            1.0 - beta1,
            beta1,
            1.0 - beta2,
            beta2,
            eps,
            1.0 - lr * weight_decay,
            lr / bias1,
            bias2**0.5,
        )
        _adam8bit_kernel[(a1.numel(),)](
            p, g, q1, a1, code1, mids1, q2, a2, code2, mids2, p.numel(), *scalars,
            BLOCK=block_size, num_warps=_warps(block_size),
        )  # fmt: skip


def lion8bit(p, g, q1, a1, code1, lr, beta1, beta2, weight_decay, block_size):
    if a1.numel():
        scalars = (lr, 1.0 - beta1, beta1, 1.0 - beta2, beta2, 1.0 - lr * weight_decay)
        _lion8bit_kernel[(a1.numel(),)](
            p, g, q1, a1, code1, quantization_midpoints(code1), p.numel(), *scalars,
            BLOCK=block_size, num_warps=_warps(block_size),
        )  # fmt: skip

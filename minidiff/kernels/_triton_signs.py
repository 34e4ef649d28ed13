"""Triton kernels for 1-bit sign packing (imported only by :mod:`minidiff.kernels.signs`): the compression of
1-bit Adam (Tang et al., 2021, arXiv 2102.02888), C(x) = scale · sign(x) with scale = ‖x‖/√n.

A program handles ``BYTES`` packed bytes (``8·BYTES`` elements) of one row: it loads the elements as a
``[BYTES, 8]`` tile, turns each row of 8 signs into a byte with a shift-and-sum, and writes its partial sum of
squares; the host adds the partials (a deterministic two-level reduction) to form ``scale = ‖x‖/√n``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minidiff.kernels._dispatch import interpreting


def _bytes_per_program() -> int:
    return 4096 if interpreting() else 512


@triton.jit
def _pack_kernel(X, BITS, PARTIAL, n, n_bytes, n_programs, BYTES: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    byte = chunk * BYTES + tl.arange(0, BYTES)
    bit = tl.arange(0, 8)
    element = byte[:, None] * 8 + bit[None, :]  # [BYTES, 8]
    mask = element < n
    x = tl.load(X + row * n + element, mask=mask, other=0.0).to(tl.float32)
    positive = ((x >= 0.0) & mask).to(tl.int32)
    packed = tl.sum(positive << bit[None, :], axis=1)
    tl.store(BITS + row * n_bytes + byte, packed.to(tl.uint8), mask=byte < n_bytes)
    tl.store(PARTIAL + row * n_programs + chunk, tl.sum(tl.sum(x * x, axis=1), axis=0))


@triton.jit
def _unpack_kernel(BITS, SCALE, OUT, n, n_bytes, BYTES: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    byte = tl.program_id(1) * BYTES + tl.arange(0, BYTES)
    bit = tl.arange(0, 8)
    packed = tl.load(BITS + row * n_bytes + byte, mask=byte < n_bytes, other=0).to(tl.int32)
    positive = ((packed[:, None] >> bit[None, :]) & 1) != 0
    scale = tl.load(SCALE + row)
    element = byte[:, None] * 8 + bit[None, :]
    value = tl.where(positive, scale, -scale)
    tl.store(OUT + row * n + element, value.to(OUT.dtype.element_ty), mask=element < n)


def pack(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = x.shape[-1]
    rows = x.reshape(-1, n).contiguous()
    n_bytes = -(-n // 8)
    per = _bytes_per_program()
    programs = max(1, -(-n_bytes // per))
    bits = torch.empty(rows.shape[0], n_bytes, dtype=torch.uint8, device=x.device)
    partial = torch.zeros(rows.shape[0], programs, dtype=torch.float32, device=x.device)
    if rows.shape[0] and n:
        _pack_kernel[(rows.shape[0], programs)](rows, bits, partial, n, n_bytes, programs, BYTES=per)
    scale = partial.sum(-1).div(max(n, 1)).sqrt()
    return bits.view(*x.shape[:-1], n_bytes), scale.view(x.shape[:-1])


def unpack(bits: torch.Tensor, scale: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    n_bytes = bits.shape[-1]
    rows = bits.reshape(-1, n_bytes).contiguous()
    out = torch.empty(rows.shape[0], n, dtype=dtype, device=bits.device)
    per = _bytes_per_program()
    if rows.shape[0] and n:
        grid = (rows.shape[0], max(1, -(-n_bytes // per)))
        _unpack_kernel[grid](rows, scale.reshape(-1).contiguous(), out, n, n_bytes, BYTES=per)
    return out.view(*bits.shape[:-1], n)

"""Triton kernels for the Newton–Schulz iteration (imported only by :mod:`minidiff.kernels.orthogonalize`).

Two tiled matmul kernels with fused epilogues, batched over a leading dimension:

- ``_gram_kernel``: OUT = α·X Xᵀ + β·C for X ``[k, n]``. The result is symmetric, so only the tiles on and above
  the diagonal are computed; each off-diagonal tile is written twice (as itself and, transposed, as its mirror).
  That halves the FLOPs of A = X Xᵀ, and of B = b·A + c·A², computed as the same kernel on X = A, C = A
  (A² = A Aᵀ since A is symmetric).
- ``_poly_kernel``: OUT = a·X + B X, a plain matmul with the ``a·X`` term added in the epilogue.

Per step, for a k×n matrix (k ≤ n): 2k²n + 2k³ + 2k²n FLOPs unfused vs k²n + k³ + 2k²n here (4096²: 1.5×
fewer). Accumulation is float32; bf16/fp16 operands go through tensor cores, float32 uses IEEE products unless
``torch.backends.cuda.matmul.allow_tf32`` is set. The interpreter's ``tl.dot`` mishandles bfloat16, so under
``TRITON_INTERPRET=1`` tiles are upcast to float32 first (the products of bf16 values are exact in float32, so
only the order of accumulation differs from the GPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minidiff.kernels._dispatch import interpreting
from minidiff.optim.linalg import coefficient_schedule

_SQUARE_CONFIGS = [  # the Gram kernel needs square tiles (BM = BN) to mirror them
    triton.Config({"BM": 128, "BN": 128, "BK": 64}, num_warps=8, num_stages=3),
    triton.Config({"BM": 128, "BN": 128, "BK": 32}, num_warps=4, num_stages=4),
    triton.Config({"BM": 64, "BN": 64, "BK": 64}, num_warps=4, num_stages=4),
]
_CONFIGS = _SQUARE_CONFIGS + [
    triton.Config({"BM": 128, "BN": 256, "BK": 64}, num_warps=8, num_stages=3),
    triton.Config({"BM": 128, "BN": 64, "BK": 64}, num_warps=4, num_stages=4),
]
_INTERPRETER_TILE = 32


@triton.jit
def _gram_kernel(
    X, C, OUT, K, N,
    sxb, sxm, sxn, scb, scm, scn, sob, som, son,
    alpha, beta,
    HAS_C: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """OUT[b] = alpha · X[b] X[b]ᵀ (+ beta · C[b]); X[b] is K×N. Tiles below the diagonal only mirror."""
    tl.static_assert(BM == BN)
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if pid_n < pid_m:
        return
    b = tl.program_id(2).to(tl.int64)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BM + tl.arange(0, BM)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BM), dtype=tl.float32)
    base = X + b * sxb
    for k0 in range(0, N, BK):
        kk = k0 + rk
        left = tl.load(
            base + rm[:, None] * sxm + kk[None, :] * sxn,
            mask=(rm[:, None] < K) & (kk[None, :] < N),
            other=0.0,
        )
        right = tl.load(
            base + kk[:, None] * sxn + rn[None, :] * sxm,
            mask=(kk[:, None] < N) & (rn[None, :] < K),
            other=0.0,
        )
        if UPCAST:
            left = left.to(tl.float32)
            right = right.to(tl.float32)
        acc = tl.dot(left, right, acc, input_precision=PRECISION)
    acc = acc * alpha
    inside = (rm[:, None] < K) & (rn[None, :] < K)
    if HAS_C:
        acc += beta * tl.load(C + b * scb + rm[:, None] * scm + rn[None, :] * scn, mask=inside, other=0.0).to(
            tl.float32
        )
    result = acc.to(OUT.dtype.element_ty)
    tl.store(OUT + b * sob + rm[:, None] * som + rn[None, :] * son, result, mask=inside)
    if pid_n != pid_m:
        mirror = (rn[:, None] < K) & (rm[None, :] < K)
        tl.store(OUT + b * sob + rn[:, None] * som + rm[None, :] * son, tl.trans(result), mask=mirror)


@triton.jit
def _poly_kernel(
    B, X, OUT, K, N,
    sbb, sbm, sbk, sxb, sxk, sxn, sob, som, son,
    a,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """OUT[b] = a · X[b] + B[b] X[b]; B[b] is K×K, X[b] is K×N."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        left = tl.load(
            B + b * sbb + rm[:, None] * sbm + kk[None, :] * sbk,
            mask=(rm[:, None] < K) & (kk[None, :] < K),
            other=0.0,
        )
        right = tl.load(
            X + b * sxb + kk[:, None] * sxk + rn[None, :] * sxn,
            mask=(kk[:, None] < K) & (rn[None, :] < N),
            other=0.0,
        )
        if UPCAST:
            left = left.to(tl.float32)
            right = right.to(tl.float32)
        acc = tl.dot(left, right, acc, input_precision=PRECISION)
    inside = (rm[:, None] < K) & (rn[None, :] < N)
    x = tl.load(X + b * sxb + rm[:, None] * sxk + rn[None, :] * sxn, mask=inside, other=0.0).to(tl.float32)
    acc += a * x
    tl.store(OUT + b * sob + rm[:, None] * som + rn[None, :] * son, acc.to(OUT.dtype.element_ty), mask=inside)


_gram_tuned = triton.autotune(configs=_SQUARE_CONFIGS, key=["K", "N", "HAS_C"])(_gram_kernel)
_poly_tuned = triton.autotune(configs=_CONFIGS, key=["K", "N"])(_poly_kernel)


def _options(dtype: torch.dtype) -> dict:
    precision = "tf32" if dtype != torch.float32 or torch.backends.cuda.matmul.allow_tf32 else "ieee"
    return {"UPCAST": interpreting() and dtype != torch.float32, "PRECISION": precision}


def gram(
    X: torch.Tensor, out: torch.Tensor, C: torch.Tensor | None = None, alpha: float = 1.0, beta: float = 0.0
):
    """out = alpha · X Xᵀ (+ beta · C) for contiguous ``X [b, k, n]``; ``out [b, k, k]``."""
    batch, k, n = X.shape
    C_ = C if C is not None else out
    args = (X, C_, out, k, n, *X.stride(), *C_.stride(), *out.stride(), alpha, beta)
    options = dict(HAS_C=C is not None, **_options(X.dtype))
    if interpreting():
        tile = _INTERPRETER_TILE
        grid = (triton.cdiv(k, tile), triton.cdiv(k, tile), batch)
        _gram_kernel[grid](*args, BM=tile, BN=tile, BK=tile, **options)
    else:
        grid = lambda meta: (triton.cdiv(k, meta["BM"]), triton.cdiv(k, meta["BM"]), batch)
        _gram_tuned[grid](*args, **options)
    return out


def poly(B: torch.Tensor, X: torch.Tensor, a: float, out: torch.Tensor) -> torch.Tensor:
    """out = a · X + B X for ``B [b, k, k]`` and ``X [b, k, n]``."""
    batch, k, n = X.shape
    args = (B, X, out, k, n, *B.stride(), *X.stride(), *out.stride(), a)
    options = _options(X.dtype)
    if interpreting():
        tile = _INTERPRETER_TILE
        _poly_kernel[(triton.cdiv(k, tile), triton.cdiv(n, tile), batch)](
            *args, BM=tile, BN=tile, BK=tile, **options
        )
    else:
        grid = lambda meta: (triton.cdiv(k, meta["BM"]), triton.cdiv(n, meta["BN"]), batch)
        _poly_tuned[grid](*args, **options)
    return out


def newton_schulz(G: torch.Tensor, steps: int, coefficients, dtype: torch.dtype, eps: float) -> torch.Tensor:
    """The iteration of :func:`minidiff.optim.linalg.newton_schulz` with the products above."""
    schedule, scale = coefficient_schedule(coefficients, steps)
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    norm = X.norm(dim=(-2, -1), keepdim=True)
    X = X / ((norm * scale if scale != 1.0 else norm) + eps)
    batch_shape, (k, n) = X.shape[:-2], X.shape[-2:]
    X = X.reshape(-1, k, n).contiguous()
    A = torch.empty(X.shape[0], k, k, dtype=dtype, device=X.device)
    B = torch.empty_like(A)
    Y = torch.empty_like(X)
    for a, b, c in schedule:
        gram(X, out=A)  # A = X Xᵀ
        if c != 0.0:
            gram(A, out=B, C=A, alpha=c, beta=b)  # B = b A + c A²
        else:
            torch.mul(A, b, out=B)
        poly(B, X, a, out=Y)  # X ← a X + B X
        X, Y = Y, X
    X = X.reshape(*batch_shape, k, n)
    return X.mT if tall else X

"""Triton multi-tensor kernels for the Adam family (imported only by :mod:`minidiff.kernels.elementwise`).

One launch updates every tensor of a dtype combination. The host builds, per role (param, grad, states), a table of
int64 element offsets of each tensor from the role's first tensor (its "witness", passed as an ordinary pointer
argument), and a chunk table mapping program ``pid`` to (tensor, first element). A program adds its tensor's offset
to the witness pointer -- plain address arithmetic in one flat address space -- loads a ``BLOCK`` of elements,
updates in float32 and stores.

Vectorised memory access needs two facts the compiler cannot see in a table: every tensor is 16-byte aligned
(checked by the caller; ``tl.multiple_of`` on the offsets says so), and a chunk is either entirely inside its tensor
(no mask at all) or the tensor's tail (masked). Each kernel therefore branches once per program between an unmasked
and a masked copy of the same update (``MASKED`` is a compile-time flag), so all but one chunk per tensor use
128-bit loads and stores. Memory traffic per element: AdamW reads θ, g, m, v and writes θ, m, v (28 bytes in
float32), the minimum any implementation needs, so the kernel's speed is set by HBM bandwidth.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import triton
import triton.language as tl

from minidiff.kernels._dispatch import interpreting


def _block() -> int:
    # The interpreter pays per program, the GPU wants many programs in flight.
    return 4096 if interpreting() else 1024


# --------------------------------------------------------------------------- shared pieces
@triton.jit
def _lerp(state, target, w):
    """torch's lerp: state + w (target − state) for |w| < 0.5, target − (target − state)(1 − w) otherwise."""
    return tl.where(w < 0.5, state + w * (target - state), target - (target - state) * (1.0 - w))


@triton.jit
def _chunk(CHUNK_T, CHUNK_START, NUMEL, BLOCK: tl.constexpr):
    """(offsets, mask, tensor index, whole) of this program's chunk; ``whole``: the chunk needs no mask."""
    pid = tl.program_id(0)
    t = tl.load(CHUNK_T + pid)
    start = tl.load(CHUNK_START + pid)
    n = tl.load(NUMEL + t)
    offs = tl.max_contiguous(tl.multiple_of(start + tl.arange(0, BLOCK), BLOCK), BLOCK)
    return offs, offs < n, t, start + BLOCK <= n


@triton.jit
def _base(OFFSETS, T, role: tl.constexpr, t, WITNESS, ALIGN: tl.constexpr):
    """Pointer to tensor ``t`` of role ``role``: the witness plus an element offset that is a multiple of ``ALIGN``
    (16 bytes / element size)."""
    return WITNESS + tl.multiple_of(tl.load(OFFSETS + role * T + t), ALIGN)


@triton.jit
def _load(ptr, mask, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(ptr, mask=mask).to(tl.float32)
    return tl.load(ptr).to(tl.float32)


@triton.jit
def _store(ptr, value, mask, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptr, value.to(ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ptr, value.to(ptr.dtype.element_ty))


# --------------------------------------------------------------------------- AdamW
@triton.jit
def _adam_update(p_ptr, g_ptr, m_ptr, v_ptr, mask, w1, w2, beta2, eps, decay, step_size, sqrt_bias2,
                 MASKED: tl.constexpr):  # fmt: skip
    p = _load(p_ptr, mask, MASKED) * decay
    g = _load(g_ptr, mask, MASKED)
    m = _lerp(_load(m_ptr, mask, MASKED), g, w1)
    v = _load(v_ptr, mask, MASKED) * beta2 + (w2 * g) * g
    denom = tl.math.div_rn(tl.sqrt_rn(v), sqrt_bias2) + eps
    p = p + tl.math.div_rn(-step_size * m, denom)
    _store(p_ptr, p, mask, MASKED)
    _store(m_ptr, m, mask, MASKED)
    _store(v_ptr, v, mask, MASKED)


@triton.jit
def _adam_kernel(
    OFFSETS, T, CHUNK_T, CHUNK_START, NUMEL, P0, G0, S0,
    w1, w2, beta2, eps, decay, step_size, sqrt_bias2,
    ALIGN_P: tl.constexpr, ALIGN_G: tl.constexpr, ALIGN_S: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs, mask, t, whole = _chunk(CHUNK_T, CHUNK_START, NUMEL, BLOCK)
    p_ptr = _base(OFFSETS, T, 0, t, P0, ALIGN_P) + offs
    g_ptr = _base(OFFSETS, T, 1, t, G0, ALIGN_G) + offs
    m_ptr = _base(OFFSETS, T, 2, t, S0, ALIGN_S) + offs
    v_ptr = _base(OFFSETS, T, 3, t, S0, ALIGN_S) + offs
    scalars = (w1, w2, beta2, eps, decay, step_size, sqrt_bias2)
    if whole:
        _adam_update(p_ptr, g_ptr, m_ptr, v_ptr, mask, *scalars, MASKED=False)
    else:
        _adam_update(p_ptr, g_ptr, m_ptr, v_ptr, mask, *scalars, MASKED=True)


# --------------------------------------------------------------------------- Lion
@triton.jit
def _lion_update(p_ptr, g_ptr, m_ptr, mask, lr, w1, w2, decay, MASKED: tl.constexpr):
    p = _load(p_ptr, mask, MASKED) * decay
    g = _load(g_ptr, mask, MASKED)
    m = _load(m_ptr, mask, MASKED)
    c = _lerp(m, g, w1)
    p = p + (-lr) * tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, 0.0))
    _store(p_ptr, p, mask, MASKED)
    _store(m_ptr, _lerp(m, g, w2), mask, MASKED)


@triton.jit
def _lion_kernel(
    OFFSETS, T, CHUNK_T, CHUNK_START, NUMEL, P0, G0, S0,
    lr, w1, w2, decay,
    ALIGN_P: tl.constexpr, ALIGN_G: tl.constexpr, ALIGN_S: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs, mask, t, whole = _chunk(CHUNK_T, CHUNK_START, NUMEL, BLOCK)
    p_ptr = _base(OFFSETS, T, 0, t, P0, ALIGN_P) + offs
    g_ptr = _base(OFFSETS, T, 1, t, G0, ALIGN_G) + offs
    m_ptr = _base(OFFSETS, T, 2, t, S0, ALIGN_S) + offs
    if whole:
        _lion_update(p_ptr, g_ptr, m_ptr, mask, lr, w1, w2, decay, MASKED=False)
    else:
        _lion_update(p_ptr, g_ptr, m_ptr, mask, lr, w1, w2, decay, MASKED=True)


# --------------------------------------------------------------------------- AdEMAMix
@triton.jit
def _ademamix_update(
    p_ptr, g_ptr, slow_ptr, v_ptr, fast_ptr, mask,
    lr, w1, w2, beta2, w3, alpha, eps, decay, bias1, sqrt_bias2,
    HAS_FAST: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    p = _load(p_ptr, mask, MASKED) * decay
    g = _load(g_ptr, mask, MASKED)
    if HAS_FAST:
        fast = _lerp(_load(fast_ptr, mask, MASKED), g, w1)
        _store(fast_ptr, fast, mask, MASKED)
    else:
        fast = g
    slow = _lerp(_load(slow_ptr, mask, MASKED), g, w3)
    v = _load(v_ptr, mask, MASKED) * beta2 + (w2 * g) * g
    denom = tl.math.div_rn(tl.sqrt_rn(v), sqrt_bias2) + eps
    numer = tl.math.div_rn(fast, bias1) + alpha * slow
    p = p + tl.math.div_rn(-lr * numer, denom)
    _store(p_ptr, p, mask, MASKED)
    _store(slow_ptr, slow, mask, MASKED)
    _store(v_ptr, v, mask, MASKED)


@triton.jit
def _ademamix_kernel(
    OFFSETS, T, CHUNK_T, CHUNK_START, NUMEL, P0, G0, S0,
    lr, w1, w2, beta2, w3, alpha, eps, decay, bias1, sqrt_bias2,
    HAS_FAST: tl.constexpr, ALIGN_P: tl.constexpr, ALIGN_G: tl.constexpr, ALIGN_S: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs, mask, t, whole = _chunk(CHUNK_T, CHUNK_START, NUMEL, BLOCK)
    p_ptr = _base(OFFSETS, T, 0, t, P0, ALIGN_P) + offs
    g_ptr = _base(OFFSETS, T, 1, t, G0, ALIGN_G) + offs
    slow_ptr = _base(OFFSETS, T, 2, t, S0, ALIGN_S) + offs
    v_ptr = _base(OFFSETS, T, 3, t, S0, ALIGN_S) + offs
    fast_ptr = (
        _base(OFFSETS, T, 4, t, S0, ALIGN_S) + offs if HAS_FAST else slow_ptr
    )  # unused without a fast EMA
    scalars = (lr, w1, w2, beta2, w3, alpha, eps, decay, bias1, sqrt_bias2)
    if whole:
        _ademamix_update(
            p_ptr, g_ptr, slow_ptr, v_ptr, fast_ptr, mask, *scalars, HAS_FAST=HAS_FAST, MASKED=False
        )
    else:
        _ademamix_update(
            p_ptr, g_ptr, slow_ptr, v_ptr, fast_ptr, mask, *scalars, HAS_FAST=HAS_FAST, MASKED=True
        )


# --------------------------------------------------------------------------- host side
def _groups(*lists):
    """Indices of the tensors, grouped by (dtype of each role): one launch per group."""
    groups = defaultdict(list)
    for i, tensors in enumerate(zip(*lists)):
        groups[tuple(t.dtype for t in tensors)].append(i)
    return groups.values()


def _launch(kernel, lists, scalars, **constexprs) -> None:
    """Build the offset and chunk tables for ``lists`` (one list per role) and launch ``kernel`` per dtype group."""
    block = _block()
    for idx in _groups(*lists):
        roles = [[lst[i] for i in idx] for lst in lists]
        numels = torch.tensor([t.numel() for t in roles[0]], dtype=torch.int64)
        counts = (numels + block - 1) // block
        total = int(counts.sum())
        if total == 0:
            continue
        first_chunk = torch.cumsum(counts, 0) - counts
        chunk_t = torch.repeat_interleave(torch.arange(len(idx), dtype=torch.int32), counts)
        chunk_start = (torch.arange(total, dtype=torch.int64) - first_chunk[chunk_t.long()]) * block
        # Roles 0 and 1 are offset from the first param and grad, every state role from the first state (role 2).
        witnesses = [roles[0][0], roles[1][0]] + [roles[2][0]] * (len(roles) - 2)
        offsets = [
            [(t.data_ptr() - w.data_ptr()) // t.element_size() for t in role]
            for role, w in zip(roles, witnesses)
        ]
        device = roles[0][0].device
        tables = [
            torch.tensor(offsets, dtype=torch.int64).to(device, non_blocking=True),
            *(x.to(device, non_blocking=True) for x in (chunk_t, chunk_start, numels)),
        ]
        p0, g0, s0 = witnesses[:3]
        align = {f"ALIGN_{name}": 16 // t.element_size() for name, t in zip("PGS", (p0, g0, s0))}
        kernel[(total,)](
            tables[0], len(idx), *tables[1:], p0, g0, s0, *scalars, BLOCK=block, **align, **constexprs
        )  # fmt: skip


# Scalars are computed here in float64, as torch computes them, and rounded once to float32 by the launch.
def adam(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, bias1, bias2) -> None:
    scalars = (1.0 - beta1, 1.0 - beta2, beta2, eps, 1.0 - lr * weight_decay, lr / bias1, bias2**0.5)
    _launch(_adam_kernel, [params, grads, exp_avgs, exp_avg_sqs], scalars)


def lion(params, grads, exp_avgs, lr, beta1, beta2, weight_decay) -> None:
    _launch(_lion_kernel, [params, grads, exp_avgs], (lr, 1.0 - beta1, 1.0 - beta2, 1.0 - lr * weight_decay))


def ademamix(
    params, grads, fasts, slows, sqs, lr, beta1, beta2, beta3, alpha, eps, weight_decay, bias1, bias2
):
    lists = [params, grads, slows, sqs] + ([fasts] if fasts is not None else [])
    decay, sqrt_bias2 = 1.0 - lr * weight_decay, bias2**0.5
    scalars = (lr, 1.0 - beta1, 1.0 - beta2, beta2, 1.0 - beta3, alpha, eps, decay, bias1, sqrt_bias2)
    _launch(_ademamix_kernel, lists, scalars, HAS_FAST=fasts is not None)

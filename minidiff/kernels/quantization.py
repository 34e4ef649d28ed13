r"""Block-wise dynamic 8-bit quantisation and the fused 8-bit optimizer steps (Dettmers et al., 2022,
arXiv 2110.02861).

The quantiser itself is specified in :mod:`minidiff.optim.quantize` (map, exact nearest value, block absmax);
:func:`quantize_blockwise` and :func:`dequantize_blockwise` dispatch to it or to the Triton kernels, which find the
nearest map value with the same 8-step bisection of the same float32 midpoints, so both paths agree exactly.

:func:`adam8bit_step_` and :func:`lion8bit_step_` are the 8-bit optimizer inner loops: per block, dequantise the
states, apply the 32-bit update rule in float32, requantise with a fresh absmax::

    m = N¹_b Q¹[q¹],  v = N²_b Q²[q²]                   (signed map for m, unsigned map for v)
    θ ← θ (1 − ηλ);  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²
    θ ← θ − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
    (q¹, N¹) = quantise(m),  (q², N²) = quantise(v)

The Triton kernel does all of it in one pass over memory (one program per quantisation block, so the absmax is a
block-local reduction): 1 + 1 + 2 (+ 8/B) bytes of state per element instead of 8 + 8.

Bad input: non-float parameters, non-uint8 states, wrong absmax lengths raise ``ValueError``. The Triton path
needs a power-of-two ``block_size`` in [16, 8192], float32/bfloat16/float16 parameters and contiguous tensors;
otherwise the torch reference runs (with a warning when Triton was forced).
"""

from __future__ import annotations

import math

import torch

from minidiff.kernels._dispatch import choose, common_device
from minidiff.optim import quantize as reference
from minidiff.optim.quantize import DEFAULT_BLOCK_SIZE, num_blocks

__all__ = ["quantize_blockwise", "dequantize_blockwise", "adam8bit_step_", "lion8bit_step_"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _triton_problem(block_size: int, tensors: list[torch.Tensor]) -> str | None:
    if block_size & (block_size - 1) or not 16 <= block_size <= 8192:
        return f"needs a power-of-two block_size in [16, 8192], got {block_size}"
    for t in tensors:
        if t.is_floating_point() and t.dtype not in TRITON_DTYPES:
            return f"supports float32/bfloat16/float16 tensors, got {t.dtype}"
        if not t.is_contiguous():
            return "needs contiguous tensors"
    return None


def _check_code(code: torch.Tensor, name: str = "code") -> None:
    if code.numel() != 256 or code.dtype != torch.float32:
        raise ValueError(
            f"{name} must be a float32 map of 256 values, got {code.numel()} values of {code.dtype}"
        )


def quantize_blockwise(
    x: torch.Tensor, code: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, absmax)``: uint8 nearest-map-value indices shaped like ``x``, float32 absmax per block."""
    reference._check_block_size(block_size)
    if not x.is_floating_point():
        raise ValueError(f"quantize_blockwise needs a floating tensor, got dtype {x.dtype}")
    _check_code(code)
    device = common_device([x, code], "quantize_blockwise")
    if choose("quantize_blockwise", device, backend, _triton_problem(block_size, [x, code])) == "triton":
        from minidiff.kernels import _triton_quantization

        return _triton_quantization.quantize(x, code, block_size)
    return reference.quantize_blockwise(x, code, block_size)


def dequantize_blockwise(
    q: torch.Tensor,
    absmax: torch.Tensor,
    code: torch.Tensor,
    block_size: int = DEFAULT_BLOCK_SIZE,
    dtype: torch.dtype = torch.float32,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """N_b · Q[q] as a tensor of ``dtype`` shaped like ``q``."""
    reference._check_block_size(block_size)
    _check_code(code)
    if q.dtype != torch.uint8:
        raise ValueError(f"q must be uint8 indices, got dtype {q.dtype}")
    if absmax.numel() != num_blocks(q.numel(), block_size) or absmax.dtype != torch.float32:
        raise ValueError(
            f"absmax must be float32 with one value per block ({num_blocks(q.numel(), block_size)}), got "
            f"{absmax.numel()} values of {absmax.dtype}"
        )
    device = common_device([q, absmax, code], "dequantize_blockwise")
    probe = [q, absmax, torch.empty(0, dtype=dtype)]
    if choose("dequantize_blockwise", device, backend, _triton_problem(block_size, probe)) == "triton":
        from minidiff.kernels import _triton_quantization

        return _triton_quantization.dequantize(q, absmax, code, block_size, dtype)
    return reference.dequantize_blockwise(q, absmax, code, block_size, dtype)


def _check_state(
    kernel: str, param: torch.Tensor, grad: torch.Tensor, pairs, block_size: int
) -> torch.device:
    reference._check_block_size(block_size)
    if not param.is_floating_point() or not grad.is_floating_point():
        raise ValueError(
            f"{kernel}: param and grad must be floating tensors, got {param.dtype} and {grad.dtype}"
        )
    if grad.shape != param.shape:
        raise ValueError(f"{kernel}: grad has shape {tuple(grad.shape)}, expected {tuple(param.shape)}")
    for i, (q, absmax, code) in enumerate(pairs, start=1):
        if q.dtype != torch.uint8 or q.numel() != param.numel():
            raise ValueError(
                f"{kernel}: state{i} must be uint8 with {param.numel()} elements, got {q.dtype} {tuple(q.shape)}"
            )
        if absmax.dtype != torch.float32 or absmax.numel() != num_blocks(param.numel(), block_size):
            raise ValueError(
                f"{kernel}: absmax{i} must be float32 with {num_blocks(param.numel(), block_size)} values "
                f"(block_size={block_size}), got {absmax.numel()} of {absmax.dtype}"
            )
        _check_code(code, f"qmap{i}")
    return common_device([param, grad, *(t for pair in pairs for t in pair)], kernel)


def adam8bit_step_(
    param: torch.Tensor,
    grad: torch.Tensor,
    state1: torch.Tensor,
    absmax1: torch.Tensor,
    qmap1: torch.Tensor,
    state2: torch.Tensor,
    absmax2: torch.Tensor,
    qmap2: torch.Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str | None = None,
) -> None:
    """One AdamW step with block-wise 8-bit m (``state1``, signed map) and v (``state2``, unsigned map), in place."""
    pairs = [(state1, absmax1, qmap1), (state2, absmax2, qmap2)]
    device = _check_state("adam8bit_step_", param, grad, pairs, block_size)
    bias1, bias2 = 1.0 - beta1**step, 1.0 - beta2**step
    problem = _triton_problem(block_size, [param, grad, state1, state2])
    if choose("adam8bit_step_", device, backend, problem) == "triton":
        from minidiff.kernels import _triton_quantization

        _triton_quantization.adam8bit(
            param, grad, state1, absmax1, qmap1, state2, absmax2, qmap2, lr, beta1, beta2, eps, weight_decay,
            bias1, bias2, block_size,
        )  # fmt: skip
        return
    m = reference.dequantize_blockwise(state1, absmax1, qmap1, block_size)
    v = reference.dequantize_blockwise(state2, absmax2, qmap2, block_size)
    g = grad.float()
    work = param.float() if param.dtype != torch.float32 else param
    work.mul_(1.0 - lr * weight_decay)
    m.mul_(beta1).add_(g, alpha=1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
    work.addcdiv_(m, denom, value=-lr / bias1)
    if work is not param:
        param.copy_(work)
    for (q, absmax, code), value in zip(pairs, (m, v)):
        new_q, new_absmax = reference.quantize_blockwise(value, code, block_size)
        q.copy_(new_q)
        absmax.copy_(new_absmax)


def lion8bit_step_(
    param: torch.Tensor,
    grad: torch.Tensor,
    state1: torch.Tensor,
    absmax1: torch.Tensor,
    qmap1: torch.Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str | None = None,
) -> None:
    """One Lion step with a block-wise 8-bit momentum (``state1``, signed map), in place."""
    device = _check_state("lion8bit_step_", param, grad, [(state1, absmax1, qmap1)], block_size)
    problem = _triton_problem(block_size, [param, grad, state1])
    if choose("lion8bit_step_", device, backend, problem) == "triton":
        from minidiff.kernels import _triton_quantization

        _triton_quantization.lion8bit(
            param, grad, state1, absmax1, qmap1, lr, beta1, beta2, weight_decay, block_size
        )
        return
    m = reference.dequantize_blockwise(state1, absmax1, qmap1, block_size)
    g = grad.float()
    work = param.float() if param.dtype != torch.float32 else param
    work.mul_(1.0 - lr * weight_decay)
    work.add_((beta1 * m + (1.0 - beta1) * g).sign_(), alpha=-lr)  # θ ← θ − η sign(β1 m + (1 − β1) g)
    m.mul_(beta2).add_(g, alpha=1.0 - beta2)
    if work is not param:
        param.copy_(work)
    new_q, new_absmax = reference.quantize_blockwise(m, qmap1, block_size)
    state1.copy_(new_q)
    absmax1.copy_(new_absmax)

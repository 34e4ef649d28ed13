r"""1-bit compression: pack signs into bits with one scale, and unpack (1-bit Adam, Tang et al., 2021,
arXiv 2102.02888).

The compressor of 1-bit Adam is :math:`C[x] = \frac{\|x\|_2}{\|\mathrm{sign}(x)\|_2}\,\mathrm{sign}(x) =
\mathrm{RMS}(x)\,\mathrm{sign}(x)`: it keeps the ℓ2 norm of x and one bit per coordinate. For transport, the bits
are packed eight to a byte:

- :func:`pack_signs` ``x [..., n] → (bits [..., ⌈n/8⌉] uint8, scale [...] float32)``, with
  ``scale = ‖x‖/√n`` over the last dimension (one scale per row: a worker compresses its whole tensor, a server
  each of its chunks);
- :func:`unpack_signs` ``(bits, scale, n) → [..., n]`` holding ±scale.

Conventions: element ``8i + j`` of a row is bit ``j`` (least significant first) of byte ``i``; a set bit means
``x ≥ 0``. So sign(0) = +1 (and −0.0 counts as 0), as in DeepSpeed's compressed all-reduce: every coordinate
carries ±scale, none is dropped. Padding bits of the last byte are 0. NaN packs as −1 (``NaN ≥ 0`` is false) and
makes the scale NaN.

Bad input: a non-floating ``x`` or a ``bits`` tensor that is not uint8 or too short raise ``ValueError``. The
Triton path takes float32/bfloat16/float16; float64 falls back to the torch reference (with a warning when
Triton was forced).
"""

from __future__ import annotations

import math

import torch

from minidiff.kernels._dispatch import choose

__all__ = ["pack_signs", "unpack_signs", "compress"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BIT_WEIGHTS = (1, 2, 4, 8, 16, 32, 64, 128)


def _problem(dtype: torch.dtype) -> str | None:
    return None if dtype in TRITON_DTYPES else f"supports float32/bfloat16/float16, got {dtype}"


def pack_signs(x: torch.Tensor, *, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bits, scale)``: signs of ``x`` packed along the last dim, and the RMS of each row (float32)."""
    if not x.is_floating_point():
        raise ValueError(f"pack_signs needs a floating tensor, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError("pack_signs needs at least one dimension, got a 0-dim tensor")
    if choose("pack_signs", x.device, backend, _problem(x.dtype)) == "triton":
        from minidiff.kernels import _triton_signs

        return _triton_signs.pack(x)
    n = x.shape[-1]
    scale = x.float().square().sum(-1).div(max(n, 1)).sqrt()  # ‖x‖ / √n
    bits = torch.nn.functional.pad((x >= 0).to(torch.uint8), (0, -n % 8))  # [..., 8⌈n/8⌉]
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=x.device)
    packed = (bits.view(*x.shape[:-1], -1, 8) * weights).sum(-1, dtype=torch.uint8)
    return packed, scale


def unpack_signs(
    bits: torch.Tensor,
    scale: torch.Tensor,
    n: int,
    dtype: torch.dtype = torch.float32,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """``[..., n]`` tensor of ``dtype`` holding ``+scale`` where the packed bit is set and ``−scale`` elsewhere."""
    if bits.dtype != torch.uint8:
        raise ValueError(f"bits must be uint8, got dtype {bits.dtype}")
    if not isinstance(n, int) or n < 0 or bits.ndim == 0 or bits.shape[-1] != math.ceil(n / 8):
        raise ValueError(
            f"bits must have ceil(n/8) bytes in its last dim for n={n!r}, got shape {tuple(bits.shape)}"
        )
    scale = torch.as_tensor(scale, dtype=torch.float32, device=bits.device)
    if scale.shape != bits.shape[:-1]:
        raise ValueError(
            f"scale must have shape {tuple(bits.shape[:-1])} (one per row), got {tuple(scale.shape)}"
        )
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating, got {dtype}")
    if choose("unpack_signs", bits.device, backend, _problem(dtype)) == "triton":
        from minidiff.kernels import _triton_signs

        return _triton_signs.unpack(bits, scale, n, dtype)
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    positive = ((bits[..., None] >> shifts) & 1).flatten(-2)[..., :n].bool()  # [..., n]
    s = scale[..., None]
    return torch.where(positive, s, -s).to(dtype)


def compress(x: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """C[x] = RMS(x)·sign(x) with sign(0) = +1 (row-wise over the last dim), in ``x``'s dtype: pack then unpack."""
    bits, scale = pack_signs(x, backend=backend)
    return unpack_signs(bits, scale, x.shape[-1], x.dtype, backend=backend)

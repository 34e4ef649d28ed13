r"""The Newton–Schulz orthogonalisation of Muon (Jordan et al., 2024, github.com/KellerJordan/Muon) as a kernel.

The readable specification is :func:`minidiff.optim.linalg.newton_schulz`: normalise
:math:`X_0 = G/(s\|G\|_F + ε)`, transpose a tall matrix, then ``steps`` times::

    A = X Xᵀ          (symmetric k×k, k = min(m, n))
    B = b A + c A²    (symmetric: a polynomial in A)
    X ← a X + B X

:func:`newton_schulz` here dispatches to that function or to Triton kernels that exploit the symmetry of A and B
(only the upper triangle of tiles is computed and mirrored) and fuse the ``b A`` and ``a X`` terms into the
matmul epilogues (:mod:`minidiff.kernels._triton_orthogonalize`).

Bad input: fewer than 2 dims raises ``ValueError`` (as the reference does); a working ``dtype`` other than
float32/bfloat16/float16 (float64, used by exact tests) runs the torch reference, with a warning when Triton was
forced.
"""

from __future__ import annotations

import torch

from minidiff.kernels._dispatch import choose
from minidiff.optim import linalg

__all__ = ["newton_schulz"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def newton_schulz(
    G: torch.Tensor,
    steps: int = 5,
    coefficients: linalg.Coefficients = "muon",
    dtype: torch.dtype = torch.bfloat16,
    eps: float = 1e-7,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """≈ polar(G) by ``steps`` odd-polynomial iterations, in ``dtype``; batched over leading dims."""
    if G.ndim < 2:
        raise ValueError(f"newton_schulz needs a matrix [..., m, n], got shape {tuple(G.shape)}")
    if not G.is_floating_point():
        raise ValueError(f"newton_schulz needs a floating tensor, got dtype {G.dtype}")
    linalg.coefficient_schedule(coefficients, steps)  # validates before any dispatch
    problem = (
        None if dtype in TRITON_DTYPES else f"supports float32/bfloat16/float16 work dtypes, got {dtype}"
    )
    if G.numel() == 0:
        problem = "has nothing to do for an empty matrix"
    if choose("newton_schulz", G.device, backend, problem) == "triton":
        from minidiff.kernels import _triton_orthogonalize

        return _triton_orthogonalize.newton_schulz(G, steps, coefficients, dtype, eps)
    return linalg.newton_schulz(G, steps, coefficients, dtype=dtype, eps=eps)

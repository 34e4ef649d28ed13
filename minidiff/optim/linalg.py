r"""Shared linear algebra of the matrix optimizers: odd-polynomial (Newton–Schulz) orthogonalisation, Polar
Express, QDWH, SVD references and inverse matrix roots.

**Polar factor.** For a thin SVD :math:`G = U\Sigma V^\top` the polar factor is :math:`\mathrm{polar}(G) = UV^\top`
and :math:`\langle G, \mathrm{polar}(G)\rangle = \mathrm{tr}\,\Sigma = \|G\|_*` (the nuclear norm). Muon and its
relatives update with (an approximation of) :math:`\mathrm{polar}(\text{momentum})`.

**Odd-polynomial iterations** (Muon; Jordan et al., 2024). Normalise :math:`X_0 = G / (s\|G\|_F + \varepsilon)`
(the Frobenius norm bounds the spectral norm, so every singular value lies in [0, 1]), transpose a tall matrix so
the Gram matrix is :math:`\min(m, n)^2`, then for :math:`k = 1..K`::

    A = X Xᵀ,   B = b_k A + c_k A²,   X ← a_k X + B X

Each step maps every singular value :math:`\sigma \mapsto p_k(\sigma) = a_k\sigma + b_k\sigma^3 + c_k\sigma^5` and keeps
the singular vectors, so :math:`\sigma_i(X_K) = p_K \circ \dots \circ p_1(\sigma_i(G)/(s\|G\|_F + \varepsilon))`.
:func:`scalar_map` computes that composed polynomial; the chapter plots it to show how singular values move.

Coefficient sets (:data:`COEFFICIENTS`; the last triple repeats when ``steps`` exceeds the list):

* ``"muon"`` (3.4445, −4.7750, 2.0315) ×5 in bf16 [KellerJordan/Muon]: maximises the slope at 0 (3.4445⁵ ≈ 485) and
  does *not* converge to 1 -- singular values end in a band ≈ [0.68, 1.13] (float64, inputs in [1e-2, 1]).
* ``"modded"``: the modded-nanogpt per-step schedule (heavyball, dion, pytorch-optimizer's ``quintic``).
* ``"polar_express"`` (Amsel, Persson, Musco & Gower, 2025, arXiv 2505.16932): per-step minimax-optimal
  polynomials; converges to 1. Safety as in the reference code [timlautk/polargrad:polar_express.py]: every triple
  but the last is divided by (1.01, 1.01³, 1.01⁵) and the input is normalised by 1.01‖G‖_F (``s = 1.01``).
* ``"cubic"`` (1.5, −0.5, 0): the classical Newton–Schulz iteration; converges to 1, slowly near 0.

Other libraries' "polar express" presets (dion, pytorch-optimizer) use other values; they are not interchangeable.

Conventions: ``eps`` is *added* to the norm as in KellerJordan/Muon; ``torch.optim.Muon`` clamps the norm at
``eps`` instead, which is the same number in bf16 for any norm above ~1e-5. The iteration runs in ``dtype``
(bfloat16 by default, like the references) and returns a tensor of that dtype; tests pass ``torch.float64``.

**QDWH** (Nakatsukasa, Bai & Gygi, 2010): dynamically weighted Halley iterations, QR-based while the weight c is
large and Cholesky-based afterwards, then one cubic Newton–Schulz clean-up step, following the JAX port in
[timlautk/polargrad:qdwh.py]. Needs QR/Cholesky, so float32 or float64 only. The lower bound ℓ₀ on σ_min starts at
the machine epsilon of the working dtype, so the number of iterations depends on the dtype (≤ 6 in float64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "COEFFICIENTS",
    "POLAR_EXPRESS_SAFETY",
    "coefficient_schedule",
    "newton_schulz",
    "scalar_map",
    "polar_express",
    "polar_qdwh",
    "polar_svd",
    "nuclear_norm",
    "polar",
    "POLAR_METHODS",
    "matrix_inverse_root",
]

Triple = tuple[float, float, float]

POLAR_EXPRESS_SAFETY = 1.01

_POLAR_EXPRESS_RAW: tuple[Triple, ...] = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)

COEFFICIENTS: dict[str, tuple[Triple, ...]] = {
    "cubic": ((1.5, -0.5, 0.0),),
    "muon": ((3.4445, -4.7750, 2.0315),),
    "modded": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    "polar_express": tuple(
        (a / POLAR_EXPRESS_SAFETY, b / POLAR_EXPRESS_SAFETY**3, c / POLAR_EXPRESS_SAFETY**5)
        for a, b, c in _POLAR_EXPRESS_RAW[:-1]
    )
    + _POLAR_EXPRESS_RAW[-1:],
}

# Input normalisation X0 = G / (scale·‖G‖_F + eps): only Polar Express uses a safety factor.
_NORM_SCALE = {"polar_express": POLAR_EXPRESS_SAFETY}

Coefficients = str | Sequence[float] | Sequence[Sequence[float]]


def coefficient_schedule(coefficients: Coefficients, steps: int) -> tuple[list[Triple], float]:
    """The ``steps`` triples (a, b, c) to apply and the input-norm scale s of ``coefficients``.

    ``coefficients`` is a name from :data:`COEFFICIENTS`, one triple, or a list of triples; the last triple
    repeats when ``steps`` is longer than the list. Custom coefficients use s = 1.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if isinstance(coefficients, str):
        if coefficients not in COEFFICIENTS:
            raise ValueError(
                f"coefficients must be one of {sorted(COEFFICIENTS)} or a list of (a, b, c), got {coefficients!r}"
            )
        table, scale = list(COEFFICIENTS[coefficients]), _NORM_SCALE.get(coefficients, 1.0)
    else:
        items = list(coefficients)
        if items and all(isinstance(x, (int, float)) for x in items):
            items = [items]
        try:
            table = [tuple(float(v) for v in t) for t in items]
        except TypeError:
            table = []
        if not table or any(len(t) != 3 for t in table):
            raise ValueError(
                f"coefficients must be a name or a non-empty list of (a, b, c) triples, got {coefficients!r}"
            )
        scale = 1.0
    return [table[min(k, len(table) - 1)] for k in range(steps)], scale


def newton_schulz(
    G: torch.Tensor,
    steps: int = 5,
    coefficients: Coefficients = "muon",
    dtype: torch.dtype = torch.bfloat16,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Approximate ``polar(G)`` by ``steps`` odd-polynomial iterations; batched over leading dims.

    Returns a tensor of ``dtype`` (the working precision) with the shape of ``G`` ``[..., m, n]``.
    """
    if G.ndim < 2:
        raise ValueError(f"newton_schulz needs a matrix [..., m, n], got shape {tuple(G.shape)}")
    schedule, scale = coefficient_schedule(coefficients, steps)
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    norm = X.norm(dim=(-2, -1), keepdim=True)
    X = X / ((norm * scale if scale != 1.0 else norm) + eps)
    batch_shape = X.shape[:-2]
    if X.ndim > 3:
        X = X.reshape(-1, *X.shape[-2:])
    gram_update = torch.baddbmm if X.ndim == 3 else torch.addmm
    for a, b, c in schedule:
        A = X @ X.mT  # [.., k, k], k = min(m, n)
        B = gram_update(A, A, A, beta=b, alpha=c) if c != 0.0 else b * A
        X = gram_update(X, B, X, beta=a)
    X = X.reshape(*batch_shape, *X.shape[-2:])
    return X.mT if tall else X


def scalar_map(
    sigmas: torch.Tensor | Sequence[float] | float,
    coefficients: Coefficients = "muon",
    steps: int = 5,
    *,
    normalize: bool = False,
    eps: float = 1e-7,
) -> torch.Tensor:
    """The composed odd polynomial p_K ∘ … ∘ p_1 applied to singular values (float64).

    With ``normalize=True`` the inputs are first divided by ``s·sqrt(Σσ²) + eps`` -- the Frobenius norm of a
    matrix with these singular values -- exactly as :func:`newton_schulz` normalises, so
    ``svdvals(newton_schulz(G)) == scalar_map(svdvals(G), normalize=True)`` in exact arithmetic.
    """
    schedule, scale = coefficient_schedule(coefficients, steps)
    s = torch.as_tensor(sigmas, dtype=torch.float64).clone()
    if normalize:
        s = s / (scale * s.square().sum().sqrt() + eps)
    for a, b, c in schedule:
        s2 = s * s
        s = s * (a + s2 * (b + c * s2))
    return s


def polar_express(G: torch.Tensor, steps: int = 8, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Polar Express (with its 1.01 safety factor): :func:`newton_schulz` with ``coefficients="polar_express"``."""
    return newton_schulz(G, steps=steps, coefficients="polar_express", dtype=dtype)


def _working_dtype(G: torch.Tensor, dtype: torch.dtype | None, what: str) -> torch.dtype:
    dtype = dtype or (torch.float64 if G.dtype == torch.float64 else torch.float32)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{what} needs dtype float32 or float64 (QR/Cholesky), got {dtype}")
    return dtype


def _qdwh_weights(ell: float) -> tuple[float, float, float, float]:
    """Halley weights (a, b, c) for the current lower bound ℓ on σ_min, and the next bound."""
    l2 = ell * ell
    d = (4.0 * (1.0 / l2 - 1.0) / l2) ** (1.0 / 3.0)
    sqd = math.sqrt(1.0 + d)
    a = sqd + math.sqrt(max(0.0, 2.0 - d + 2.0 * (2.0 - l2) / (l2 * sqd)))
    b = (a - 1.0) ** 2 / 4.0
    c = a + b - 1.0
    return a, b, c, ell * (a + b * l2) / (1.0 + c * l2)


def polar_qdwh(G: torch.Tensor, steps: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Polar factor by QDWH; batched. ``steps=None`` iterates to convergence (at most 12 iterations).

    ``dtype`` defaults to float64 for float64 input and float32 otherwise; the result has that dtype.
    """
    if G.ndim < 2:
        raise ValueError(f"polar_qdwh needs a matrix [..., m, n], got shape {tuple(G.shape)}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be None or a positive int, got {steps!r}")
    dtype = _working_dtype(G, dtype, "polar_qdwh")
    wide = G.size(-2) < G.size(-1)
    X = G.to(dtype)
    X = X.mT if wide else X  # tall: the Gram / Cholesky factor is n×n with n = min(m, n)
    n = X.size(-1)
    eye = torch.eye(n, dtype=dtype, device=X.device)
    # alpha = sqrt(‖X‖₁‖X‖_∞) ≥ σ_max, so X/alpha has σ ≤ 1.
    alpha = (torch.linalg.matrix_norm(X, ord=1) * torch.linalg.matrix_norm(X, ord=float("inf"))).sqrt()
    X = X / torch.where(alpha > 0, alpha, torch.ones_like(alpha))[..., None, None]
    eps = torch.finfo(dtype).eps
    ell, tol_ell, tol_step = eps, 5.0 * eps, (5.0 * eps) ** (1.0 / 3.0)
    max_iters = steps if steps is not None else 12
    for _ in range(max_iters):
        if ell + tol_ell < 1.0:
            a, b, c, ell = _qdwh_weights(ell)
        else:
            a, b, c = 3.0, 1.0, 3.0  # ℓ ≈ 1: plain Halley
        e = b / c
        if c > 100.0:  # QR form: X ← e X + (a − e)/√c · Q1 Q2ᵀ with [√c X; I] = [Q1; Q2] R
            Q, _ = torch.linalg.qr(torch.cat([math.sqrt(c) * X, eye.expand(*X.shape[:-2], n, n)], dim=-2))
            X_new = e * X + (a - e) / math.sqrt(c) * (Q[..., :-n, :] @ Q[..., -n:, :].mT)
        else:  # Cholesky form: X ← e X + (a − e) X (I + c XᵀX)⁻¹
            L = torch.linalg.cholesky(eye + c * (X.mT @ X))
            X_new = e * X + (a - e) * torch.cholesky_solve(X.mT, L).mT
        converged = steps is None and ell + tol_ell >= 1.0 and float((X_new - X).norm()) <= tol_step
        X = X_new
        if converged:
            break
    X = 1.5 * X - 0.5 * X @ (X.mT @ X)  # one cubic Newton–Schulz clean-up
    return X.mT if wide else X


def polar_svd(G: torch.Tensor) -> torch.Tensor:
    """Reference polar factor ``U Vᵀ`` from a float64 thin SVD, returned in ``G``'s dtype."""
    U, _, Vh = torch.linalg.svd(G.to(torch.float64), full_matrices=False)
    return (U @ Vh).to(G.dtype)


def nuclear_norm(G: torch.Tensor) -> torch.Tensor:
    """‖G‖_* = Σσ_i, from float64 singular values, returned in ``G``'s dtype (batched over leading dims)."""
    return torch.linalg.svdvals(G.to(torch.float64)).sum(-1).to(G.dtype)


POLAR_METHODS = ("qdwh", "svd", "polar_express", "newton_schulz")


def polar(G: torch.Tensor, method: str = "qdwh", steps: int | None = None) -> torch.Tensor:
    """Polar factor of ``G`` by ``method`` in ``POLAR_METHODS``, returned in ``G``'s dtype.

    ``qdwh`` and ``svd`` are accurate; ``polar_express`` (default 8 steps) and ``newton_schulz`` (Muon's quintic,
    default 5 steps, does not converge) run in float32 -- or float64 for float64 input.
    """
    if method == "qdwh":
        U = polar_qdwh(G, steps=steps)
    elif method == "svd":
        return polar_svd(G)
    elif method in ("polar_express", "newton_schulz"):
        dtype = torch.float64 if G.dtype == torch.float64 else torch.float32
        coefficients = "polar_express" if method == "polar_express" else "muon"
        U = newton_schulz(
            G, steps=steps or (8 if method == "polar_express" else 5), coefficients=coefficients, dtype=dtype
        )
    else:
        raise ValueError(f"method must be one of {POLAR_METHODS}, got {method!r}")
    return U.to(G.dtype)


def matrix_inverse_root(A: torch.Tensor, root: float, eps: float = 0.0) -> torch.Tensor:
    """(A + εI)^{-1/root} of a symmetric positive semi-definite ``A`` (batched) by an eigendecomposition.

    Works in float64 for float64 input and float32 otherwise, and returns ``A``'s dtype. Eigenvalues are floored at
    machine-epsilon × λ_max, so round-off in a (near-)singular ``A`` never produces NaN or huge roots.
    """
    if A.ndim < 2 or A.size(-1) != A.size(-2):
        raise ValueError(f"matrix_inverse_root needs square matrices [..., n, n], got shape {tuple(A.shape)}")
    if not root > 0:
        raise ValueError(f"root must be positive, got {root!r}")
    dtype = torch.float64 if A.dtype == torch.float64 else torch.float32
    S = A.to(dtype)
    evals, evecs = torch.linalg.eigh((S + S.mT) / 2)
    # Round-off makes eigenvalues of a singular PSD matrix slightly negative: floor them at eps·λ_max.
    floor = (evals.abs().amax(-1, keepdim=True) * torch.finfo(dtype).eps).clamp_min(torch.finfo(dtype).tiny)
    evals = torch.maximum(evals + eps, floor)
    return ((evecs * evals.pow(-1.0 / root).unsqueeze(-2)) @ evecs.mT).to(A.dtype)

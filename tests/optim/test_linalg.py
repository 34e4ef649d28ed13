"""Specifications of minidiff.optim.linalg: Newton–Schulz, Polar Express, QDWH, SVD references."""

from __future__ import annotations

import math

import pytest
import torch

from minidiff.optim.linalg import (
    COEFFICIENTS,
    POLAR_EXPRESS_SAFETY,
    coefficient_schedule,
    matrix_inverse_root,
    newton_schulz,
    nuclear_norm,
    polar,
    polar_express,
    polar_qdwh,
    polar_svd,
    scalar_map,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and a busy 2-core machine makes thread hand-offs slow."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def with_spectrum(m: int, n: int, sigmas: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """U diag(sigmas) Vᵀ with random orthonormal U [m, k], V [n, k], k = len(sigmas)."""
    k = len(sigmas)
    U = torch.linalg.qr(torch.randn(m, k, generator=gen, dtype=F64))[0]
    V = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=F64))[0]
    return U @ torch.diag(sigmas.to(F64)) @ V.T


def orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))[0]


@pytest.mark.parametrize("coefficients", sorted(COEFFICIENTS))
@pytest.mark.parametrize("shape", [(40, 24), (24, 40)])
def test_newton_schulz_singular_values_follow_the_composed_scalar_polynomial(coefficients, shape, gen):
    G = torch.randn(*shape, generator=gen, dtype=F64)
    got = torch.linalg.svdvals(newton_schulz(G, 5, coefficients, dtype=F64))
    # the maps are not monotone on [0, 1], so compare sorted values
    expected = (
        scalar_map(torch.linalg.svdvals(G), coefficients, 5, normalize=True).sort(descending=True).values
    )
    assert (got - expected).abs().max() < 1e-10


def test_muon_quintic_band_on_a_logspace_spectrum(gen):
    G = with_spectrum(64, 32, torch.logspace(0, -1.5, 32, dtype=F64), gen).float()
    s32 = torch.linalg.svdvals(newton_schulz(G, 5, "muon", dtype=torch.float32).double())
    s16 = torch.linalg.svdvals(newton_schulz(G, 5, "muon", dtype=torch.bfloat16).double())
    assert s32.min() >= 0.68 and s32.max() <= 1.14
    assert s16.min() >= 0.68 - 0.03 and s16.max() <= 1.14 + 0.03


@pytest.mark.parametrize(
    ("coefficients", "steps", "ell", "low", "high"),
    [
        ("muon", 5, 1e-2, 0.682, 1.134),
        ("muon", 5, 1e-3, 0.470, 1.202),
        ("modded", 5, 1e-2, 0.978, 1.032),
        ("polar_express", 6, 1e-3, 0.9935, 1.0012),
        ("cubic", 20, 1e-2, 0.9999, 1.0),
    ],
)
def test_scalar_map_bands_match_the_notes_table(coefficients, steps, ell, low, high):
    s = scalar_map(torch.logspace(math.log10(ell), 0, 20001, dtype=F64), coefficients, steps)
    assert s.min() == pytest.approx(low, abs=2e-3) and s.max() == pytest.approx(high, abs=2e-3)


def test_polar_express_applies_the_safety_factor_except_on_the_last_triple():
    table = COEFFICIENTS["polar_express"]
    assert table[0] == pytest.approx(
        (8.28721201814563 / 1.01, -23.595886519098837 / 1.01**3, 17.300387312530933 / 1.01**5)
    )
    assert table[-1] == (1.875, -1.25, 0.375)
    schedule, scale = coefficient_schedule("polar_express", 10)
    assert scale == POLAR_EXPRESS_SAFETY and schedule[9] == (1.875, -1.25, 0.375)


def test_newton_schulz_commutes_with_transposition(gen):
    G = torch.randn(30, 18, generator=gen, dtype=F64)
    assert torch.allclose(newton_schulz(G.T, dtype=F64), newton_schulz(G, dtype=F64).T, atol=1e-12)


def test_newton_schulz_is_orthogonally_equivariant(gen):
    G = torch.randn(30, 18, generator=gen, dtype=F64)
    Q, R = orthogonal(30, gen), orthogonal(18, gen)
    assert torch.allclose(
        newton_schulz(Q @ G @ R, dtype=F64), Q @ newton_schulz(G, dtype=F64) @ R, atol=1e-11
    )


def test_newton_schulz_is_batched_over_leading_dims(gen):
    G = torch.randn(2, 3, 12, 20, generator=gen, dtype=F64)
    batched = newton_schulz(G, dtype=F64)
    assert torch.allclose(batched[1, 2], newton_schulz(G[1, 2], dtype=F64), atol=1e-13)


def test_newton_schulz_in_bf16_is_bit_identical_to_torch_muon_iteration(gen):
    muon = pytest.importorskip("torch.optim._muon")
    reference = getattr(muon, "_zeropower_via_newtonschulz", None)
    if reference is None:
        pytest.skip("torch.optim._muon has no _zeropower_via_newtonschulz")
    for shape in [(64, 32), (32, 64), (48, 48)]:
        G = torch.randn(*shape, generator=gen)
        assert torch.equal(newton_schulz(G), reference(G, (3.4445, -4.7750, 2.0315), 5, 1e-7))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 20, 12)])
def test_qdwh_matches_the_svd_polar_factor_in_float64(shape, gen):
    G = torch.randn(*shape, generator=gen, dtype=F64)
    assert (polar_qdwh(G) - polar_svd(G)).abs().max() < 1e-12
    assert (polar_qdwh(G, steps=5) - polar_svd(G)).abs().max() < 1e-12


def test_qdwh_two_steps_under_converge_as_the_notes_warn(gen):
    G = torch.randn(64, 32, generator=gen, dtype=F64)
    assert (polar_qdwh(G, steps=2) - polar_svd(G)).norm() / math.sqrt(32) > 0.05


def test_qdwh_in_float32(gen):
    G = torch.randn(64, 32, generator=gen)
    assert (polar_qdwh(G).double() - polar_svd(G.double())).abs().max() < 1e-5


def test_polar_express_eight_steps_reaches_the_polar_factor_in_float32(gen):
    G = with_spectrum(64, 32, torch.linspace(1.0, 0.1, 32, dtype=F64), gen)
    assert (polar_express(G.float(), 8).double() - polar_svd(G)).abs().max() < 1e-3


@pytest.mark.parametrize("method", ["qdwh", "svd", "polar_express"])
def test_nuclear_norm_is_the_inner_product_with_the_polar_factor(method, gen):
    G = torch.randn(20, 12, generator=gen, dtype=F64)
    tol = 1e-10 if method != "polar_express" else 1e-6
    assert float((G * polar(G, method)).sum()) == pytest.approx(float(nuclear_norm(G)), rel=tol)


def test_matrix_inverse_root_inverts_the_power(gen):
    X = torch.randn(30, 8, generator=gen, dtype=F64)
    A = X.T @ X
    root = matrix_inverse_root(A, 2)
    assert torch.allclose(root @ A @ root, torch.eye(8, dtype=F64), atol=1e-10)
    assert torch.allclose(matrix_inverse_root(A, 4) @ matrix_inverse_root(A, 4), root, atol=1e-10)


def test_invalid_coefficients_and_inputs_raise_value_errors_naming_them(gen):
    with pytest.raises(ValueError, match="coefficients"):
        newton_schulz(torch.randn(4, 3), coefficients="nope")
    with pytest.raises(ValueError, match="coefficients"):
        coefficient_schedule([(1.0, 2.0)], 3)
    with pytest.raises(ValueError, match="steps"):
        coefficient_schedule("muon", -1)
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.randn(4))
    with pytest.raises(ValueError, match="dtype"):
        polar_qdwh(torch.randn(4, 3), dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="method"):
        polar(torch.randn(4, 3), "magic")

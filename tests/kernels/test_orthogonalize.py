"""Newton–Schulz: the Triton kernels (symmetric Gram products, fused epilogues) against minidiff.optim.linalg."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import kernels
from minidiff.kernels import KernelFallbackWarning
from minidiff.optim import linalg

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True)


@pytest.mark.triton
@SETTINGS
@given(m=st.integers(1, 70), n=st.integers(1, 70), batch=st.sampled_from([(), (2,)]),
       coefficients=st.sampled_from(["muon", "polar_express", "cubic"]))  # fmt: skip
def test_kernel_matches_reference_in_float32(m, n, batch, coefficients, device):
    G = torch.randn(*batch, m, n, generator=torch.Generator().manual_seed(m * 71 + n)).to(device)
    out = kernels.newton_schulz(G, 3, coefficients, dtype=torch.float32, backend="triton")
    ref = kernels.newton_schulz(G, 3, coefficients, dtype=torch.float32, backend="torch")
    assert out.shape == G.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-5)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_kernel_matches_reference_in_half_precision(dtype, device):
    G = torch.randn(40, 72, generator=torch.Generator().manual_seed(0)).to(device)
    out = kernels.newton_schulz(G, 5, dtype=dtype, backend="triton").float()
    ref = linalg.newton_schulz(G, 5, dtype=dtype).float()
    # Different accumulation orders and roundings of 5 chained half-precision products: compare like the Muon peers
    cosine = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert cosine > 0.999
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.03)


@pytest.mark.triton
def test_kernel_output_has_muon_singular_values(device):
    """The polynomial maps singular values into Muon's band (float32, well-conditioned input)."""
    U, _ = torch.linalg.qr(torch.randn(48, 48, generator=torch.Generator().manual_seed(1)))
    V, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(2)))
    G = (U[:, :32] * torch.logspace(0, -1.5, 32)) @ V.T
    sigma = torch.linalg.svdvals(
        kernels.newton_schulz(G.to(device), 5, dtype=torch.float32, backend="triton").cpu()
    )
    assert sigma.min() > 0.6 and sigma.max() < 1.2


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match=r"matrix \[..., m, n\]"):
        kernels.newton_schulz(torch.randn(5))
    with pytest.raises(ValueError, match="floating"):
        kernels.newton_schulz(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="coefficients"):
        kernels.newton_schulz(torch.randn(3, 3), coefficients="quartic")


@pytest.mark.triton
def test_float64_work_dtype_falls_back_to_the_reference_with_a_warning(device):
    G = torch.randn(6, 9, dtype=torch.float64, device=device)
    with pytest.warns(KernelFallbackWarning, match="float64"):
        out = kernels.newton_schulz(G, 5, dtype=torch.float64, backend="triton")
    assert torch.equal(out, linalg.newton_schulz(G, 5, dtype=torch.float64))

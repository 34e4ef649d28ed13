"""1-bit sign packing: the paper's test vector, exact bits, the kernel against the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import kernels
from minidiff.kernels import KernelFallbackWarning

from ._compare import assert_same_up_to_bf16_rounding

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_compression_of_the_notes_vector(backend, device):
    """C[[3, −4, 0, 0]] = RMS·sign = [2.5, −2.5, 2.5, 2.5] (sign(0) = +1); the error is [0.5, −1.5, −2.5, −2.5]."""
    x = torch.tensor([3.0, -4.0, 0.0, 0.0], device=device)
    c = kernels.compress(x, backend=backend)
    assert c.tolist() == [2.5, -2.5, 2.5, 2.5]
    assert (x - c).tolist() == [0.5, -1.5, -2.5, -2.5]
    assert torch.linalg.vector_norm(c).item() == pytest.approx(5.0)  # the norm is preserved


def test_bit_layout_is_least_significant_first():
    x = torch.tensor([1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -0.0, 2.0])
    bits, scale = kernels.pack_signs(x, backend="torch")
    assert bits.tolist() == [0b00000001, 0b00000011]  # −0.0 counts as 0 → +1; padding bits are 0
    assert scale.item() == pytest.approx((x.square().mean()).sqrt().item())


@pytest.mark.triton
@SETTINGS
@given(rows=st.lists(st.integers(1, 3), max_size=2), n=st.integers(1, 40000),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))  # fmt: skip
def test_pack_and_unpack_kernels_match_the_reference(rows, n, dtype, device):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(*rows, n, generator=gen)
    x[torch.rand(x.shape, generator=gen) < 0.1] = 0.0
    x = x.to(device=device, dtype=dtype)
    bits, scale = kernels.pack_signs(x, backend="triton")
    bits_ref, scale_ref = kernels.pack_signs(x, backend="torch")
    assert torch.equal(bits, bits_ref)
    torch.testing.assert_close(scale, scale_ref, rtol=1e-5, atol=0)
    out = kernels.unpack_signs(bits, scale_ref, n, dtype, backend="triton")
    assert_same_up_to_bf16_rounding(out, kernels.unpack_signs(bits, scale_ref, n, dtype, backend="torch"))
    assert torch.equal(out >= 0, x >= 0)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="floating"):
        kernels.pack_signs(torch.arange(4))
    bits, scale = kernels.pack_signs(torch.randn(2, 9))
    with pytest.raises(ValueError, match="ceil"):
        kernels.unpack_signs(bits, scale, 17)
    with pytest.raises(ValueError, match="one per row"):
        kernels.unpack_signs(bits, scale[:1], 9)
    with pytest.raises(ValueError, match="uint8"):
        kernels.unpack_signs(bits.int(), scale, 9)


@pytest.mark.triton
def test_float64_falls_back_with_a_warning(device):
    x = torch.randn(20, dtype=torch.float64, device=device)
    with pytest.warns(KernelFallbackWarning, match="float64"):
        bits, scale = kernels.pack_signs(x, backend="triton")
    assert torch.equal(bits, kernels.pack_signs(x, backend="torch")[0])

"""Block-wise 8-bit quantisation kernels against the torch reference in minidiff.optim.quantize."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import kernels
from minidiff.kernels import KernelFallbackWarning
from minidiff.optim.quantize import create_dynamic_map, num_blocks

from ._compare import assert_same_up_to_bf16_rounding

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)
SIGNED, UNSIGNED = create_dynamic_map(signed=True), create_dynamic_map(signed=False)


def heavy_tailed(n: int, seed: int, device) -> torch.Tensor:
    """Values spanning many decades, as optimizer states do, with exact zeros sprinkled in."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen) * torch.exp(3 * torch.randn(n, generator=gen))
    x[torch.rand(n, generator=gen) < 0.05] = 0.0
    return x.to(device)


@pytest.mark.triton
@SETTINGS
@given(n=st.integers(1, 2500), block_size=st.sampled_from([32, 256, 2048]), signed=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))  # fmt: skip
def test_quantize_kernel_gives_the_reference_indices_and_absmax(n, block_size, signed, dtype, device):
    code = (SIGNED if signed else UNSIGNED).to(device)
    x = heavy_tailed(n, n, device)
    x = (x if signed else x.abs()).to(dtype)
    q, absmax = kernels.quantize_blockwise(x, code, block_size, backend="triton")
    q_ref, absmax_ref = kernels.quantize_blockwise(x, code, block_size, backend="torch")
    assert q.dtype == torch.uint8 and q.shape == x.shape and absmax.shape == (num_blocks(n, block_size),)
    assert torch.equal(q, q_ref) and torch.equal(absmax, absmax_ref)
    out = kernels.dequantize_blockwise(q, absmax, code, block_size, dtype, backend="triton")
    expected = kernels.dequantize_blockwise(q, absmax, code, block_size, dtype, backend="torch")
    assert_same_up_to_bf16_rounding(out, expected)


def _states(n, block_size, seed, device):
    m = heavy_tailed(n, seed, device) * 1e-3
    v = heavy_tailed(n, seed + 1, device).square() * 1e-6
    s1 = [*kernels.quantize_blockwise(m, SIGNED.to(device), block_size), SIGNED.to(device)]
    s2 = [*kernels.quantize_blockwise(v, UNSIGNED.to(device), block_size), UNSIGNED.to(device)]
    return s1, s2


def assert_indices_agree(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal, except that a value within float rounding of a decision boundary may land one index over."""
    diff = (a.int() - b.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 0.01


@pytest.mark.triton
@SETTINGS
@given(n=st.integers(1, 2500), block_size=st.sampled_from([32, 256, 2048]), step=st.integers(1, 30))
def test_adam8bit_kernel_matches_reference(n, block_size, step, device):
    gen = torch.Generator().manual_seed(n)
    p, g = torch.randn(n, generator=gen).to(device), torch.randn(n, generator=gen).to(device) * 1e-2
    s1, s2 = _states(n, block_size, n, device)
    ref = [p.clone(), g, *(t.clone() for t in s1 + s2)]
    hp = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, step=step, block_size=block_size)
    kernels.adam8bit_step_(*ref, backend="torch", **hp)
    kernels.adam8bit_step_(p, g, *s1, *s2, backend="triton", **hp)
    torch.testing.assert_close(p, ref[0], rtol=1e-5, atol=1e-6)
    assert_indices_agree(s1[0], ref[2])
    assert_indices_agree(s2[0], ref[5])
    torch.testing.assert_close(s1[1], ref[3], rtol=1e-6, atol=0)
    torch.testing.assert_close(s2[1], ref[6], rtol=1e-6, atol=0)


@pytest.mark.triton
@SETTINGS
@given(n=st.integers(1, 2500), block_size=st.sampled_from([32, 256, 2048]))
def test_lion8bit_kernel_matches_reference(n, block_size, device):
    gen = torch.Generator().manual_seed(n)
    p, g = torch.randn(n, generator=gen).to(device), torch.randn(n, generator=gen).to(device) * 1e-2
    s1, _ = _states(n, block_size, n, device)
    ref = [p.clone(), g, *(t.clone() for t in s1)]
    hp = dict(lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=0.1, block_size=block_size)
    kernels.lion8bit_step_(*ref, backend="torch", **hp)
    kernels.lion8bit_step_(p, g, *s1, backend="triton", **hp)
    torch.testing.assert_close(p, ref[0], rtol=1e-6, atol=1e-7)
    assert_indices_agree(s1[0], ref[2])


def test_block_size_and_inputs_are_validated():
    x = torch.randn(10)
    with pytest.raises(ValueError, match="block_size must be a positive int, got 0"):
        kernels.quantize_blockwise(x, SIGNED, 0)
    with pytest.raises(ValueError, match="floating tensor"):
        kernels.quantize_blockwise(torch.arange(10), SIGNED, 16)
    with pytest.raises(ValueError, match="256 values"):
        kernels.quantize_blockwise(x, SIGNED[:10], 16)
    q, absmax = kernels.quantize_blockwise(x, SIGNED, 4)
    with pytest.raises(ValueError, match="one value per block"):
        kernels.dequantize_blockwise(q, absmax[:1], SIGNED, 4)
    with pytest.raises(ValueError, match="uint8"):
        kernels.dequantize_blockwise(q.int(), absmax, SIGNED, 4)


@pytest.mark.triton
def test_non_power_of_two_block_falls_back_with_a_warning(device):
    x = heavy_tailed(100, 0, device)
    code = SIGNED.to(device)
    with pytest.warns(KernelFallbackWarning, match="power-of-two block_size"):
        q, absmax = kernels.quantize_blockwise(x, code, 24, backend="triton")
    q_ref, absmax_ref = kernels.quantize_blockwise(x, code, 24, backend="torch")
    assert torch.equal(q, q_ref) and torch.equal(absmax, absmax_ref)

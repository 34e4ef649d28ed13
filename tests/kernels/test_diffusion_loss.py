"""The masked-diffusion loss: equal to the NELBO's weighted CE, Triton forward and backward equal to the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import kernels
from minidiff.kernels import KernelFallbackWarning

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)


def problem(B, L, V, seed, device, dtype=torch.float32, mask_fraction=0.5):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, L, V, generator=gen)).to(device=device, dtype=dtype)
    targets = torch.randint(0, V - 1, (B, L), generator=gen).to(device)
    masked = (torch.rand(B, L, generator=gen) < mask_fraction).to(device)
    weights = (torch.rand(B, 1, generator=gen) * 5).to(device)
    return logits, targets, masked, weights


def test_reference_is_the_weighted_cross_entropy_at_masked_positions(gen):
    logits, targets, masked, weights = problem(2, 5, 7, 0, "cpu")
    mask_id = 6
    loss = kernels.masked_diffusion_loss(logits, targets, masked, weights, mask_id=mask_id, backend="torch")
    logp = logits.clone()
    logp[..., mask_id] = float("-inf")
    ce = -logp.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(loss, torch.where(masked, weights * ce, 0.0))


def test_reference_equals_the_masked_diffusion_nelbo_terms():
    from minidiff.diffusion.masked import MaskedDiffusion

    V, mask_id = 9, 8
    process = MaskedDiffusion(V, mask_id)
    logits, x0, masked, _ = problem(3, 6, V, 1, "cpu")
    t = torch.rand(3, generator=torch.Generator().manual_seed(2)).clamp_min(0.05)
    z_t = torch.where(masked, mask_id, x0)
    nelbo, ce = process._terms(logits, x0, z_t, t, None)
    ours, our_ce = kernels.masked_diffusion_loss(
        logits, x0, z_t == mask_id, process.weight(t)[:, None], mask_id=mask_id, return_ce=True
    )
    torch.testing.assert_close(ours, nelbo)
    torch.testing.assert_close(our_ce, ce)


@pytest.mark.triton
@SETTINGS
@given(B=st.integers(1, 3), L=st.integers(1, 9), V=st.integers(2, 300), use_mask_id=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))  # fmt: skip
def test_kernel_forward_and_backward_match_reference(B, L, V, use_mask_id, dtype, device):
    logits, targets, masked, weights = problem(B, L, V, B * 1000 + L * 10 + V, device, dtype)
    mask_id = V - 1 if use_mask_id else None
    results = {}  # (loss, ce, grad)
    for backend in ("torch", "triton"):
        x = logits.clone().requires_grad_()
        loss, ce = kernels.masked_diffusion_loss(
            x, targets, masked, weights, mask_id=mask_id, return_ce=True, backend=backend
        )
        (grad,) = torch.autograd.grad(loss.sum(), x) if masked.any() else (torch.zeros_like(x),)
        results[backend] = (loss, ce, grad)
    for ours, ref in zip(results["triton"][:2], results["torch"][:2]):  # float32 losses either way
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    # bf16 gradients: the interpreter rounds toward zero, so they may be one bf16 step apart
    if dtype == torch.float32:
        torch.testing.assert_close(results["triton"][2], results["torch"][2], rtol=1e-4, atol=1e-5)
    else:
        torch.testing.assert_close(
            results["triton"][2].float(), results["torch"][2].float(), rtol=2**-7, atol=1e-6
        )


@pytest.mark.triton
def test_kernel_handles_a_vocabulary_larger_than_one_block(device):
    """Several vocabulary chunks exercise the online log-sum-exp (block 4096 compiled, 65536 interpreted)."""
    logits, targets, masked, weights = problem(1, 3, 70000, 5, device, mask_fraction=1.0)
    ours = kernels.masked_diffusion_loss(logits, targets, masked, weights, backend="triton")
    ref = kernels.masked_diffusion_loss(logits, targets, masked, weights, backend="torch")
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_head_path_equals_full_logits_path(backend, device):
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 5, 8, generator=gen).to(device).requires_grad_()
    head = torch.randn(11, 8, generator=gen).to(device).requires_grad_()
    targets = torch.randint(0, 10, (2, 5), generator=gen).to(device)
    masked = (torch.rand(2, 5, generator=gen) < 0.6).to(device)
    ours = kernels.masked_diffusion_loss(
        hidden, targets, masked, 2.0, mask_id=10, head=head, reduction="sum", backend=backend
    )
    full = kernels.masked_diffusion_loss(
        hidden @ head.T, targets, masked, 2.0, mask_id=10, reduction="sum", backend="torch"
    )
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(ours, [hidden, head]), torch.autograd.grad(full, [hidden, head])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_value_error():
    logits, targets, masked, weights = problem(2, 3, 5, 0, "cpu")
    with pytest.raises(ValueError, match="masked must be a bool"):
        kernels.masked_diffusion_loss(logits, targets, masked.int(), weights)
    with pytest.raises(ValueError, match="targets"):
        kernels.masked_diffusion_loss(logits, targets[:, :2], masked, weights)
    with pytest.raises(ValueError, match="mask_id"):
        kernels.masked_diffusion_loss(logits, targets, masked, weights, mask_id=5)
    with pytest.raises(ValueError, match="reduction"):
        kernels.masked_diffusion_loss(logits, targets, masked, weights, reduction="mean")
    with pytest.raises(ValueError, match="broadcast"):
        kernels.masked_diffusion_loss(logits, targets, masked, torch.ones(4))


@pytest.mark.triton
def test_float64_logits_fall_back_with_a_warning(device):
    logits, targets, masked, weights = problem(2, 3, 5, 0, device, dtype=torch.float64, mask_fraction=1.0)
    with pytest.warns(KernelFallbackWarning, match="float64"):
        ours = kernels.masked_diffusion_loss(logits, targets, masked, weights, backend="triton")
    assert torch.equal(ours, kernels.masked_diffusion_loss(logits, targets, masked, weights, backend="torch"))

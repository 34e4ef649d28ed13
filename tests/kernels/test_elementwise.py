"""Fused Adam-family updates: the torch reference equals torch's optimizers; the Triton kernel equals the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import kernels
from minidiff.kernels import KernelFallbackWarning
from minidiff.optim.ademamix import AdEMAMix
from minidiff.optim.lion import Lion

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)
# Lists of 1-3 tensors whose sizes straddle the block (4096 in the interpreter, 1024 compiled).
SHAPES = st.lists(st.sampled_from([(1,), (7,), (33, 5), (1023,), (4097,), (3, 1500)]), min_size=1, max_size=3)
ADAM = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)


def tensors(shapes, gen, device, dtype=torch.float32, positive=False):
    out = [torch.randn(s, generator=gen) for s in shapes]
    return [(t.abs() if positive else t).to(device=device, dtype=dtype) for t in out]


def clone(ts):
    return None if ts is None else [t.clone() for t in ts]


def assert_lists_close(a, b, **tol):
    for x, y in zip(a, b):
        torch.testing.assert_close(x.float(), y.float(), **tol)


# --------------------------------------------------------------------------- references vs torch
def test_adam_reference_equals_torch_adamw_exactly(gen):
    params = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
    ours = [p.clone() for p in params]
    theirs = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.1, foreach=False)
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    for step in range(1, 6):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        kernels.adam_step_(ours, grads, m, v, step=step, backend="torch", **ADAM)
        for p, g in zip(theirs, grads):
            p.grad = g
        opt.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b.detach())


@pytest.mark.parametrize("cls, kwargs", [(Lion, dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)),
                                         (AdEMAMix, dict(lr=1e-2, alpha=5.0, weight_decay=0.1))])  # fmt: skip
def test_lion_and_ademamix_references_match_minidiff_optimizers(cls, kwargs, gen):
    params = [torch.randn(6, 4, generator=gen)]
    theirs = [torch.nn.Parameter(params[0].clone())]
    opt = cls(theirs, **kwargs)
    ours, m = [params[0].clone()], [torch.zeros(6, 4)]
    slow, v = [torch.zeros(6, 4)], [torch.zeros(6, 4)]
    for step in range(1, 5):
        grad = torch.randn(6, 4, generator=gen)
        theirs[0].grad = grad
        opt.step()
        if cls is Lion:
            kernels.lion_step_(
                ours, [grad], m, lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=0.1, backend="torch"
            )
        else:
            kernels.ademamix_step_(ours, [grad], m, slow, v, lr=1e-2, beta1=0.9, beta2=0.999, beta3=0.9999,
                                   alpha=5.0, eps=1e-8, weight_decay=0.1, step=step, backend="torch")  # fmt: skip
    torch.testing.assert_close(ours[0], theirs[0].detach(), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- Triton vs reference
@pytest.mark.triton
@SETTINGS
@given(shapes=SHAPES, low_precision=st.booleans(), step=st.integers(1, 50))
def test_adam_kernel_matches_reference(shapes, low_precision, step, device):
    gen = torch.Generator().manual_seed(len(shapes) * 100 + step)
    dtype = torch.bfloat16 if low_precision else torch.float32
    p, g = tensors(shapes, gen, device, dtype), tensors(shapes, gen, device, dtype)
    m, v = tensors(shapes, gen, device), tensors(shapes, gen, device, positive=True)
    ref = [clone(x) for x in (p, g, m, v)]
    kernels.adam_step_(*ref, step=step, backend="torch", **ADAM)
    kernels.adam_step_(p, g, m, v, step=step, backend="triton", **ADAM)
    tol = dict(rtol=1e-2, atol=1e-2) if low_precision else dict(rtol=1e-5, atol=1e-6)
    assert_lists_close(p, ref[0], **tol)  # bf16: at most one rounding step apart
    assert_lists_close(m, ref[2], rtol=1e-5, atol=1e-6)
    assert_lists_close(v, ref[3], rtol=1e-5, atol=1e-6)


@pytest.mark.triton
@SETTINGS
@given(shapes=SHAPES, weight_decay=st.sampled_from([0.0, 0.1]))
def test_lion_kernel_matches_reference(shapes, weight_decay, device):
    gen = torch.Generator().manual_seed(len(shapes))
    p, g, m = (tensors(shapes, gen, device) for _ in range(3))
    g[0].view(-1)[0] = 0.0
    m[0].view(-1)[0] = 0.0  # c = 0 exactly: sign(0) = 0 must leave the coordinate alone in both
    ref = [clone(x) for x in (p, g, m)]
    hp = dict(lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=weight_decay)
    kernels.lion_step_(*ref, backend="torch", **hp)
    kernels.lion_step_(p, g, m, backend="triton", **hp)
    assert_lists_close(p, ref[0], rtol=1e-6, atol=1e-7)
    assert_lists_close(m, ref[2], rtol=1e-6, atol=1e-7)


@pytest.mark.triton
@SETTINGS
@given(shapes=SHAPES, beta1=st.sampled_from([0.0, 0.9]), step=st.integers(1, 20))
def test_ademamix_kernel_matches_reference(shapes, beta1, step, device):
    gen = torch.Generator().manual_seed(step)
    p, g, slow = (tensors(shapes, gen, device) for _ in range(3))
    v = tensors(shapes, gen, device, positive=True)
    fast = tensors(shapes, gen, device) if beta1 else None
    ref = [clone(x) for x in (p, g, fast, slow, v)]
    hp = dict(
        lr=1e-2, beta1=beta1, beta2=0.999, beta3=0.9999, alpha=5.0, eps=1e-8, weight_decay=0.1, step=step
    )
    kernels.ademamix_step_(*ref, backend="torch", **hp)
    kernels.ademamix_step_(p, g, fast, slow, v, backend="triton", **hp)
    for ours, theirs in [(p, ref[0]), (slow, ref[3]), (v, ref[4])] + ([(fast, ref[2])] if beta1 else []):
        assert_lists_close(ours, theirs, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad input
def test_mismatched_lists_and_shapes_raise_value_error():
    a, b = torch.zeros(3), torch.zeros(4)
    with pytest.raises(ValueError, match="equal lengths"):
        kernels.lion_step_([a], [a, a], [a], lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.0)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(4,\), expected \(3,\)"):
        kernels.lion_step_([a], [b], [a], lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.0)


def test_integer_tensors_raise_value_error():
    p = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"params\[0\] must be a floating tensor"):
        kernels.lion_step_([p], [p], [p], lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.0)


@pytest.mark.triton
def test_float64_falls_back_to_the_reference_with_a_warning(device, gen):
    p, g = (torch.randn(10, generator=gen, dtype=torch.float64).to(device) for _ in range(2))
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    expected = [[x.clone()] for x in (p, g, m, v)]
    kernels.adam_step_(*expected, step=1, backend="torch", **ADAM)
    with pytest.warns(KernelFallbackWarning, match="float64"):
        kernels.adam_step_([p], [g], [m], [v], step=1, backend="triton", **ADAM)
    assert torch.equal(p, expected[0][0]) and torch.equal(v, expected[3][0])


@pytest.mark.triton
def test_non_contiguous_tensors_fall_back_with_a_warning(device, gen):
    p = torch.randn(6, 4, generator=gen, device=device).t()  # a strided view
    g, m, v = (
        torch.randn(4, 6, generator=gen, device=device),
        torch.zeros(4, 6, device=device),
        torch.zeros(4, 6, device=device),
    )
    expected = p.clone()
    kernels.adam_step_([expected], [g], [m.clone()], [v.clone()], step=1, backend="torch", **ADAM)
    with pytest.warns(KernelFallbackWarning, match="contiguous"):
        kernels.adam_step_([p], [g], [m], [v], step=1, backend="triton", **ADAM)
    torch.testing.assert_close(p, expected, rtol=0, atol=0)

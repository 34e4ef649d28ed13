"""8-bit optimizers (Dettmers et al., 2022, arXiv 2110.02861): the map, the quantiser's error bound, memory, and
loss tracking against the 32-bit optimizers and bitsandbytes."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff.nn.stable_embedding import StableEmbedding
from minidiff.optim import create
from minidiff.optim.adamw8bit import state_bytes
from minidiff.optim.quantize import (
    create_dynamic_map,
    dequantize_blockwise,
    max_quantization_error,
    num_blocks,
    quantize_blockwise,
)

SIGNED, UNSIGNED = create_dynamic_map(signed=True), create_dynamic_map(signed=False)


# --------------------------------------------------------------------------- the map
def test_signed_dynamic_map_has_the_documented_shape():
    assert SIGNED.shape == (256,) and SIGNED.dtype == torch.float32
    assert torch.all(SIGNED[1:] > SIGNED[:-1])
    assert SIGNED[0].item() == pytest.approx(-0.99296875) and SIGNED[-1].item() == 1.0
    assert SIGNED[127].item() == 0.0
    assert SIGNED[SIGNED > 0].min().item() == pytest.approx(5.5e-7)


def test_unsigned_dynamic_map_covers_zero_to_one():
    assert UNSIGNED.shape == (256,) and UNSIGNED[0].item() == 0.0 and UNSIGNED[-1].item() == 1.0
    assert torch.all(UNSIGNED[1:] > UNSIGNED[:-1])
    assert UNSIGNED[1].item() == pytest.approx(3.25e-7)


def test_maps_equal_bitsandbytes_maps():
    functional = pytest.importorskip("bitsandbytes.functional")
    assert torch.equal(SIGNED, functional.create_dynamic_map(signed=True))
    assert torch.equal(UNSIGNED, functional.create_dynamic_map(signed=False))


# --------------------------------------------------------------------------- the quantiser
def test_round_trip_of_the_notes_vector():
    x = torch.tensor([1.0, -0.5, 0.001] + [0.0] * 13)
    out = dequantize_blockwise(*quantize_blockwise(x, SIGNED, 256), SIGNED, 256)
    torch.testing.assert_close(out[:3], torch.tensor([1.0, -0.50078125, 0.00094375]), rtol=1e-6, atol=0)
    assert torch.all(out[3:] == 0)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(1, 3000), block_size=st.sampled_from([1, 7, 64, 256, 2048]), signed=st.booleans(),
       log_scale=st.floats(-20, 10), seed=st.integers(0, 2**16))  # fmt: skip
def test_quantisation_error_is_within_the_maps_bound_per_block(n, block_size, signed, log_scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen) * torch.exp(torch.randn(n, generator=gen) * 3 + log_scale)
    code = SIGNED if signed else UNSIGNED
    x = x if signed else x.abs()
    q, absmax = quantize_blockwise(x, code, block_size)
    assert q.dtype == torch.uint8 and absmax.shape == (num_blocks(n, block_size),)
    err = (dequantize_blockwise(q, absmax, code, block_size) - x).abs()
    per_block_bound = absmax * (max_quantization_error(code) + 1e-6)  # + float32 rounding of N_b · Q[q]
    assert torch.all(err <= per_block_bound.repeat_interleave(block_size)[:n])
    # exact nearest: no other map value is closer to x / N_b
    normalised = x / torch.where(absmax == 0, 1.0, absmax).repeat_interleave(block_size)[:n]
    best = (normalised[:, None] - code[None, :]).abs().min(dim=1).values
    assert torch.all((normalised - code[q.long()]).abs() <= best + 1e-7)


def test_all_zero_block_round_trips_to_zero():
    q, absmax = quantize_blockwise(torch.zeros(10), SIGNED, 4)
    assert torch.all(absmax == 0) and torch.all(dequantize_blockwise(q, absmax, SIGNED, 4) == 0)


# --------------------------------------------------------------------------- training
def regression(seed: int = 0):
    """A 32 → 192 → 32 tanh MLP (two 6144-element weights, quantised) on a fixed teacher."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 32, generator=gen)
    Y = torch.tanh(X @ (torch.randn(32, 32, generator=gen) / 6))
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(32, 192), torch.nn.Tanh(), torch.nn.Linear(192, 32))
    return model, X, Y


def train(name_or_factory, steps: int, **hparams):
    model, X, Y = regression()
    make = name_or_factory if callable(name_or_factory) else lambda p: create(name_or_factory, p, **hparams)
    opt = make(model.parameters())
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(X), Y)), model, opt


def test_adamw8bit_tracks_adamw_and_uses_under_a_third_of_the_state_memory():
    """Stated tolerance: final loss within 5 % of 32-bit AdamW after 100 steps (measured ≈ 1 %)."""
    loss32, _, opt32 = train("adamw", 100, lr=3e-3)
    loss8, _, opt8 = train("adamw8bit", 100, lr=3e-3)
    assert loss8 == pytest.approx(loss32, rel=0.05)
    assert state_bytes(opt8) <= 0.3 * state_bytes(opt32)


def test_lion8bit_tracks_lion():
    """Stated tolerance: final loss within 10 % of 32-bit Lion after 100 steps (measured ≈ 6 %; bitsandbytes'
    Lion8bit lands within 0.3 % of ours, so the gap is the cost of 8-bit momentum for Lion, not a bug)."""
    loss32, _, opt32 = train("lion", 100, lr=1e-3)
    loss8, _, opt8 = train("lion8bit", 100, lr=1e-3)
    assert loss8 == pytest.approx(loss32, rel=0.10)
    assert state_bytes(opt8) <= 0.3 * state_bytes(opt32)


def test_small_tensors_and_marked_parameters_keep_32bit_state():
    big, small, marked = torch.zeros(64, 64), torch.zeros(100), torch.zeros(64, 64)
    marked.optim_bits = 32
    params = [t.requires_grad_() for t in (big, small, marked)]
    opt = create("adamw8bit", params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert opt.state[big]["state1"].dtype == torch.uint8 and opt.state[big]["state2"].dtype == torch.uint8
    assert opt.state[big]["absmax1"].shape == (num_blocks(4096, 2048),)
    for p in (small, marked):
        assert opt.state[p]["exp_avg"].dtype == torch.float32 and "state1" not in opt.state[p]


def test_state_dict_holds_quantised_states_and_round_trips_exactly():
    _, model, opt = train("adamw8bit", 3, lr=1e-3)
    saved = copy.deepcopy(opt.state_dict())
    weight_state = saved["state"][0]
    assert weight_state["state1"].dtype == torch.uint8 and weight_state["qmap1"].shape == (256,)
    assert weight_state["absmax2"].dtype == torch.float32
    opt2 = create("adamw8bit", model.parameters(), lr=1e-3)
    opt2.load_state_dict(saved)
    for p in model.parameters():
        for key, value in opt.state[p].items():
            other = opt2.state[p][key]
            assert (
                (torch.equal(other, value) and other.dtype == value.dtype)
                if torch.is_tensor(value)
                else other == value
            )


def test_stable_embedding_is_normalised_and_keeps_32bit_state():
    emb = StableEmbedding(5000, 16)
    bound = (6 / (5000 + 16)) ** 0.5  # Xavier uniform
    assert emb.weight.abs().max() <= bound
    out = emb(torch.tensor([[1, 2, 3]]))
    torch.testing.assert_close(out.mean(-1), torch.zeros(1, 3), atol=1e-5, rtol=0)
    opt = create("adamw8bit", emb.parameters())
    out.sum().backward()
    opt.step()
    assert "exp_avg" in opt.state[emb.weight] and opt.state[emb.weight]["exp_avg"].dtype == torch.float32


def test_block_size_is_validated():
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        create("adamw8bit", [torch.zeros(3, requires_grad=True)], block_size=0)


# --------------------------------------------------------------------------- bitsandbytes as a peer
@pytest.mark.parametrize(
    "ours, theirs, hparams",
    [("adamw8bit", "AdamW8bit", dict(lr=3e-3, weight_decay=1e-2)), ("lion8bit", "Lion8bit", dict(lr=3e-4))],
)
def test_trajectory_tracks_bitsandbytes_with_block_size_256(ours, theirs, hparams):
    """bnb's CPU quantiser is not exact nearest, so compare where the parameters went: within 5 % of the distance
    they travelled (20 steps, block size 256 as bnb)."""
    bnb = pytest.importorskip("bitsandbytes")
    start = [p.detach().clone() for p in regression()[0].parameters()]
    _, model_ours, _ = train(ours, 20, block_size=256, **hparams)
    _, model_bnb, _ = train(lambda p: getattr(bnb.optim, theirs)(p, **hparams), 20)
    for a, b, s in zip(model_ours.parameters(), model_bnb.parameters(), start):
        if a.numel() >= 4096:
            assert (a - b).norm() <= 0.05 * (b - s).norm()

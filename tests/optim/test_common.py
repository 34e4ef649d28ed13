"""Helpers shared by the optimizers (minidiff.optim._common)."""

import pytest
import torch

from minidiff.optim._common import cache_sized_chunks, finite_mask


def test_cache_sized_chunks_cover_every_tensor_once_in_order_within_the_budget():
    sizes = [3, 4, 10, 1, 1, 2, 7]
    a = [torch.zeros(n) for n in sizes]
    b = [torch.ones(n) for n in sizes]
    chunks = list(cache_sized_chunks(a, b, max_numel=8))
    assert [[t.numel() for t in ca] for ca, _ in chunks] == [[3, 4], [10], [1, 1, 2], [7]]
    assert [t for ca, _ in chunks for t in ca] == a and [t for _, cb in chunks for t in cb] == b
    assert list(cache_sized_chunks([], [])) == []


def test_cache_sized_chunks_rejects_lists_of_different_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        list(cache_sized_chunks([torch.zeros(1)], []))


def test_chunked_lion_steps_equal_the_update_rule_by_hand(monkeypatch):
    import functools

    import minidiff.optim.lion as lion_module
    from minidiff.optim import create

    # chunks of at most 100 elements: the four tensors go through three chunks
    monkeypatch.setattr(
        lion_module, "cache_sized_chunks", functools.partial(cache_sized_chunks, max_numel=100)
    )

    torch.manual_seed(0)
    shapes = [(64, 64), (3,), (2000,), (1, 5)]
    weights = [torch.randn(s) for s in shapes]
    grads = [torch.randn(s) for s in shapes]
    params = [torch.nn.Parameter(w.clone()) for w in weights]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt = create("lion", params, lr=0.1, weight_decay=0.5, betas=(0.8, 0.9))
    opt.step()
    opt.step()
    for w, g, p in zip(weights, grads, params):  # two steps by hand, m0 = 0
        m = torch.zeros_like(w)
        for _ in range(2):
            w = w * (1 - 0.1 * 0.5) - 0.1 * torch.sign(0.8 * m + 0.2 * g)
            m = 0.9 * m + 0.1 * g
        torch.testing.assert_close(p.detach(), w)


def test_finite_mask_flags_nan_and_inf():
    grads = [torch.ones(3), torch.tensor([1.0, float("nan")]), torch.tensor([float("inf"), -float("inf")])]
    assert finite_mask(grads) == [True, False, False]

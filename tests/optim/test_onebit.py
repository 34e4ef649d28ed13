"""1-bit Adam (Tang et al., 2021, arXiv 2102.02888) on one process: the compressor's test vectors, the
telescoping identity, Adam-without-bias-correction during warm-up, frozen variance afterwards."""

from __future__ import annotations

import pytest
import torch

from minidiff.distributed import CommStats, compressed_allreduce
from minidiff.distributed.compressed import padded_size
from minidiff.kernels import compress
from minidiff.optim import create


def test_compressor_test_vector_and_its_error():
    x = torch.tensor([3.0, -4.0, 0.0, 0.0])
    c = compress(x)
    assert c.tolist() == [2.5, -2.5, 2.5, 2.5]
    assert (x - c).tolist() == [0.5, -1.5, -2.5, -2.5]
    norm = torch.linalg.vector_norm
    assert norm(c).item() == pytest.approx(norm(x).item())  # ‖C‖ = ‖x‖ = 5


def test_single_worker_all_reduce_telescopes(gen):
    """Σ_t m̄_t = Σ_t x_t − δ_T − δ̄_T for one worker that is also its own server."""
    n = 13
    worker_error, server_error = torch.zeros(padded_size(n, 1)), torch.zeros(padded_size(n, 1))
    total_in, total_out = torch.zeros(n), torch.zeros(n)
    stats = CommStats()
    for _ in range(20):
        x = torch.randn(n, generator=gen)
        total_in += x
        total_out += compressed_allreduce(x, worker_error, server_error, stats=stats)
    torch.testing.assert_close(
        total_out, total_in - worker_error[:n] - server_error[:n], rtol=1e-5, atol=1e-5
    )
    assert torch.all(worker_error[n:] == 0) and torch.all(server_error[n:] == 0)  # padding carries no error
    assert stats.bytes_sent == 0 and stats.calls == 0  # nothing leaves a single process


def test_error_buffers_must_match_the_padded_size():
    with pytest.raises(ValueError, match="worker_error must have 16"):
        compressed_allreduce(torch.zeros(9), torch.zeros(9), torch.zeros(16))


def test_warm_up_is_adam_without_bias_correction(gen):
    lr, (b1, b2), eps, wd = 1e-2, (0.9, 0.999), 1e-8, 0.1
    p = torch.randn(5, 4, generator=gen, requires_grad=True)
    opt = create("onebit_adam", [p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, freeze_step=10)
    theta, m, v = p.detach().clone(), torch.zeros(5, 4), torch.zeros(5, 4)
    for _ in range(10):
        g = torch.randn(5, 4, generator=gen)
        p.grad = g.clone()
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta * (1 - lr * wd) - lr * m / (v.sqrt() + eps)
    torch.testing.assert_close(p.detach(), theta, rtol=1e-6, atol=1e-7)


def test_after_freeze_the_variance_is_frozen_and_the_momentum_compressed(gen):
    p = torch.randn(40, requires_grad=True)
    opt = create("onebit_adam", [p], lr=1e-2, freeze_step=3)
    for step in range(6):
        p.grad = torch.randn(40, generator=gen)
        opt.step()
        if step == 2:
            frozen = opt.state[p]["exp_avg_sq"].clone()
    state = opt.state[p]
    assert torch.equal(state["exp_avg_sq"], frozen)
    m = state["exp_avg"]
    # one magnitude everywhere: the server's RMS scale (a single chunk on one process)
    assert torch.allclose(m.abs(), m.abs()[0])
    assert state["worker_error"].shape == (40,) and state["server_error"].shape == (40,)
    assert opt.comm_bytes == 0 and opt.comm_bytes_uncompressed == 0


def test_reset_error_feedback_zeroes_both_buffers(gen):
    p = torch.randn(16, requires_grad=True)
    opt = create("onebit_adam", [p], freeze_step=0)
    p.grad = torch.randn(16, generator=gen)
    opt.step()
    assert opt.state[p]["worker_error"].abs().sum() > 0
    opt.reset_error_feedback()
    assert opt.state[p]["worker_error"].abs().sum() == 0 and opt.state[p]["server_error"].abs().sum() == 0


def test_freeze_step_is_validated():
    with pytest.raises(ValueError, match="freeze_step must be an int >= 0"):
        create("onebit_adam", [torch.zeros(2, requires_grad=True)], freeze_step=-1)

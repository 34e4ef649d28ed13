"""The error-feedback 1-bit all-reduce on 2 gloo processes: identical results, telescoping identity, byte counts."""

from __future__ import annotations

import pytest
import torch

from minidiff.distributed import CommStats, compressed_allreduce, run_workers
from minidiff.distributed.compressed import padded_size, ring_allreduce_bytes

pytestmark = pytest.mark.distributed


def telescoping_worker(rank, world, n, steps):
    """Σ_t m̄_t = Σ_t mean_i x_{i,t} − mean_i δ_{i,T} − δ̄_T: returns this rank's pieces."""
    n_pad = padded_size(n, world)
    worker_error, server_error = torch.zeros(n_pad), torch.zeros(n_pad // world)
    stats = CommStats()
    total_out, total_in = torch.zeros(n), torch.zeros(n)
    for t in range(steps):
        x = torch.randn(n, generator=torch.Generator().manual_seed(1000 * rank + t))
        total_in += x
        total_out += compressed_allreduce(x, worker_error, server_error, stats=stats)
    return total_out, total_in, worker_error, server_error, stats


@pytest.mark.parametrize("n", [5, 37, 4096])
def test_error_feedback_telescopes_and_ranks_agree(n):
    world, steps = 2, 6
    results = run_workers(telescoping_worker, world, n, steps)
    out0, out1 = results[0][0], results[1][0]
    assert torch.equal(out0, out1)  # every rank holds the same m̄
    mean_in = sum(r[1] for r in results) / world
    mean_worker_error = sum(r[2][:n] for r in results) / world
    server_error = torch.cat([r[3] for r in results])[:n]  # rank j holds chunk j
    torch.testing.assert_close(out0, mean_in - mean_worker_error - server_error, rtol=1e-5, atol=1e-5)


def test_bytes_are_counted_and_about_32_times_fewer_than_float32():
    n, steps = 4096, 3
    stats = run_workers(telescoping_worker, 2, n, steps)[0][4]
    assert stats.calls == steps
    assert stats.bytes_uncompressed == steps * ring_allreduce_bytes(n, 2) == steps * 4 * n
    # per call: all_to_all n/16 bytes + all_gather n/16 bytes + 2 scales of 4 bytes
    assert stats.bytes_sent == steps * (n // 16 + n // 16 + 8)
    assert 30 < stats.ratio < 32

"""Distributed Muon / NorMuon on 2 gloo processes equal single-process Muon / NorMuon exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from minidiff.distributed import DistributedMuon, DistributedNorMuon, run_workers
from minidiff.optim import available, create

pytestmark = pytest.mark.distributed
available()  # import every optimizer module here, so forked workers inherit them

# Two shape groups of odd size (the last chunk has no owner on rank 1) and a singleton.
SHAPES = [(8, 6), (8, 6), (5, 7), (8, 6), (3, 4), (5, 7)]
HPARAMS = dict(lr=0.02, ns_dtype=torch.float32, weight_decay=0.01)


def make_params():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(*s, generator=gen).requires_grad_() for s in SHAPES]


def grads_at(step: int):
    gen = torch.Generator().manual_seed(100 + step)
    return [torch.randn(*s, generator=gen) for s in SHAPES]


def run(opt, params, steps):
    for step in range(steps):
        for p, g in zip(params, grads_at(step)):
            p.grad = g
        opt.step()


def sharded_worker(rank, world, cls_name, steps):
    cls = {"muon": DistributedMuon, "normuon": DistributedNorMuon}[cls_name]
    params = make_params()
    opt = cls(params, **HPARAMS)
    run(opt, params, steps)
    return [p.detach() for p in params], len(opt.state), opt.comm.bytes_sent


@pytest.mark.parametrize("name", ["muon", "normuon"])
def test_two_ranks_give_the_single_process_parameters_exactly(name):
    results = run_workers(sharded_worker, 2, name, 3)
    params = make_params()
    run(create(name, params, **HPARAMS), params, 3)
    for rank_params, _, _ in results:
        for ours, single in zip(rank_params, params):
            assert torch.equal(ours, single.detach())
    # state lives only with the owner: shape groups of 3, 2 and 1 matrices dealt round-robin
    assert [r[1] for r in results] == [2 + 1 + 1, 1 + 1 + 0]
    assert all(r[2] > 0 for r in results)


def checkpoint_worker(rank, world):
    params = make_params()
    opt = DistributedMuon(params, **HPARAMS)
    run(opt, params, 2)
    saved = copy.deepcopy(opt.state_dict())  # state_dict() shares the live tensors, as torch's does
    start = [p.detach().clone() for p in params]
    run(opt, params, 2)
    resumed = [p.clone().requires_grad_() for p in start]
    opt2 = DistributedMuon(resumed, **HPARAMS)
    opt2.load_state_dict(saved)
    run(opt2, resumed, 2)
    wrong_rank = {**saved, "rank": 1 - rank}
    try:
        opt2.load_state_dict(wrong_rank)
        refused = False
    except ValueError:
        refused = True
    return all(torch.equal(a, b) for a, b in zip(params, resumed)), refused


def test_per_rank_checkpoints_resume_exactly_and_refuse_another_ranks_state():
    assert run_workers(checkpoint_worker, 2) == [(True, True), (True, True)]


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.up = torch.nn.Linear(6, 16, bias=False)
        self.down = torch.nn.Linear(16, 3, bias=False)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x)))


def batch(rank: int, step: int):
    gen = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(8, 6, generator=gen), torch.randn(8, 3, generator=gen)


def ddp_worker(rank, world, steps):
    model = DistributedDataParallel(TinyNet())
    opt = DistributedMuon(model.parameters(), **HPARAMS)
    for step in range(steps):
        x, y = batch(rank, step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()  # DDP averages the gradients
        opt.step()
    return [p.detach() for p in model.module.parameters()]


def test_works_under_ddp_like_single_process_muon_on_the_whole_batch():
    steps = 3
    results = run_workers(ddp_worker, 2, steps)
    model = TinyNet()
    opt = create("muon", model.parameters(), **HPARAMS)
    for step in range(steps):
        x = torch.cat([batch(r, step)[0] for r in range(2)])
        y = torch.cat([batch(r, step)[1] for r in range(2)])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    for a, b in zip(*results):
        assert torch.equal(a, b)  # replicas agree exactly
    for ours, single in zip(
        results[0], model.parameters()
    ):  # the all-reduce sums in another order: not bitwise
        torch.testing.assert_close(ours, single.detach(), rtol=1e-5, atol=1e-6)

"""A tiny data-parallel run: DDP + distributed Muon, then 1-bit Adam, with the bytes each rank sent.

    torchrun --standalone --nproc_per_node=2 -m minidiff.distributed.demo     # the real launcher
    python -m minidiff.distributed.demo --local 2                            # same, via run_workers (notebooks)

Every rank trains the same small MLP (two hidden matrices, biases) on its own shard of a synthetic regression task:

1. **DDP + DistributedMuon**: DDP all-reduces the gradients during backward; the hidden matrices go to
   :class:`~minidiff.distributed.muon.DistributedMuon` (each rank orthogonalises its share, then all-gathers), the
   biases to AdamW, stepped identically on every rank.
2. **1-bit Adam** (``onebit_adam``, no DDP: the optimizer communicates): full all-reduces for the first 20 % of
   the steps, then the 1-bit compressed all-reduce of the momentum.

Rank 0 prints each run's final loss over all shards and the bytes it sent; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from minidiff.distributed.compressed import ring_allreduce_bytes, world
from minidiff.distributed.muon import DistributedMuon
from minidiff.optim import create

__all__ = ["main", "run"]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # identical replicas before any broadcast
    return torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.Tanh(), torch.nn.Linear(128, 32))


def _shard(rank: int, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    teacher = torch.randn(32, 32, generator=torch.Generator().manual_seed(1234)) / 6
    x = torch.randn(n, 32, generator=torch.Generator().manual_seed(rank))
    return x, torch.tanh(x @ teacher)


def _global_loss(model: torch.nn.Module, world_size: int) -> float:
    with torch.no_grad():
        return (
            sum(float(torch.nn.functional.mse_loss(model(x), y)) for x, y in map(_shard, range(world_size)))
            / world_size
        )


def _ddp_muon(rank: int, world_size: int, steps: int) -> dict:
    model = _model()
    ddp = DistributedDataParallel(model) if world_size > 1 else model
    matrices = [p for p in model.parameters() if p.ndim == 2]
    others = [p for p in model.parameters() if p.ndim != 2]
    muon = DistributedMuon(matrices, lr=0.02)
    adamw = create("adamw", others, lr=3e-3)
    x, y = _shard(rank)
    for _ in range(steps):
        muon.zero_grad()
        adamw.zero_grad()
        torch.nn.functional.mse_loss(ddp(x), y).backward()
        muon.step()
        adamw.step()
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "loss": _global_loss(model, world_size),
        "ddp_allreduce_bytes": steps * ring_allreduce_bytes(n_params, world_size),
        "muon_allgather_bytes": muon.comm.bytes_sent,
    }


def _onebit(rank: int, world_size: int, steps: int) -> dict:
    model = _model()
    opt = create("onebit_adam", model.parameters(), lr=3e-3, freeze_step=steps // 5)
    x, y = _shard(rank)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return {
        "loss": _global_loss(model, world_size),
        "bytes_sent": opt.comm_bytes,
        "bytes_uncompressed": opt.comm_bytes_uncompressed,
    }


def run(rank: int, world_size: int, steps: int = 200) -> dict:
    """Both experiments on this rank (torch.distributed already initialised, or a single process)."""
    return {"ddp_muon": _ddp_muon(rank, world_size, steps), "onebit_adam": _onebit(rank, world_size, steps)}


def _report(result: dict, world_size: int) -> None:
    dm, ob = result["ddp_muon"], result["onebit_adam"]
    print(f"world size {world_size}")
    print(f"DDP + DistributedMuon: loss {dm['loss']:.4f}; sent {dm['ddp_allreduce_bytes']:,} B of gradient all-reduce "
          f"+ {dm['muon_allgather_bytes']:,} B of Muon all-gather")  # fmt: skip
    ratio = ob["bytes_uncompressed"] / ob["bytes_sent"] if ob["bytes_sent"] else float("nan")
    print(f"1-bit Adam: loss {ob['loss']:.4f}; sent {ob['bytes_sent']:,} B vs {ob['bytes_uncompressed']:,} B "
          f"uncompressed ({ratio:.1f}x less)")  # fmt: skip
    print(
        json.dumps(
            {"world_size": world_size, **{f"{k}_{m}": v for k, d in result.items() for m, v in d.items()}}
        )
    )


def _local_worker(rank: int, world_size: int, steps: int) -> dict:
    return run(rank, world_size, steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="DDP + distributed Muon and 1-bit Adam on a toy regression task"
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--local", type=int, default=0, metavar="W", help="run W local gloo workers (no torchrun)"
    )
    args = parser.parse_args(argv)
    if args.local:
        from minidiff.distributed.launch import run_workers

        _report(run_workers(_local_worker, args.local, args.steps)[0], args.local)
        return
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launched:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
    rank, world_size = world()
    try:
        result = run(rank, world_size, args.steps)
        if rank == 0:
            _report(result, world_size)
    finally:
        if launched:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Run a function on W local worker processes joined in a gloo process group -- for tests and chapters on one CPU.

Real runs start with ``torchrun`` (see :mod:`minidiff.distributed.muon` for the multi-node command); this helper
only spares tests and notebooks a launcher: it creates a fresh ``file://`` rendezvous in a temporary folder (so
parallel tests never collide on a port), starts ``world_size`` processes with ``torch.multiprocessing``, calls
``fn(rank, world_size, *args)`` in each after ``init_process_group``, and returns the ranks' return values (saved
with ``torch.save``, so tensors come back). The default start method is ``fork`` where it is safe (POSIX, CUDA not
yet initialised): workers inherit the imported modules and start in a fraction of a second, where ``spawn``
re-imports torch in each worker (seconds) and needs ``fn`` importable (a module-level function).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["run_workers"]


def _worker(rank: int, world_size: int, folder: str, backend: str, fn: Callable, args: tuple) -> None:
    torch.set_num_threads(1)  # W processes share the machine's cores
    dist.init_process_group(
        backend, init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world_size
    )
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(folder, f"result_{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_workers(
    fn: Callable[..., Any],
    world_size: int = 2,
    *args: Any,
    backend: str = "gloo",
    start_method: str | None = None,
) -> list[Any]:
    """``[fn(0, W, *args), ..., fn(W − 1, W, *args)]``, each computed in its own process of a W-rank group."""
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if start_method is None:
        forkable = "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized()
        start_method = "fork" if forkable else "spawn"
    if start_method == "fork":
        # torch.optim.Optimizer imports torch._dynamo on first construction (seconds); import it once here, so that
        # forked workers inherit it instead of each paying for it.
        importlib.import_module("torch._dynamo")
    with tempfile.TemporaryDirectory(prefix="minidiff-dist-") as folder:
        mp.start_processes(
            _worker,
            args=(world_size, folder, backend, fn, args),
            nprocs=world_size,
            join=True,
            start_method=start_method,
        )
        return [
            torch.load(os.path.join(folder, f"result_{r}.pt"), weights_only=False) for r in range(world_size)
        ]

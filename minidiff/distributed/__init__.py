"""Scale-out on ``torch.distributed`` (launched by ``torchrun``; tests use gloo with 2 CPU processes).

- :mod:`~minidiff.distributed.compressed`: the error-feedback 1-bit compressed all-reduce of 1-bit Adam
  (``minidiff.optim``'s ``onebit_adam`` uses it) and a byte counter, :class:`CommStats`;
- :mod:`~minidiff.distributed.muon`: Muon / NorMuon with the orthogonalisation dealt out over ranks
  (:class:`DistributedMuon`, :class:`DistributedNorMuon`), and the multi-node ``torchrun`` recipe;
- :func:`run_workers`: W local gloo processes for tests and chapters;
- :mod:`~minidiff.distributed.demo`: ``torchrun --standalone --nproc_per_node=2 -m minidiff.distributed.demo``.
"""

from minidiff.distributed.compressed import CommStats, compressed_allreduce
from minidiff.distributed.launch import run_workers
from minidiff.distributed.muon import DistributedMuon, DistributedNorMuon, ShardedOptimizer

__all__ = [
    "CommStats",
    "compressed_allreduce",
    "run_workers",
    "DistributedMuon",
    "DistributedNorMuon",
    "ShardedOptimizer",
]

r"""Distributed Muon and NorMuon: the orthogonalisation spread over data-parallel ranks.

Muon (Jordan et al., 2024, github.com/KellerJordan/Muon) and NorMuon (Li et al., 2025, arXiv 2510.05491) update
each hidden matrix with a Newton–Schulz orthogonalisation of its momentum -- a few matmuls per matrix that plain
data parallelism would repeat on every rank. Following KellerJordan/Muon's distributed ``Muon``:

1. gradients are already averaged over ranks (DDP's backward all-reduce, or any all-reduce);
2. parameters are grouped by (shape, dtype) and dealt out round-robin: in each group, matrix k belongs to rank
   k mod W, which alone keeps its optimizer state (momentum, NorMuon's row statistics) and computes its update;
3. for each chunk of W same-shaped matrices, one ``all_gather`` hands every rank the updated values (a missing
   owner in the last chunk contributes a dummy zero tensor, so all ranks run the same collectives).

Grouping by shape is what makes step 3 a single collective per chunk (gloo refuses an ``all_gather`` of
differently sized tensors); sorting is unnecessary, since every rank deals the same deterministic order. Each rank
runs exactly the single-process update on its own matrices, so the result equals single-process Muon *exactly*
(the tests check bit equality with the registry's ``muon`` over 2 gloo processes). Communication per step: each
rank sends its owned matrices to the W − 1 others -- (W − 1)/W of all the matrices' bytes per rank when the shape
groups divide evenly (an incomplete last chunk sends zero-filled stand-ins, as in KellerJordan/Muon); ``comm``
counts what was sent.

**Checkpoints** are per rank (each rank holds the state of its own matrices)::

    torch.save(optimizer.state_dict(), f"optim_rank{dist.get_rank()}.pt")

and ``load_state_dict`` refuses a checkpoint written by another rank or world size.

**Multi-node** runs use ``torchrun`` -- no launcher of our own. On each of N nodes with G GPUs::

    torchrun --nnodes N --nproc_per_node G --rdzv_id run42 --rdzv_backend c10d \
             --rdzv_endpoint host0:29500 train.py

(``host0`` any node reachable by all; ``--standalone`` replaces the rendezvous flags on one node). ``train.py`` calls
``dist.init_process_group("nccl")`` (``"gloo"`` on CPU), sets ``torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))``,
wraps the model in ``DistributedDataParallel`` and builds ``DistributedMuon`` over the hidden matrices, with an
ordinary AdamW for the rest (every rank steps it identically on the averaged gradients). See
:mod:`minidiff.distributed.demo` for a runnable example.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist

from minidiff.distributed.compressed import CommStats, world
from minidiff.optim import create

__all__ = ["ShardedOptimizer", "DistributedMuon", "DistributedNorMuon"]


class ShardedOptimizer(torch.optim.Optimizer):
    """Any per-matrix optimizer of the registry (``base``), its work dealt round-robin over ranks.

    ``param_groups`` lists every parameter (LR schedulers and ``zero_grad`` act on it as usual); hyperparameters
    are copied to the inner optimizer -- ``create(base, <this rank's matrices>, **hparams)`` -- before each step.
    ``state`` is the inner optimizer's: only owned matrices have state. ``comm`` counts the bytes all-gathered.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        base: str,
        process_group: Any = None,
        **hparams: Any,
    ) -> None:
        super().__init__(params, hparams)
        self.base, self.process_group = base, process_group
        self.rank, self.world_size = world(process_group)
        self.comm = CommStats()
        buckets: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                buckets[(tuple(p.shape), p.dtype, p.device)].append(p)
        self._buckets = list(buckets.values())
        owned = {
            id(p)
            for bucket in self._buckets
            for k, p in enumerate(bucket)
            if k % self.world_size == self.rank
        }
        inner_groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [p for p in g["params"] if id(p) in owned],
            }
            for g in self.param_groups
        ]
        self.inner = create(base, inner_groups, **hparams)
        self.state = self.inner.state
        self.defaults = {**self.inner.defaults, **self.defaults}
        # The base's defaults appear in our groups too (LR schedulers read group["lr"]).
        for outer, inner in zip(self.param_groups, self.inner.param_groups):
            for key, value in inner.items():
                outer.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "inner"):  # ownership is dealt once, at construction
            raise NotImplementedError(
                f"{type(self).__name__} cannot add parameter groups; build a new optimizer"
            )
        super().add_param_group(param_group)

    def _sync_hparams(self) -> None:
        for outer, inner in zip(self.param_groups, self.inner.param_groups):
            for key, value in outer.items():
                if key != "params":
                    inner[key] = value

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update this rank's matrices, then all-gather every updated matrix; returns ``closure()`` when given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_hparams()
        self.inner.step()
        if self.world_size > 1:
            for bucket in self._buckets:
                for start in range(0, len(bucket), self.world_size):
                    self._gather(bucket[start : start + self.world_size])
        return loss

    def _gather(self, chunk: list[torch.Tensor]) -> None:
        """All-gather the owners' values of ``chunk`` (matrix i of the chunk is owned by rank i)."""
        outputs = [
            p.data if p.is_contiguous() else torch.empty_like(p, memory_format=torch.contiguous_format)
            for p in chunk
        ]
        outputs += [torch.empty_like(chunk[0]) for _ in range(self.world_size - len(chunk))]
        mine = chunk[self.rank].data.clone() if self.rank < len(chunk) else torch.zeros_like(chunk[0])
        dist.all_gather(outputs, mine, group=self.process_group)
        for p, out in zip(chunk, outputs):
            if out is not p.data:
                p.data.copy_(out)
        self.comm.bytes_sent += (self.world_size - 1) * mine.numel() * mine.element_size()
        self.comm.calls += 1

    def state_dict(self) -> dict[str, Any]:
        """This rank's part: the inner optimizer's state dict, tagged with rank and world size."""
        return {
            "base": self.base,
            "rank": self.rank,
            "world_size": self.world_size,
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = (state_dict.get("base"), state_dict.get("rank"), state_dict.get("world_size"))
        if saved != (self.base, self.rank, self.world_size):
            raise ValueError(
                f"this checkpoint holds the {saved[0]!r} state of rank {saved[1]} of {saved[2]}; this optimizer is "
                f"{self.base!r} on rank {self.rank} of {self.world_size} (checkpoints are per rank)"
            )
        self.inner.load_state_dict(state_dict["inner"])
        self.state = self.inner.state
        for outer, inner in zip(self.param_groups, self.inner.param_groups):
            outer.update({k: v for k, v in inner.items() if k != "params" and k in outer})


class DistributedMuon(ShardedOptimizer):
    """Muon (the registry's ``muon``, same hyperparameters) with its matrices dealt out over ranks."""

    def __init__(self, params, process_group: Any = None, **hparams: Any) -> None:
        super().__init__(params, "muon", process_group, **hparams)


class DistributedNorMuon(ShardedOptimizer):
    """NorMuon (the registry's ``normuon``, same hyperparameters) with its matrices dealt out over ranks."""

    def __init__(self, params, process_group: Any = None, **hparams: Any) -> None:
        super().__init__(params, "normuon", process_group, **hparams)

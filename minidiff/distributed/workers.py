r"""Worker functions for :func:`~minidiff.distributed.launch.run_workers`: small data-parallel runs of the
character-level Shakespeare language model, for chapters and tests on one CPU.

A worker is called as ``fn(rank, world_size, ...)`` inside an initialised process group and returns plain data
(lists, floats, tensors) that ``run_workers`` hands back to the caller. They live here, at module level, because a
worker must be importable by the processes that run it -- never define one in a notebook.

* :func:`train_char_lm` -- data parallelism with any registry optimizer: rank r draws its own batches; gradients are
  averaged by a float32 all-reduce, unless the optimizer communicates itself (``onebit_adam``: full all-reduces in
  its warm-up, the 1-bit compressed all-reduce of the momentum after it). Returns a
  :class:`~minidiff.train.History` of the loss averaged over ranks (and the validation loss at the end) and the
  bytes this rank sent.
* :func:`muon_division` -- :class:`~minidiff.distributed.muon.DistributedMuon` on the hidden matrices: which rank
  owns (keeps the state of, and orthogonalises) which matrix, and the averaged gradients it saw, so a caller can
  replay them through single-process Muon and compare.

The model is :class:`minidiff.nn.Transformer` with a causal mask, identical on every rank (built after
``torch.manual_seed(setup.seed)``); batches are windows of the shipped corpus (:class:`minidiff.data.text.TextDataset`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from minidiff.autoregressive import next_token_loss
from minidiff.data.text import TextDataset
from minidiff.distributed.compressed import CommStats, allreduce_mean_, world
from minidiff.distributed.muon import DistributedMuon
from minidiff.nn import Transformer
from minidiff.optim import create
from minidiff.optim.groups import MATRIX_ROLES, classify_parameters
from minidiff.train.history import History

__all__ = ["CharLMSetup", "char_lm", "train_char_lm", "muon_division", "SELF_COMMUNICATING"]

#: Registry optimizers that average over ranks themselves (the worker must not all-reduce their gradients).
SELF_COMMUNICATING = ("onebit_adam",)


@dataclass(frozen=True)
class CharLMSetup:
    """Sizes of a run: the model, the windows (``batch_size`` per rank), the seed, the validation batches."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    seed: int = 0
    val_batches: int = 8


def char_lm(vocab_size: int, setup: CharLMSetup = CharLMSetup()) -> Transformer:
    """The small causal Transformer of these runs, built from ``setup.seed`` (every rank builds the same one)."""
    torch.manual_seed(setup.seed)
    return Transformer(
        vocab_size=vocab_size,
        d_model=setup.d_model,
        n_layers=setup.n_layers,
        n_heads=setup.n_heads,
        max_len=setup.seq_len,
        mask="causal",
    )


def _check(steps: int, setup: CharLMSetup) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(setup, CharLMSetup):
        raise TypeError(f"setup must be a CharLMSetup, got {type(setup).__name__}")


def _rank_generator(seed: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(1000 * seed + rank + 1)  # rank r's own stream of batches


def _mean_over_ranks(value: float) -> float:
    _, size = world()
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / size


@torch.no_grad()
def _val_loss(model: Transformer, data: TextDataset, setup: CharLMSetup) -> float:
    gen = torch.Generator().manual_seed(12345)  # the same validation windows on every rank and every run
    model.eval()
    losses = [
        next_token_loss(model, data.windows("val", setup.seq_len + 1, setup.batch_size, gen))[0].item()
        for _ in range(setup.val_batches)
    ]
    model.train()
    return sum(losses) / len(losses)


def train_char_lm(
    rank: int,
    world_size: int,
    optimizer: str,
    steps: int,
    hparams: dict[str, Any] | None = None,
    setup: CharLMSetup = CharLMSetup(),
) -> dict[str, Any]:
    """Train the character LM data-parallel with the registry optimizer ``optimizer`` (built with ``hparams``).

    Returns ``{"history": History, "val_loss": float, "bytes_sent": int, "bytes_uncompressed": int}``: the history
    logs, per step, the training loss averaged over ranks, the LR, the norm of this rank's gradient (after averaging,
    where the worker averages), the tokens seen by all ranks, and ends with the validation loss as an evaluation;
    bytes are what this rank sent (gradient all-reduces, or the optimizer's own count) and what float32 all-reduces
    of every gradient would have sent.
    """
    _check(steps, setup)
    data = TextDataset.load("shakespeare")
    net = char_lm(len(data.vocab), setup)
    opt = create(optimizer, net.parameters(), **(hparams or {}))
    self_communicating = optimizer in SELF_COMMUNICATING
    stats = getattr(opt, "comm", None) if self_communicating else CommStats()
    gen = _rank_generator(setup.seed, rank)
    params = list(net.parameters())
    history, start = History(), time.perf_counter()
    tokens_per_step = world_size * setup.batch_size * setup.seq_len
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss, _ = next_token_loss(net, data.windows("train", setup.seq_len + 1, setup.batch_size, gen))
        loss.backward()
        if not self_communicating:
            allreduce_mean_([p.grad for p in params], stats=stats)
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        history.log(
            step,
            loss=_mean_over_ranks(loss.item()),
            lr=lr,
            grad_norm=grad_norm,
            tokens=step * tokens_per_step,
            wall_time=time.perf_counter() - start,
        )
    val_loss = _val_loss(net, data, setup)
    history.log_eval(steps, {"val_loss": val_loss})
    return {
        "history": history,
        "val_loss": val_loss,
        "bytes_sent": stats.bytes_sent,
        "bytes_uncompressed": stats.bytes_uncompressed,
    }


def muon_division(
    rank: int,
    world_size: int,
    steps: int,
    hparams: dict[str, Any] | None = None,
    setup: CharLMSetup = CharLMSetup(),
) -> dict[str, Any]:
    """``steps`` of DistributedMuon (hidden matrices) + AdamW (the rest) on the character LM, data-parallel.

    Returns ``{"names", "shapes"}`` of the hidden matrices in the optimizer's order, ``"owned"`` (the names whose
    state lives on this rank: the matrices it orthogonalises), ``"initial"`` and ``"final"`` values of the matrices,
    ``"grads"`` (per step, the rank-averaged gradients the optimizer saw) and ``"bytes_sent"`` by Muon's
    all-gathers.
    """
    _check(steps, setup)
    data = TextDataset.load("shakespeare")
    net = char_lm(len(data.vocab), setup)
    roles = classify_parameters(net)
    named = dict(net.named_parameters())
    names = [n for n in named if roles[n] in MATRIX_ROLES]
    matrices = [named[n] for n in names]
    rest = [p for n, p in named.items() if roles[n] not in MATRIX_ROLES]
    muon = DistributedMuon(matrices, **(hparams or {}))
    adamw = create("adamw", rest, lr=3e-3)
    initial = [p.detach().clone() for p in matrices]
    gen = _rank_generator(setup.seed, rank)
    grads = []
    for _ in range(steps):
        muon.zero_grad(set_to_none=True)
        adamw.zero_grad(set_to_none=True)
        loss, _ = next_token_loss(net, data.windows("train", setup.seq_len + 1, setup.batch_size, gen))
        loss.backward()
        allreduce_mean_([p.grad for p in net.parameters()])  # what DDP's backward does
        grads.append([p.grad.detach().clone() for p in matrices])
        muon.step()
        adamw.step()
    owned_ids = {id(p) for p in muon.state}
    return {
        "names": names,
        "shapes": [tuple(p.shape) for p in matrices],
        "owned": [n for n, p in zip(names, matrices) if id(p) in owned_ids],
        "initial": initial,
        "final": [p.detach().clone() for p in matrices],
        "grads": grads,
        "bytes_sent": muon.comm.bytes_sent,
    }

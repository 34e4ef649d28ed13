"""Optimizer step time on CPU: every registered optimizer against its peers and torch's AdamW, in one run.

The model is a stack of bias-free square Linear weights (all 2-D, so matrix optimizers take every tensor):
10 × 1024² ≈ 10.5M parameters, or 4 × 512² ≈ 1M in FAST mode. Gradients are fixed random tensors, so a timed
call is ``optimizer.step()`` alone. For each optimizer in ``minidiff.optim.available()`` the script times, with
calls interleaved (``benchmarks/_common.time_interleaved``):

- ours, built by ``minidiff.optim.create(name, ...)``;
- each peer implementation of the same algorithm listed in ``PEERS`` (pytorch_optimizer, lion-pytorch, torch);
- ``torch.optim.AdamW(foreach=True)``, the common baseline.

It prints ms/step (median), the ratio to the fastest peer (goal: <= 1) and to AdamW(foreach), and the bytes of
optimizer state per parameter, then one JSON line with ``<name>_vs_peer``, ``<name>_vs_adamw`` and
``<name>_state_bytes_per_param`` for each optimizer.

Extending: an optimizer added to the registry is picked up automatically; add its peers to ``PEERS`` (name →
{label: factory(params) -> Optimizer}). A class may set ``bench_hparams`` (a dict) for the hyperparameters it
should be timed with; otherwise its defaults are used with ``lr=1e-4``.

    python benchmarks/optim_step.py                 # MINIDIFF_FAST=1 for the 1M-parameter smoke run
    python benchmarks/optim_step.py --only lion adamw --threads 1

On a shared machine prefer ``--threads 1``: with more threads than free cores, wall-clock times of parallel
kernels swing by 10×. Temporaries allocated each step (most peers and torch's foreach AdamW allocate some) are
returned to the OS by glibc and page-faulted back in, which can dominate CPU step times; ratios measured in one
run share that cost, absolute numbers depend on the allocator.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, time_interleaved  # noqa: E402

from minidiff.config import pick  # noqa: E402
from minidiff.optim import available, create, registry  # noqa: E402

LR = 1e-4
Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def _po(cls: str, **hp) -> Factory:
    """A pytorch_optimizer class, imported when used (it is a dev dependency)."""
    return lambda params: getattr(importlib.import_module("pytorch_optimizer"), cls)(params, lr=LR, **hp)


def _lion_pytorch(params):
    from lion_pytorch import Lion

    return Lion(params, lr=LR)


# Peer implementations of the same algorithm, configured to compute our update (see each optimizer's
# docstring for what differs) and run in their fastest mode (foreach where they have one).
PEERS: dict[str, dict[str, Factory]] = {
    "adamw": {"torch AdamW(fused)": lambda ps: torch.optim.AdamW(ps, lr=LR, fused=True)},
    "lion": {"po Lion(foreach)": _po("Lion", foreach=True), "lion_pytorch Lion": _lion_pytorch},
    "ademamix": {"po AdEMAMix(foreach)": _po("AdEMAMix", alpha=2.0, weight_decouple=True, foreach=True)},
    "adamp": {"po AdamP(foreach)": _po("AdamP", foreach=True), "po AdamP": _po("AdamP", foreach=False)},
    "sgdp": {"po SGDP(foreach)": _po("SGDP", foreach=True)},
    "exadam": {"po EXAdam(foreach)": _po("EXAdam", foreach=True)},
    "dualadam": {"po DualAdam(foreach)": _po("DualAdam", weight_decouple=True, foreach=True)},
    "invadam": {"po DualAdam(s=0, foreach)": _po("DualAdam", switch_rate=0.0, foreach=True)},
    "spam": {"po SPAM(foreach)": _po("SPAM", warmup_epoch=150, foreach=True)},
    "stable_spam": {"po StableSPAM(foreach)": _po("StableSPAM", foreach=True)},
}
HPARAMS: dict[str, dict] = {"sgdp": {"momentum": 0.9}, "sgd_clip": {"momentum": 0.9}}


def make_weights(
    layers: int, width: int, gen: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    weights = [(torch.randn(width, width, generator=gen) / width**0.5) for _ in range(layers)]
    grads = [torch.randn(width, width, generator=gen) * 1e-2 for _ in range(layers)]
    return weights, grads


def contender(factory: Factory, weights, grads) -> tuple[torch.optim.Optimizer, Callable[[], None]]:
    """An optimizer over private copies of the weights, with the gradients attached, and its timed call."""
    params = [w.clone().requires_grad_() for w in weights]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt = factory(params)
    return opt, lambda: opt.step()


def state_bytes_per_param(opt: torch.optim.Optimizer, n_params: int) -> float:
    total = 0
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total / n_params


def ours_factory(name: str) -> Factory:
    hp = {"lr": LR, **HPARAMS.get(name, {}), **getattr(registry.get(name), "bench_hparams", {})}
    return lambda params: create(name, params, **hp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=pick(full=10, fast=4))
    parser.add_argument("--width", type=int, default=pick(full=1024, fast=512))
    parser.add_argument("--repeats", type=int, default=pick(full=7, fast=3))
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names to time (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--budget",
        type=float,
        default=pick(full=60.0, fast=10.0),
        help="seconds per optimizer; fewer repeats if slow",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    names = [n for n in available() if args.only is None or n in args.only]
    weights, grads = make_weights(args.layers, args.width, torch.Generator().manual_seed(0))
    n_params = sum(w.numel() for w in weights)
    print(
        f"device cpu, {torch.get_num_threads()} threads; {args.layers} × {args.width}² = {n_params:,} parameters"
    )
    baseline, baseline_step = contender(lambda ps: torch.optim.AdamW(ps, lr=LR, foreach=True), weights, grads)

    header = (
        f"{'optimizer':<12} {'ms/step':>9} {'×peer':>7} {'×AdamW':>7} {'state B/param':>14}  fastest peer"
    )
    print(header + "\n" + "-" * len(header))
    figures: dict[str, float | int] = {"params": n_params}
    for name in names:
        ours, ours_step = contender(ours_factory(name), weights, grads)
        fns = {"ours": ours_step, "adamw": baseline_step}
        for label, factory in PEERS.get(name, {}).items():
            try:
                fns[label] = contender(factory, weights, grads)[1]
            except (ImportError, RuntimeError, TypeError, ValueError) as err:
                print(f"  (peer {label} unavailable: {err})")
        start = time.perf_counter()
        for fn in fns.values():  # one warm-up call each (state allocation), timed to fit the budget
            fn()
        per_round = time.perf_counter() - start
        repeats = max(1, min(args.repeats, int(args.budget / max(per_round, 1e-9))))
        seconds = time_interleaved(fns, repeats=repeats, warmup=1)
        peer_times = {label: s for label, s in seconds.items() if label not in ("ours", "adamw")}
        fastest = min(peer_times, key=peer_times.get) if peer_times else None
        vs_peer = seconds["ours"] / peer_times[fastest] if fastest else float("nan")
        vs_adamw = seconds["ours"] / seconds["adamw"]
        bytes_per_param = state_bytes_per_param(ours, n_params)
        peer_note = f"{fastest} ({1e3 * peer_times[fastest]:.1f} ms)" if fastest else "none"
        print(
            f"{name:<12} {1e3 * seconds['ours']:9.1f} {vs_peer:7.2f} {vs_adamw:7.2f} {bytes_per_param:14.1f}  "
            f"{peer_note}"
        )
        figures[f"{name}_vs_adamw"] = round(vs_adamw, 3)
        if fastest:
            figures[f"{name}_vs_peer"] = round(vs_peer, 3)
        figures[f"{name}_state_bytes_per_param"] = round(bytes_per_param, 2)
        del ours, fns
    emit(figures)


if __name__ == "__main__":
    main()

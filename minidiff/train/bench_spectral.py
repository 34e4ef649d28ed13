r"""Optimizer-induced spectral scaling of FFN representations (Jha & Reagen, arXiv 2605.21803), at toy scale.

For each optimizer and FFN width :math:`d_{ff} = w \cdot d` (fixed data and hyperparameters, no per-width
tuning, as the paper), train a model, feed it held-out text and take every layer's FFN **post-activation**
(SwiGLU's :math:`\mathrm{silu}(g) \odot u`, the input of the down projection) as a matrix
:math:`H \in \mathbb{R}^{N \times d_{ff}}`. With :math:`\lambda` the eigenvalues of its covariance and
:math:`p = \lambda / \sum\lambda` (:mod:`minidiff.analysis.spectra`):

.. math::  \text{soft rank} = e^{-\sum p_i \ln p_i}, \qquad \text{hard rank} = (\textstyle\sum\lambda)^2/\sum\lambda^2 .

Rows are also grouped by the frequency bucket of their *input* token (HEAD / MID / TAIL: cuts at 1/3 and 2/3 of
the cumulative counts of the training split). Per run, the median over layers; across widths the fit
:math:`\log \text{rank} = \log A + \beta \log d_{ff}`. The paper (160M GPT-2, FineWeb): TAIL hard-rank
:math:`\beta` = 0.44 for AdamW, 1.02 for Muon; soft-rank :math:`\beta` 0.66 vs 0.96.

Differences at toy scale: characters, not BPE tokens, so HEAD holds only a handful of symbols (space, e, t, o);
a 2-layer model; the same token count at every width, with the activations of ``samples`` validation positions.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from minidiff.analysis.spectra import bucket_ranks, fit_rank_exponent, spectral_ranks
from minidiff.train.bench import ModelSize, RunConfig, _dataset, load_model, recipe, validation_windows

__all__ = ["SpectralSetup", "SPECTRAL_SETUPS", "ffn_activations", "spectral_scaling", "SpectralResult"]

BUCKETS = ("all", "head", "mid", "tail")


@dataclass(frozen=True)
class SpectralSetup:
    """The width sweep: d_ff = w · d_model for w in ``widths``, every model trained on ``tokens`` tokens."""

    d_model: int
    widths: tuple[int, ...]
    tokens: int
    n_layers: int = 2
    n_heads: int = 2
    seeds: tuple[int, ...] = (0, 1)
    samples: int = 32768
    optimizers: tuple[str, ...] = ("adamw", "muon")
    batch_size: int = 8
    seq_len: int = 64
    device: str = "cpu"
    corpus: str = "shakespeare"

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise ValueError(f"widths must hold at least 2 values to fit an exponent, got {self.widths}")
        if not self.seeds or not self.optimizers:
            raise ValueError("seeds and optimizers must not be empty")

    def size(self, width: int) -> ModelSize:
        return ModelSize(
            f"d{self.d_model}-ff{width}x", self.d_model, self.n_layers, self.n_heads, width * self.d_model
        )


SPECTRAL_SETUPS: dict[str, SpectralSetup] = {
    "tiny": SpectralSetup(d_model=32, widths=(1, 2, 4, 8), tokens=400_000, samples=32768),
    "tiny-fast": SpectralSetup(d_model=16, widths=(1, 2, 4), tokens=10_240, seeds=(0,), samples=4096, seq_len=32),
    "small": SpectralSetup(d_model=48, widths=(1, 2, 4, 8), tokens=1_500_000, samples=65536, batch_size=16),
    "gpu": SpectralSetup(
        d_model=256, n_layers=8, n_heads=8, widths=(1, 2, 4, 8), tokens=200_000_000, samples=262144,
        batch_size=64, seq_len=256, seeds=(0,), device="cuda",
    ),
}  # fmt: skip


@torch.no_grad()
def ffn_activations(
    model: torch.nn.Module, windows: torch.Tensor, chunk: int = 128
) -> tuple[list, torch.Tensor]:
    """Every block's FFN post-activation on ``windows`` [n, L+1] (inputs ``[:, :-1]``), read by forward
    pre-hooks on ``down``: a list of [N, d_ff] tensors (one per layer, N = n·L) and the input tokens [N]."""
    captured: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    hooks = [
        block.down.register_forward_pre_hook(lambda mod, args, i=i: captured[i].append(args[0].flatten(0, 1)))
        for i, block in enumerate(model.blocks)
    ]
    try:
        model.eval()
        device = next(model.parameters()).device
        for start in range(0, len(windows), chunk):
            model(windows[start : start + chunk, :-1].to(device))
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(h).float().cpu() for h in captured], windows[:, :-1].flatten()


def _ranks(
    model: torch.nn.Module, windows: torch.Tensor, counts: torch.Tensor
) -> dict[str, dict[str, float]]:
    """Median over layers of soft/hard rank, for all rows and per frequency bucket."""
    layers, tokens = ffn_activations(model, windows)
    per_layer = [{"all": spectral_ranks(H)} | bucket_ranks(H, tokens, counts) for H in layers]
    return {b: {k: statistics.median(r[b][k] for r in per_layer) for k in ("soft", "hard")} for b in BUCKETS}


def spectral_scaling(
    setup: str | SpectralSetup = "tiny",
    *,
    cache_dir: str | os.PathLike = "runs/bench",
    lrs: dict[str, float] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> SpectralResult:
    """Train (or read from the cache) every optimizer x width x seed of ``setup`` and measure the ranks.

    ``setup`` is a :class:`SpectralSetup` or a preset name (``tiny``, ``tiny-fast``, ``small``, ``gpu``; in FAST
    mode ``tiny`` means ``tiny-fast``). ``lrs`` overrides the recipes' centre LRs (e.g. with a sweep's tuned
    ones); the other hyperparameters are the recipes' centres.
    """
    from minidiff.config import FAST
    from minidiff.train.bench_sweep import Preset, _Runner

    if isinstance(setup, Preset):
        setup = setup.name
    if isinstance(setup, str):
        name = "tiny-fast" if setup == "tiny" and FAST else setup
        if name not in SPECTRAL_SETUPS:
            raise ValueError(
                f"setup must be a SpectralSetup or one of {sorted(SPECTRAL_SETUPS)}, got {setup!r}"
            )
        setup = SPECTRAL_SETUPS[name]
    lrs = lrs or {}
    configs = {
        (opt, w, seed): RunConfig(
            opt, setup.size(w), setup.tokens, lrs.get(opt, recipe(opt).lr), recipe(opt).defaults, seed=seed,
            batch_size=setup.batch_size, seq_len=setup.seq_len, device=setup.device, val_windows=512,
            corpus=setup.corpus,
        )
        for opt in setup.optimizers for w in setup.widths for seed in setup.seeds
    }  # fmt: skip
    runner = _Runner(cache_dir, workers, progress, save_model=True)
    try:
        runner.run(configs.values(), "spectral")
    finally:
        runner.close()
    data = _dataset(setup.corpus)
    counts = torch.bincount(data.train, minlength=len(data.vocab))
    windows = validation_windows(setup.corpus, setup.seq_len)[: math.ceil(setup.samples / setup.seq_len)]
    rows = []
    for (opt, w, seed), config in configs.items():
        result = runner.results[config.key]
        if result["diverged"]:
            continue
        ranks = _ranks(load_model(config, cache_dir), windows, counts)
        base = {
            "optimizer": opt,
            "width": w,
            "d_ff": w * setup.d_model,
            "seed": seed,
            "val_loss": result["val_loss"],
        }
        rows += [{**base, "bucket": b, "soft": ranks[b]["soft"], "hard": ranks[b]["hard"]} for b in BUCKETS]
    return SpectralResult(asdict(setup), rows, _exponents(rows))


def _exponents(rows: list[dict]) -> list[dict]:
    """β per (optimizer, bucket, soft/hard): pooled over seeds, and its min/max over per-seed fits."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["optimizer"], r["bucket"])].append(r)
    out = []
    for (opt, bucket), rs in groups.items():
        for kind in ("soft", "hard"):
            pts = [(r["d_ff"], r[kind]) for r in rs if r[kind] > 0 and math.isfinite(r[kind])]
            if len({d for d, _ in pts}) < 2:
                continue
            beta, a = fit_rank_exponent([d for d, _ in pts], [v for _, v in pts])
            per_seed = []
            for seed in sorted({r["seed"] for r in rs}):
                sp = [(r["d_ff"], r[kind]) for r in rs if r["seed"] == seed and r[kind] > 0]
                if len(sp) >= 2:
                    per_seed.append(fit_rank_exponent([d for d, _ in sp], [v for _, v in sp])[0])
            out.append(
                {"optimizer": opt, "bucket": bucket, "kind": kind, "beta": beta, "A": a,
                 "beta_min": min(per_seed), "beta_max": max(per_seed), "n_seeds": len(per_seed)}
            )  # fmt: skip
    return out


@dataclass
class SpectralResult:
    """Ranks per (optimizer, width, seed, bucket) in ``rows`` and the fitted exponents in ``exponents``."""

    setup: dict
    rows: list[dict]
    exponents: list[dict] = field(default_factory=list)

    def beta(self, optimizer: str, bucket: str = "tail", kind: str = "hard") -> float:
        for e in self.exponents:
            if (e["optimizer"], e["bucket"], e["kind"]) == (optimizer, bucket, kind):
                return e["beta"]
        return math.nan

    def tail_hard_betas(self) -> dict[str, float]:
        return {opt: self.beta(opt) for opt in dict.fromkeys(r["optimizer"] for r in self.rows)}

    def text(self) -> str:
        """β table: one line per (bucket, kind), one column per optimizer (pooled β [per-seed min, max])."""
        opts = list(dict.fromkeys(e["optimizer"] for e in self.exponents))
        lines = [f"{'bucket':8}{'rank':6}" + "".join(f"{o:>24}" for o in opts)]
        for bucket in BUCKETS:
            for kind in ("soft", "hard"):
                cells = [
                    e
                    for o in opts
                    for e in self.exponents
                    if (e["optimizer"], e["bucket"], e["kind"]) == (o, bucket, kind)
                ]
                text = [f"{e['beta']:.2f} [{e['beta_min']:.2f}, {e['beta_max']:.2f}]" for e in cells]
                lines.append(f"{bucket:8}{kind:6}" + "".join(f"{t:>24}" for t in text))
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike) -> Path:
        path = Path(out_dir) / "spectral.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpectralResult:
        return cls(**json.loads(Path(path).read_text()))

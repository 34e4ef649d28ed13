"""Benchmark presets: the model family, the budgets in multiples of Chinchilla's D_1x, the batch, the grids.

* ``tiny``: minutes of CPU per optimizer; the chapter's committed results (``MINIDIFF_FAST=1``: ``tiny-fast``, a
  CI smoke test of under a minute).
* ``small``: about 70 CPU-minutes for three optimizers (186 runs, measured).
* ``gpu``: sizes that make sense on one H100 (not run on CPU).

Budgets follow Wen et al. (arXiv 2509.02046): D_1x = 20 · N_nonembedding (Hoffmann et al., arXiv 2203.15556),
every optimizer at ``ratios`` x D_1x, AdamW also at ``baseline_ratios`` so that its curve brackets the others.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minidiff.config import FAST
from minidiff.train.bench import ModelSize, RunConfig

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """A benchmark: the model family, the budgets (x D_1x), the data layout and the sweep's grids."""

    name: str
    sizes: tuple[ModelSize, ...]
    ratios: tuple[float, ...]
    baseline_ratios: tuple[float, ...] = ()
    batch_size: int = 8
    seq_len: int = 64
    lr_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (0, 1)
    tune_second: bool = True
    retune_lr: bool = True
    max_extend: int = 2
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    min_ratio: float = 0.01
    eval_points: int = 8
    curve_windows: int = 64
    val_windows: int | None = 512
    optimizers: tuple[str, ...] = ("adamw", "muon", "ademamix")
    device: str = "cpu"
    corpus: str = "shakespeare"
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("sizes", "ratios", "lr_factors", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty: a sweep needs at least one value of each")
        if any(not r > 0 for r in (*self.ratios, *self.baseline_ratios)):
            raise ValueError(f"ratios must be positive, got {self.ratios} and {self.baseline_ratios}")
        if any(not f > 0 for f in self.lr_factors):
            raise ValueError(f"lr_factors must be positive, got {self.lr_factors}")
        batch = self.batch_size * self.seq_len
        for size in self.sizes:
            for ratio in (*self.ratios, *self.baseline_ratios):
                if size.chinchilla_tokens(ratio) < batch:
                    raise ValueError(
                        f"the budget of size {size.name!r} at ratio {ratio} is {size.chinchilla_tokens(ratio)} "
                        f"tokens, smaller than one batch (batch_size · seq_len = {batch}); raise the ratio"
                    )

    def ratios_for(self, optimizer: str, baseline: str) -> list[float]:
        extra = self.baseline_ratios if optimizer == baseline else ()
        return sorted(set(self.ratios) | set(extra))

    def config(
        self, optimizer: str, size: ModelSize, ratio: float, lr: float, hp: dict, seed: int
    ) -> RunConfig:
        return RunConfig(
            optimizer=optimizer,
            size=size,
            tokens=size.chinchilla_tokens(ratio),
            lr=float(f"{lr:.6g}"),
            hparams=hp,
            seed=seed,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            schedule=self.schedule,
            warmup_frac=self.warmup_frac,
            min_ratio=self.min_ratio,
            eval_points=self.eval_points,
            curve_windows=self.curve_windows,
            val_windows=self.val_windows,
            corpus=self.corpus,
            device=self.device,
        )


_L2 = dict(n_layers=2, n_heads=2)
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        sizes=(ModelSize("d16", 16, **_L2), ModelSize("d24", 24, **_L2), ModelSize("d32", 32, **_L2)),
        ratios=(0.25, 0.5, 1.0),
        baseline_ratios=(0.125, 2.0),
        description="3 char-level models of 8k-27k non-embedding parameters, 1/4-1x Chinchilla; ~10 CPU-min "
        "per 3 optimizers (one thread per run)",
    ),
    "small": Preset(
        "small",
        sizes=(ModelSize("d32", 32, **_L2), ModelSize("d48", 48, **_L2), ModelSize("d64", 64, **_L2)),
        ratios=(0.25, 0.5, 1.0),
        baseline_ratios=(0.125, 2.0),
        batch_size=16,
        curve_windows=128,
        val_windows=None,
        optimizers=("adamw", "muon", "soap"),  # the matrix optimizers of Wen et al.'s headline
        description="3 char-level models of 27k-107k non-embedding parameters, 1/4-1x Chinchilla; ~70 CPU-min "
        "for 3 optimizers",
    ),
    "gpu": Preset(
        "gpu",
        sizes=(
            ModelSize("d128", 128, n_layers=4, n_heads=4),
            ModelSize("d192", 192, n_layers=6, n_heads=6),
            ModelSize("d256", 256, n_layers=8, n_heads=8),
        ),
        ratios=(1.0, 2.0, 4.0),
        baseline_ratios=(0.5, 8.0),
        batch_size=64,
        seq_len=256,
        seeds=(0, 1, 2),
        curve_windows=64,
        val_windows=None,
        optimizers=("adamw", "muon", "d-muon", "soap", "lion", "ademamix"),
        device="cuda",
        description="one H100: 0.8M-6.4M non-embedding parameters, 1-4x Chinchilla (AdamW 0.5-8x), 16k-token "
        "batches. Shakespeare (0.9M characters) repeats hundreds of times at these budgets: pass a larger "
        "text as corpus (a file path) for a meaningful run",
    ),
}
_FAST_TINY = dataclasses.replace(
    PRESETS["tiny"],
    name="tiny-fast",
    sizes=(ModelSize("d8", 8, n_layers=1, n_heads=2), ModelSize("d16", 16, n_layers=1, n_heads=2)),
    ratios=(0.25, 0.5),
    baseline_ratios=(0.125, 1.0),
    seq_len=32,
    seeds=(0,),
    tune_second=False,
    max_extend=0,
    eval_points=4,
    curve_windows=16,
    val_windows=128,
    optimizers=("adamw", "muon"),
    description="CI smoke test: 2 one-layer models, no second hyperparameter, one seed",
)


def get_preset(name: str | Preset, *, fast: bool | None = None) -> Preset:
    """A preset by name; in FAST mode (``MINIDIFF_FAST=1``, or ``fast=True``) ``tiny`` becomes ``tiny-fast``."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    if name == "tiny" and (FAST if fast is None else fast):
        return _FAST_TINY
    return PRESETS[name]

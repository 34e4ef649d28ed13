r"""Benchmarking optimizers fairly at toy scale: model sizes, run configs, one cached run.

The protocol follows the two benchmark papers of 2025:

* Semenov, Pagliardini & Jaggi, "Benchmarking Optimizers for LLM Pretraining" (arXiv 2509.01440): every
  optimizer gets its own sweep, the comparison is the **final** validation loss, warm-up then cosine (or WSD)
  decay to 0.01 x the peak LR, hyperparameters tuned near one budget and reused for the others.
* Wen, Hall, Ma & Liang, "Fantastic Pretraining Optimizers and Where to Find Them" (arXiv 2509.02046): model
  sizes x data budgets at multiples of the Chinchilla ratio (Hoffmann et al., 2022, arXiv 2203.15556),
  :math:`D_{1\times} = 20 \cdot N` with :math:`N` the *non-embedding* parameters,
  :math:`N = \text{layers} \cdot (3 d\,d_{ff} + 4 d^2)`; speedup = the data AdamW needs to reach an optimizer's
  final loss divided by the optimizer's data (:mod:`minidiff.train.bench_speedup`).

The benchmark's modules, in the order a run flows through them:

* ``bench`` (this one): model sizes, :class:`RunConfig` with its stable hash, :func:`run_one` with its cache;
* ``bench_recipes``: how each optimizer is built and where its sweep starts;
* ``bench_presets``: ``tiny`` / ``small`` / ``gpu`` (sizes, budgets, grids);
* ``bench_sweep``: the protocol (:func:`~minidiff.train.bench_sweep.sweep`) and its ``BenchResult``;
* ``bench_speedup``: the speedup arithmetic; ``bench_report``: tables, rank flips, the command line;
* ``bench_plots``: plotly figures; ``bench_spectral``: spectral ranks of FFN representations (Jha & Reagen,
  arXiv 2605.21803).

``python -m minidiff.train.bench --preset tiny --optimizers adamw,muon,soap,lion,ademamix --out runs/bench`` runs a
preset, writes CSV/JSON tables and ``plots.html``, prints the tables and ends with one JSON line mapping each
optimizer to its speedup over AdamW and its tuned LR (``--workers 2`` trains two runs at a time, ``--spectral``
adds the spectral measurement; ``MINIDIFF_FAST=1`` shrinks ``tiny`` to a CI smoke test).

**One run** (:func:`run_one`) trains a causal :class:`~minidiff.nn.Transformer` with :func:`~minidiff.train.fit`
on random windows of the training split of a shipped text, evaluates a fixed subset of the validation split at a
few checkpoints (the curve that shows rankings flipping before the decay ends) and a fixed, larger part of it
(``val_windows``; default the whole split) at the end, and caches one JSON file per config hash. While it trains, a ``fit`` checkpoint sits beside it, so an
interrupted run resumes bit-identically; the checkpoint is deleted when the JSON is written (atomically).
A run is single-threaded on CPU: toy models run faster that way and the result does not depend on the machine's
core count. Parallelism is across runs (``workers`` in the sweep). A run whose loss turns non-finite is recorded
(``diverged``, loss NaN, ranked last), not raised, so an LR grid can probe past the stable range.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minidiff.config import seed_everything
from minidiff.nn import Transformer, TransformerConfig
from minidiff.train.bench_recipes import RECIPES, Recipe, build_optimizer, known_optimizers, recipe

__all__ = [
    "VERSION",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "ModelSize",
    "RunConfig",
    "Recipe",
    "RECIPES",
    "recipe",
    "known_optimizers",
    "build_optimizer",
    "validation_windows",
    "mean_loss",
    "run_one",
    "load_result",
    "load_model",
    "has_model",
]

#: Bumped whenever :func:`run_one` computes something else; cached results of other versions are not reused.
VERSION = 1
#: Chinchilla's compute-optimal ratio (Hoffmann et al., 2022): about 20 training tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20


@dataclass(frozen=True)
class ModelSize:
    """A member of the model family: a causal Llama-style Transformer (RMSNorm, RoPE, SwiGLU, untied head)."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int | None = None  # None: the Transformer's default, 8/3 d rounded up to a multiple of 32

    def config(self, vocab_size: int, max_len: int) -> TransformerConfig:
        return TransformerConfig(
            vocab_size=vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            max_len=max_len,
            mask="causal",
        )

    @property
    def ffn_width(self) -> int:
        return self.config(vocab_size=1, max_len=1).d_ff

    @property
    def n_nonembedding(self) -> int:
        """Wen et al.'s N = layers · (3 d d_ff + 4 d²): the attention and SwiGLU matrices (norm gains excluded)."""
        d = self.d_model
        return self.n_layers * (3 * d * self.ffn_width + 4 * d * d)

    def n_total(self, vocab_size: int) -> int:
        """Every parameter: N, the norm gains, the token embedding and the (untied) LM head."""
        d = self.d_model
        return self.n_nonembedding + (2 * self.n_layers + 1) * d + 2 * vocab_size * d

    def chinchilla_tokens(self, ratio: float = 1.0) -> int:
        """``ratio`` x D_1x, with D_1x = 20 · N (Wen et al.'s convention: non-embedding parameters)."""
        return round(ratio * CHINCHILLA_TOKENS_PER_PARAM * self.n_nonembedding)


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides one training run; :attr:`key` is its stable hash (the cache file name).

    ``tokens`` is the budget of *predicted* tokens; the run takes ``tokens // (batch_size · seq_len)`` steps.
    ``hparams`` holds the optimizer's hyperparameters other than the LR (a dict is accepted and stored sorted).
    """

    optimizer: str
    size: ModelSize
    tokens: int
    lr: float
    hparams: tuple = ()
    seed: int = 0
    batch_size: int = 8
    seq_len: int = 64
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    min_ratio: float = 0.01
    clip: float | None = 1.0
    eval_points: int = 8
    curve_windows: int = 128
    val_windows: int | None = None
    corpus: str = "shakespeare"
    device: str = "cpu"

    def __post_init__(self) -> None:
        hparams = self.hparams.items() if isinstance(self.hparams, dict) else self.hparams
        object.__setattr__(self, "hparams", tuple(sorted((str(k), v) for k, v in hparams)))
        if not isinstance(self.optimizer, str) or not self.optimizer:
            raise ValueError(f"optimizer must be a non-empty str, got {self.optimizer!r}")
        for name in ("tokens", "batch_size", "seq_len", "eval_points", "curve_windows"):
            _check_positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.schedule not in ("constant", "cosine", "wsd"):
            raise ValueError(f"schedule must be one of ('constant', 'cosine', 'wsd'), got {self.schedule!r}")
        if self.val_windows is not None:
            _check_positive_int("val_windows", self.val_windows)
        if not 0.0 <= self.warmup_frac < 0.5:
            raise ValueError(f"warmup_frac must lie in [0, 0.5), got {self.warmup_frac!r}")
        batch = self.batch_size * self.seq_len
        if self.tokens < batch:
            raise ValueError(
                f"tokens must be at least one batch (batch_size · seq_len = {batch} tokens), got {self.tokens}"
            )

    @property
    def steps(self) -> int:
        return self.tokens // (self.batch_size * self.seq_len)

    @property
    def warmup(self) -> int:
        return round(self.warmup_frac * self.steps)

    def hp(self) -> dict[str, Any]:
        return dict(self.hparams)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hparams"] = self.hp()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return cls(**{**data, "size": ModelSize(**data["size"])})

    @property
    def key(self) -> str:
        blob = json.dumps({"version": VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _dataset(corpus: str):
    """The vocabulary and splits of a shipped text, or of a UTF-8 file when ``corpus`` is a path."""
    from minidiff.data.text import TextDataset

    if os.path.isfile(corpus):
        return TextDataset.from_text(Path(corpus).read_text(encoding="utf-8"))
    return TextDataset.load(corpus)


def validation_windows(corpus: str, seq_len: int) -> torch.Tensor:
    """The validation split cut into consecutive, non-overlapping windows of ``seq_len + 1`` tokens: [n, L+1]."""
    val = _dataset(corpus).val
    n = len(val) // (seq_len + 1)
    if n < 1:
        raise ValueError(f"seq_len={seq_len} is longer than the validation split ({len(val)} tokens)")
    return val[: n * (seq_len + 1)].view(n, seq_len + 1)


@torch.no_grad()
def mean_loss(model: nn.Module, windows: torch.Tensor, chunk: int = 256) -> float:
    """Mean next-token cross-entropy (nats/token) of ``model`` over ``windows`` [n, L+1]."""
    from minidiff.autoregressive import next_token_loss

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    for start in range(0, len(windows), chunk):
        loss, info = next_token_loss(model, windows[start : start + chunk].to(device))
        total += float(loss) * info["tokens"]
        count += info["tokens"]
    model.train(was_training)
    return total / count


# ------------------------------------------------------------------------------------------- one run
def _paths(config: RunConfig, cache_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
    root = Path(cache_dir)
    return root / f"{config.key}.json", root / f"{config.key}.ckpt.pt", root / f"{config.key}.model.pt"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one


def load_result(config: RunConfig, cache_dir: str | os.PathLike) -> dict | None:
    """The cached result of ``config``, or None."""
    path = _paths(config, cache_dir)[0]
    return json.loads(path.read_text()) if path.exists() else None


def has_model(config: RunConfig, cache_dir: str | os.PathLike) -> bool:
    """Whether the trained weights of ``config`` are cached (runs made with ``save_model=True``)."""
    return _paths(config, cache_dir)[2].exists()


def _compact_history(history, max_points: int = 48) -> dict:
    """``History.to_dict()`` averaged over at most ``max_points`` chunks of steps (small enough to cache)."""
    full = history.to_dict()
    n = len(full["step"])
    edges = [round(i * n / max_points) for i in range(max_points + 1)] if n > max_points else range(n + 1)
    chunks = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    mean = lambda key, a, b: sum(full[key][a:b]) / (b - a)
    out = {key: [full[key][b - 1] for a, b in chunks] for key in ("step", "tokens", "wall_time", "lr")}
    out |= {key: [mean(key, a, b) for a, b in chunks] for key in ("loss", "grad_norm")}
    return out | {"evals": full["evals"], "extra": {}}


class _Stop(Exception):
    """Raised by the batch sampler to stop a run part-way (``stop_after``), leaving its checkpoint."""


def run_one(
    config: RunConfig,
    cache_dir: str | os.PathLike | None = None,
    *,
    save_model: bool = False,
    stop_after: int | None = None,
    progress: bool = False,
) -> dict | None:
    """Train one config (or read its cached result) and return the result dict.

    The result holds ``val_loss`` (the first ``val_windows`` windows of the validation split, default all, at the
    end), ``curve`` (validation loss on the
    first ``curve_windows`` windows at ``eval_points`` checkpoints: step, tokens, val_loss), a compact
    ``history``, parameter counts, ``cpu_time`` (process CPU seconds of this call) and ``diverged`` (True when
    the loss became non-finite; ``val_loss`` is then NaN). With ``cache_dir`` it is cached as
    ``<cache_dir>/<config.key>.json``; ``save_model`` also keeps the trained weights (``<key>.model.pt``).

    ``stop_after=k`` trains at most ``k`` steps in this call and returns None, leaving a checkpoint from which
    the next call continues bit-identically (for time-sliced sweeps, and to test resumption).
    """
    from minidiff.autoregressive import next_token_loss
    from minidiff.data.text import random_windows
    from minidiff.train.loop import fit

    if stop_after is not None:
        _check_positive_int("stop_after", stop_after)
        if cache_dir is None:
            raise ValueError("stop_after needs a cache_dir to keep the checkpoint in")
    json_path, ckpt_path, model_path = _paths(config, cache_dir or ".")
    if cache_dir is not None:
        cached = load_result(config, cache_dir)
        if cached is not None and (not save_model or model_path.exists() or cached["diverged"]):
            return cached
        json_path.parent.mkdir(parents=True, exist_ok=True)
    recipe(config.optimizer)  # unknown names fail here, before any work

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        data = _dataset(config.corpus)
        seed_everything(config.seed)
        model = Transformer(config.size.config(len(data.vocab), config.seq_len)).to(config.device)
        curve_windows = validation_windows(config.corpus, config.seq_len)[: config.curve_windows]
        calls = [0]

        def batches(batch_size: int, generator: torch.Generator) -> torch.Tensor:
            if stop_after is not None and calls[0] == stop_after:
                raise _Stop
            calls[0] += 1
            return random_windows(data.train, config.seq_len + 1, batch_size, generator)  # [B, L+1]

        steps = config.steps
        schedule_kwargs = {} if config.schedule == "constant" else {"min_ratio": config.min_ratio}
        if config.schedule == "wsd":
            schedule_kwargs |= {"decay_frac": 0.2, "shape": "1-sqrt"}  # Semenov et al.'s WSD
        diverged = False
        try:
            history = fit(
                model,
                next_token_loss,
                batches,
                steps=steps,
                batch_size=config.batch_size,
                optimizer=lambda params: build_optimizer(
                    config.optimizer, model, config.lr, config.hp(), steps
                ),
                lr_schedule=config.schedule,
                warmup=config.warmup,
                clip=config.clip,
                eval_fn=lambda m: {"val_loss": mean_loss(m, curve_windows)},
                eval_every=max(1, steps // config.eval_points),
                checkpoint=ckpt_path if cache_dir is not None else None,
                checkpoint_every=stop_after or max(1, steps // 4),
                seed=config.seed,
                progress=progress,
                device=config.device,
                **schedule_kwargs,
            )
        except _Stop:
            return None
        except FloatingPointError as err:
            history, diverged = err.history, True
        val_windows = validation_windows(config.corpus, config.seq_len)[: config.val_windows]
        val_loss = math.nan if diverged else mean_loss(model, val_windows)
    finally:
        torch.set_num_threads(threads)
    evals = [e for e in history.evals if "val_loss" in e]
    tokens_at = dict(zip(history.step, history.tokens))
    result = {
        "key": config.key,
        "version": VERSION,
        "config": config.to_dict(),
        "val_loss": val_loss,
        "diverged": diverged,
        "steps": steps,
        "tokens": steps * config.batch_size * config.seq_len,
        "n_nonembedding": config.size.n_nonembedding,
        "n_params": config.size.n_total(len(data.vocab)),
        "curve": {
            "step": [e["step"] for e in evals],
            "tokens": [tokens_at.get(e["step"], 0) for e in evals],
            "val_loss": [e["val_loss"] for e in evals],
        },
        "history": _compact_history(history),
        "cpu_time": time.process_time() - cpu0,
        "wall_time": time.perf_counter() - wall0,
    }
    if cache_dir is not None:
        if save_model:
            tmp = model_path.with_suffix(f".tmp{os.getpid()}")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, model_path)
        _write_json(json_path, result)
        ckpt_path.unlink(missing_ok=True)
    return result


def load_model(config: RunConfig, cache_dir: str | os.PathLike) -> Transformer:
    """The trained model of a run cached with ``save_model=True``."""
    model_path = _paths(config, cache_dir)[2]
    if not model_path.exists():
        raise FileNotFoundError(
            f"no saved weights for run {config.key} in {cache_dir}; run it with save_model"
        )
    data = _dataset(config.corpus)
    model = Transformer(config.size.config(len(data.vocab), config.seq_len))
    model.load_state_dict(torch.load(model_path, weights_only=True))
    return model.eval()


if __name__ == "__main__":
    import signal
    import sys

    from minidiff.train.bench_sweep import main

    # SIGTERM unwinds like Ctrl-C, so the sweep stops its worker processes (their runs resume from checkpoints)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()

r"""Spectra of weights, gradients, momenta and updates; stable rank; soft and hard spectral rank of
representations; probes that record them from outside any optimizer.

**Matrices.** :func:`singular_values` (float64, descending) of a weight, its gradient, a momentum buffer read from
an optimizer's state by key (:func:`momentum_spectrum`) or an update Δ = W_new − W_old. The *stable rank*
:math:`\|X\|_F^2/\|X\|_2^2 = \sum\sigma_i^2/\sigma_1^2` counts the directions that carry weight; Muon-like updates
(σ ≈ 1) have stable rank ≈ min(m, n), Adam's are much lower.

**Representations** (Jha & Reagen, 2026, "Optimizer-Induced Spectral Scaling Laws", arXiv 2605.21803): for
features H ∈ ℝ^{N×d} (e.g. the FFN post-activation, the input of the down projection), take the eigenvalues λ of
the unbiased covariance (clamped at 1e-12) and p_i = λ_i/Σλ:

.. math::  \text{soft rank} = \exp\Big(-\sum_i p_i \ln p_i\Big), \qquad \text{hard rank} = \frac{(\sum_i\lambda_i)^2}{\sum_i\lambda_i^2}.

λ = (4, 1, 1, 1, 1) gives soft 4.000 and hard 3.200; k equal eigenvalues give k and k. Token buckets
(:func:`frequency_buckets`): sort the vocabulary by corpus frequency and cut at 1/3 and 2/3 of the cumulative
occurrences (HEAD / MID / TAIL, each non-empty); :func:`bucket_ranks` groups rows of H by their *input* token.
The paper fits log rank = log A + β log d_ff across widths (:func:`fit_rank_exponent`) and finds the hard TAIL
exponent β = 0.44 for AdamW vs 1.02 for Muon.

**Probes** measure from outside, so any optimizer works: :class:`UpdateProbe` snapshots chosen parameters around
``optimizer.step`` (step hooks, or ``with probe:``) and keeps the exact Δ; :class:`SpectrumRecorder` stores
per-step singular values of chosen layers' update / gradient / weight / momentum, JSON-able via ``to_dict()``,
which is what the SpectrumViewer widget animates. During ``minidiff.train.fit`` attach it in the optimizer
factory (``fit`` clips gradients before ``step``, so recorded gradients are the clipped ones)::

    recorder = SpectrumRecorder(model, every=10)
    fit(model, loss, data, steps=500, batch_size=32,
        optimizer=lambda params: recorder.attach(hybrid("muon", model, matrix_lr=0.02, adam_lr=3e-3)))
    data = recorder.to_dict()
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "singular_values",
    "stable_rank",
    "momentum_spectrum",
    "covariance_eigenvalues",
    "soft_rank",
    "hard_rank",
    "spectral_ranks",
    "frequency_buckets",
    "bucket_ranks",
    "fit_rank_exponent",
    "UpdateProbe",
    "SpectrumRecorder",
    "KINDS",
]

KINDS = ("update", "gradient", "weight", "momentum")
MOMENTUM_KEYS = ("momentum_buffer", "exp_avg", "momentum")


# --------------------------------------------------------------------------- matrices
def singular_values(x: torch.Tensor) -> torch.Tensor:
    """Singular values in float64, descending; tensors with more than 2 dims are flattened to [shape[0], -1]."""
    if x.ndim < 2:
        raise ValueError(f"singular_values needs a matrix, got shape {tuple(x.shape)}")
    x = x.detach()
    if x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    return torch.linalg.svdvals(x.to(torch.float64))


def stable_rank(x: torch.Tensor) -> float:
    """‖X‖_F² / ‖X‖_2² of a matrix, or Σσ²/σ_max² of a 1-D tensor of singular values (0 for a zero matrix)."""
    s = x.detach().to(torch.float64) if x.ndim == 1 else singular_values(x)
    top = float(s.abs().max()) if s.numel() else 0.0
    return float(s.square().sum()) / top**2 if top > 0 else 0.0


def momentum_spectrum(
    optimizer: torch.optim.Optimizer, param: torch.Tensor, key: str | None = None
) -> torch.Tensor | None:
    """Singular values of ``optimizer.state[param][key]`` (default: the first of ``momentum_buffer``, ``exp_avg``,
    ``momentum`` present); ``None`` when the optimizer keeps no such buffer (yet)."""
    try:
        state = optimizer.state[param]
    except KeyError:
        return None
    keys = (key,) if key is not None else MOMENTUM_KEYS
    for k in keys:
        buffer = state.get(k)
        if isinstance(buffer, torch.Tensor) and buffer.shape == param.shape:
            return singular_values(buffer)
    return None


# --------------------------------------------------------------------------- representations
def covariance_eigenvalues(H: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending, float64, clamped at 1e-12) of the unbiased covariance of the rows of H [N, d]."""
    if H.ndim != 2 or H.shape[0] < 2:
        raise ValueError(f"H must be [N, d] with N >= 2 samples, got shape {tuple(H.shape)}")
    X = H.detach().to(torch.float64)
    X = X - X.mean(dim=0, keepdim=True)
    cov = X.mT @ X / (X.shape[0] - 1)
    return torch.linalg.eigvalsh(cov).flip(0).clamp_min(1e-12)


def _eigenvalues(values: torch.Tensor | Sequence[float]) -> torch.Tensor:
    lam = torch.as_tensor(values, dtype=torch.float64)
    if lam.ndim != 1 or lam.numel() == 0 or bool((lam < 0).any()):
        raise ValueError("eigenvalues must be a non-empty 1-D sequence of non-negative numbers")
    return lam


def soft_rank(eigenvalues: torch.Tensor | Sequence[float]) -> float:
    """exp(entropy of p = λ/Σλ): the effective number of directions."""
    lam = _eigenvalues(eigenvalues)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def hard_rank(eigenvalues: torch.Tensor | Sequence[float]) -> float:
    """(Σλ)² / Σλ² (the participation ratio)."""
    lam = _eigenvalues(eigenvalues)
    return float(lam.sum() ** 2 / lam.square().sum())


def spectral_ranks(H: torch.Tensor) -> dict[str, float]:
    """Soft and hard rank of the representations H [N, d]."""
    lam = covariance_eigenvalues(H)
    return {"soft": soft_rank(lam), "hard": hard_rank(lam)}


def frequency_buckets(
    counts: torch.Tensor | Sequence[float],
    cuts: Sequence[float] = (1 / 3, 2 / 3),
    names: Sequence[str] = ("head", "mid", "tail"),
) -> dict[str, torch.Tensor]:
    """Token ids per frequency bucket: sorted by count (descending), a token goes to the bucket in which the
    cumulative share *before* it falls; buckets are forced non-empty. Counts (50, 20, 10, 8, 6, 4, 2) give
    HEAD {0}, MID {1}, TAIL {2..6}."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if len(names) != len(cuts) + 1:
        raise ValueError(f"names must have len(cuts) + 1 = {len(cuts) + 1} entries, got {len(names)}")
    if (
        counts.ndim != 1
        or counts.numel() < len(names)
        or bool((counts < 0).any())
        or float(counts.sum()) <= 0
    ):
        raise ValueError(
            f"counts must be 1-D, non-negative, positive in total, with at least {len(names)} tokens"
        )
    order = torch.argsort(counts, descending=True, stable=True)
    share_before = (counts[order].cumsum(0) - counts[order]) / counts.sum()
    bucket = torch.bucketize(share_before, torch.tensor(list(cuts), dtype=torch.float64), right=True)
    # Keep every bucket non-empty: steps of at most one bucket per token, and the last tokens reach the last bucket.
    idx = torch.arange(len(bucket))
    bucket = idx + torch.cummin(bucket - idx, 0).values
    bucket = torch.maximum(bucket, idx - (len(bucket) - len(names))).clamp(max=len(names) - 1)
    return {name: order[bucket == b] for b, name in enumerate(names)}


def bucket_ranks(
    H: torch.Tensor,
    tokens: torch.Tensor,
    counts: torch.Tensor | Sequence[float],
    *,
    cuts: Sequence[float] = (1 / 3, 2 / 3),
    names: Sequence[str] = ("head", "mid", "tail"),
    min_samples: int = 2,
) -> dict[str, dict[str, float]]:
    """Soft/hard rank of the rows of H [N, d] grouped by the frequency bucket of their input token ``tokens`` [N].

    A bucket with fewer than ``min_samples`` rows gets NaN ranks (the paper asks for ≥ 1000)."""
    if tokens.shape != H.shape[:1]:
        raise ValueError(
            f"tokens must have shape [{H.shape[0]}] (one input token per row of H), got {tuple(tokens.shape)}"
        )
    buckets = frequency_buckets(counts, cuts, names)
    out = {}
    for name, ids in buckets.items():
        rows = H[torch.isin(tokens, ids.to(tokens.device))]
        if rows.shape[0] < max(2, min_samples):
            out[name] = {"soft": math.nan, "hard": math.nan, "n": int(rows.shape[0])}
        else:
            out[name] = {**spectral_ranks(rows), "n": int(rows.shape[0])}
    return out


def fit_rank_exponent(widths: Sequence[float], ranks: Sequence[float]) -> tuple[float, float]:
    """OLS fit of log rank = log A + β log width; returns (β, A)."""
    x = torch.log(torch.as_tensor(widths, dtype=torch.float64))
    y = torch.log(torch.as_tensor(ranks, dtype=torch.float64))
    if x.numel() < 2 or x.shape != y.shape:
        raise ValueError("widths and ranks must be equally long with at least 2 points")
    xc = x - x.mean()
    beta = float((xc * (y - y.mean())).sum() / xc.square().sum())
    return beta, float(torch.exp(y.mean() - beta * x.mean()))


# --------------------------------------------------------------------------- probes
def _named_params(
    params: nn.Module | Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    layers: Iterable[str] | None,
) -> dict[str, torch.Tensor]:
    if isinstance(params, nn.Module):
        named = dict(params.named_parameters())
        if layers is None:
            from minidiff.optim.groups import MATRIX_ROLES, classify_parameters

            layers = [n for n, role in classify_parameters(params).items() if role in MATRIX_ROLES]
    else:
        named = dict(params.items() if isinstance(params, Mapping) else params)
    if layers is not None:
        layers = list(layers)
        missing = [n for n in layers if n not in named]
        if missing:
            raise ValueError(f"unknown parameter names {missing}; available: {sorted(named)}")
        named = {n: named[n] for n in layers}
    if not named:
        raise ValueError("no parameters to probe")
    return named


class UpdateProbe:
    """Records Δ = p_new − p_old of chosen parameters around ``optimizer.step`` -- exactly, from outside.

    ``params``: a model (default layers: its hidden matrices), ``{name: tensor}`` or ``(name, tensor)`` pairs.
    Use ``probe.attach(optimizer)`` (step pre/post hooks; returns the optimizer) or ``with probe: opt.step()``.
    ``probe.updates`` holds the last Δ per name (``None`` before the first step); ``probe.steps`` counts steps.
    """

    def __init__(self, params: Any, layers: Iterable[str] | None = None) -> None:
        self.params = _named_params(params, layers)
        self.updates: dict[str, torch.Tensor] | None = None
        self.steps = 0
        self._before: dict[str, torch.Tensor] | None = None
        self._handles: list[Any] = []

    def snapshot(self) -> None:
        self._before = {n: p.detach().clone() for n, p in self.params.items()}

    def measure(self) -> dict[str, torch.Tensor]:
        if self._before is None:
            raise RuntimeError("call snapshot() (or enter the probe) before measure()")
        self.updates = {n: p.detach() - self._before[n] for n, p in self.params.items()}
        self._before = None
        self.steps += 1
        return self.updates

    def __enter__(self) -> UpdateProbe:
        self.snapshot()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.measure()
        self._before = None

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        self._handles += [
            optimizer.register_step_pre_hook(lambda *_: self.snapshot()),
            optimizer.register_step_post_hook(lambda *_: self.measure()),
        ]
        return optimizer

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class SpectrumRecorder:
    """Per-step singular values of chosen layers, for the SpectrumViewer widget.

    ``kinds`` ⊆ :data:`KINDS`: ``update`` (Δ of the step), ``gradient`` (``p.grad`` when ``step`` is called),
    ``weight`` (after the step), ``momentum`` (the optimizer's buffer, read by ``momentum_key`` or the usual
    names). Every ``every``-th step is kept; ``top_k`` stores only the largest singular values (stable ranks are
    computed from the full spectrum). ``None`` marks a missing gradient or momentum.
    """

    def __init__(
        self,
        params: Any,
        layers: Iterable[str] | None = None,
        *,
        kinds: Sequence[str] = ("update", "gradient", "weight"),
        every: int = 1,
        top_k: int | None = None,
        momentum_key: str | None = None,
    ) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
        self.params = _named_params(params, layers)
        for name, p in self.params.items():
            if p.ndim < 2:
                raise ValueError(f"layer {name!r} has shape {tuple(p.shape)}; spectra need matrices")
        self.kinds, self.every, self.top_k, self.momentum_key = tuple(kinds), every, top_k, momentum_key
        self.steps: list[int] = []
        self.spectra: dict[str, dict[str, list[list[float] | None]]] = {
            k: {n: [] for n in self.params} for k in kinds
        }
        self.stable: dict[str, dict[str, list[float | None]]] = {
            k: {n: [] for n in self.params} for k in kinds
        }
        self._calls = 0
        self._pending: dict[str, Any] | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._handles: list[Any] = []

    def _spectrum(self, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else (x if x.ndim == 1 else singular_values(x))

    def _append(self, kind: str, name: str, s: torch.Tensor | None) -> None:
        self.spectra[kind][name].append(
            None if s is None else (s[: self.top_k] if self.top_k else s).tolist()
        )
        self.stable[kind][name].append(None if s is None else stable_rank(s))

    def before_step(self) -> None:
        self._calls += 1
        if self._calls % self.every:
            self._pending = None
            return
        self._pending = {
            "before": {n: p.detach().clone() for n, p in self.params.items()}
            if "update" in self.kinds
            else {},
            "gradient": {n: self._spectrum(p.grad) for n, p in self.params.items()}
            if "gradient" in self.kinds
            else {},
        }

    def after_step(self) -> None:
        if self._pending is None:
            return
        for name, p in self.params.items():
            if "update" in self.kinds:
                self._append("update", name, singular_values(p.detach() - self._pending["before"][name]))
            if "gradient" in self.kinds:
                self._append("gradient", name, self._pending["gradient"][name])
            if "weight" in self.kinds:
                self._append("weight", name, singular_values(p))
            if "momentum" in self.kinds:
                s = momentum_spectrum(self._optimizer, p, self.momentum_key) if self._optimizer else None
                self._append("momentum", name, s)
        self.steps.append(self._calls)
        self._pending = None

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Record around every ``optimizer.step()``; returns ``optimizer`` (handy inside a ``fit`` factory)."""
        self._optimizer = optimizer
        self._handles += [
            optimizer.register_step_pre_hook(lambda *_: self.before_step()),
            optimizer.register_step_post_hook(lambda *_: self.after_step()),
        ]
        return optimizer

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers only (``json.dumps`` works); the SpectrumViewer's input."""
        return {
            "layers": list(self.params),
            "shapes": {n: list(p.shape) for n, p in self.params.items()},
            "kinds": list(self.kinds),
            "steps": list(self.steps),
            "every": self.every,
            "top_k": self.top_k,
            "singular_values": {k: {n: list(v) for n, v in d.items()} for k, d in self.spectra.items()},
            "stable_rank": {k: {n: list(v) for n, v in d.items()} for k, d in self.stable.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

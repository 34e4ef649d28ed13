r"""Token-efficiency speedup over AdamW, as the benchmark papers define it.

Wen, Hall, Ma & Liang (2025, arXiv 2509.02046, ``optimizer_sweep_run/Analysis/PhaseII/speedup_estimation.py``):
train AdamW (tuned) to the end at several budgets :math:`D_1 < \dots < D_k`; for an optimizer whose final loss
at budget :math:`D` is :math:`L`, find the data :math:`D_\text{eff}` that AdamW needs to reach :math:`L`, and

.. math::  \text{speedup} = D_\text{eff} / D .

*Worked example* (the notes' test case): AdamW's truth :math:`L(D) = 0.4\,D^{-0.5} + 3` at :math:`D = 1, 2, 4, 8`
gives 3.400, 3.283, 3.200, 3.141; an optimizer reaching 3.200 with :math:`D = 2` has :math:`D_\text{eff} = 4`,
speedup 2.

Two ways to read :math:`D_\text{eff}` off AdamW's points:

* ``method="interp"`` (default): AdamW's final losses made non-increasing in :math:`D` (isotonic regression,
  pool-adjacent-violators) and interpolated linearly in :math:`\log D`. It never extrapolates: a loss below
  AdamW's best is flagged ``"above"`` (the speedup is *at least* :math:`D_k/D`, value NaN), a loss above
  AdamW's smallest-budget loss ``"below"`` (*at most* :math:`D_1/D`).
* ``method="fit"``: Wen et al.'s law :math:`\hat L(D) = \alpha D^{-B} + \beta` by least squares (needs three
  budgets), inverted as :math:`D_\text{eff} = ((L-\beta)/\alpha)^{-1/B}`. Outside :math:`[D_1, D_k]` the value is
  an extrapolation, flagged ``"extrapolated"``; :math:`L \le \beta` gives ``"above"`` with an infinite bound.
  The notes' warning: AdamW's own 16x point reads as 1.22x on its 1-8x fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Speedup", "PowerLaw", "monotone_losses", "fit_power_law", "tokens_to_reach", "speedup", "METHODS"]

METHODS = ("interp", "fit")
FLAGS = ("ok", "above", "below", "extrapolated")


@dataclass(frozen=True)
class Speedup:
    """A speedup and how far to trust it.

    ``flag``: ``"ok"`` (read inside AdamW's budgets), ``"above"`` (better than AdamW ever got: the speedup is at
    least ``bound``, ``value`` NaN), ``"below"`` (worse than AdamW's smallest budget: at most ``bound``, ``value``
    NaN) or ``"extrapolated"`` (``method="fit"`` outside AdamW's budgets: ``value`` is the law's guess).
    """

    value: float
    d_eff: float
    flag: str
    bound: float = math.nan

    def __str__(self) -> str:
        if self.flag == "above":
            return f"> {self.bound:.2f}"
        if self.flag == "below":
            return f"< {self.bound:.2f}"
        return f"{self.value:.2f}" + ("*" if self.flag == "extrapolated" else "")


def _points(tokens: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(tokens, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if d.ndim != 1 or d.shape != loss.shape:
        raise ValueError(f"tokens and losses must be 1-D and equally long, got {d.shape} and {loss.shape}")
    keep = np.isfinite(loss)
    d, loss = d[keep], loss[keep]
    if len(d) < 2:
        raise ValueError(f"AdamW's curve needs at least 2 budgets with a finite loss, got {len(d)}")
    if np.any(d <= 0) or len(np.unique(d)) != len(d):
        raise ValueError(f"tokens must be positive and distinct, got {d.tolist()}")
    order = np.argsort(d)
    return d[order], loss[order]


def monotone_losses(losses: Sequence[float]) -> np.ndarray:
    """The non-increasing sequence closest to ``losses`` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for value in np.asarray(losses, dtype=np.float64):
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:  # a later loss above an earlier one: pool
            (m1, w1), (m2, w2) = blocks.pop(-2), blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), m) for m, w in blocks])


@dataclass(frozen=True)
class PowerLaw:
    """:math:`\\hat L(D) = \\alpha (D/D_\\text{ref})^{-B} + \\beta` (Wen et al.'s AdamW scaling curve)."""

    alpha: float
    exponent: float
    floor: float
    d_ref: float = 1.0

    def loss(self, tokens: float | np.ndarray) -> float | np.ndarray:
        return self.alpha * (np.asarray(tokens) / self.d_ref) ** (-self.exponent) + self.floor

    def tokens_for(self, loss: float) -> float:
        """The budget at which the law reaches ``loss`` (inf when ``loss`` is at or below the floor)."""
        if loss <= self.floor:
            return math.inf
        return self.d_ref * ((loss - self.floor) / self.alpha) ** (-1.0 / self.exponent)


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y ≈ a x + b; returns (a, b, squared error)."""
    A = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(a), float(b), float(np.sum((A @ np.array([a, b]) - y) ** 2))


def fit_power_law(tokens: Sequence[float], losses: Sequence[float], d_ref: float | None = None) -> PowerLaw:
    """Least-squares fit of :math:`\\alpha (D/D_\\text{ref})^{-B} + \\beta` to at least three budgets.

    For a fixed exponent B the law is linear in (α, β), so the error is minimised over B alone: a log-spaced
    grid on [0.01, 5], then golden-section refinement. ``d_ref`` (default: the smallest budget) only sets the
    unit of α. Exact points from a law are recovered to ~1e-8.
    """
    d, loss = _points(tokens, losses)
    if len(d) < 3:
        raise ValueError(f"fitting α·D^-B + β needs at least 3 budgets, got {len(d)}")
    d_ref = float(d[0]) if d_ref is None else float(d_ref)
    x = d / d_ref
    error = lambda b: _linear_fit(x ** (-b), loss)[2]
    grid = np.exp(np.linspace(np.log(0.01), np.log(5.0), 400))
    i = int(np.argmin([error(b) for b in grid]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):  # golden section on [lo, hi]
        b1, b2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if error(b1) < error(b2):
            hi = b2
        else:
            lo = b1
    b = (lo + hi) / 2
    alpha, floor, _ = _linear_fit(x ** (-b), loss)
    return PowerLaw(alpha, float(b), floor, d_ref)


def tokens_to_reach(tokens: Sequence[float], losses: Sequence[float], target: float) -> tuple[float, str]:
    """``(D_eff, flag)``: where AdamW's monotone, log-linear interpolated curve reaches ``target``.

    ``flag`` is ``"ok"``, ``"above"`` (``target`` below every point: D_eff NaN) or ``"below"`` (``target`` above
    the smallest budget's loss: D_eff NaN). On a flat stretch the smallest budget reaching the loss counts.
    """
    d, loss = _points(tokens, losses)
    loss = monotone_losses(loss)
    if target < loss[-1]:
        return math.nan, "above"
    if target > loss[0]:
        return math.nan, "below"
    log_d = np.log(d)
    for i in range(len(d) - 1):
        if loss[i] >= target >= loss[i + 1] and loss[i] > loss[i + 1]:
            t = (loss[i] - target) / (loss[i] - loss[i + 1])
            return float(np.exp(log_d[i] + t * (log_d[i + 1] - log_d[i]))), "ok"
        if loss[i] == target:
            return float(d[i]), "ok"
    return float(d[-1]), "ok"


def speedup(
    adamw_tokens: Sequence[float],
    adamw_losses: Sequence[float],
    tokens: float,
    loss: float,
    *,
    method: str = "interp",
) -> Speedup:
    """The speedup over AdamW of a run that reached ``loss`` with ``tokens``; see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not tokens > 0:
        raise ValueError(f"tokens must be positive, got {tokens!r}")
    d, curve = _points(adamw_tokens, adamw_losses)
    if not math.isfinite(loss):
        return Speedup(math.nan, math.nan, "below", float(d[0] / tokens))
    if method == "interp":
        d_eff, flag = tokens_to_reach(d, curve, loss)
        if flag == "ok":
            return Speedup(d_eff / tokens, d_eff, "ok")
        return Speedup(math.nan, math.nan, flag, float((d[-1] if flag == "above" else d[0]) / tokens))
    law = fit_power_law(d, curve)
    d_eff = law.tokens_for(loss)
    if math.isinf(d_eff):
        return Speedup(math.nan, math.nan, "above", math.inf)
    flag = "ok" if d[0] * (1 - 1e-9) <= d_eff <= d[-1] * (1 + 1e-9) else "extrapolated"
    return Speedup(d_eff / tokens, d_eff, flag)

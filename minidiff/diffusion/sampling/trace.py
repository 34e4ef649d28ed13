"""``Trace``: everything a sampler did, step by step -- what widgets animate, benchmarks count and RL replays.

Steps are numbered 0..S-1; ``states[k]`` is the canvas *before* step k and ``states[k + 1]`` after it, so
``states[0]`` is the initial canvas (prompt + MASK, or prompt + uniform noise) and ``states[-1]`` the result.

Per position ``[B, L]``:

* ``fixed`` -- the prompt (given) positions, never changed;
* ``commit_step`` -- the step that wrote the position's final token; -1 for fixed positions and for a uniform-noise
  token that was never redrawn (it was "final" from the start);
* ``commit_count`` -- how many times a token was written there (1 for every generated position of a sampler without
  remasking; more under ReMDM; the number of value changes for uniform diffusion);
* ``remask_count`` -- how many times a committed token was turned back into MASK (ReMDM);
* ``confidence`` / ``logprob`` -- p_θ(token) and log p_θ(token) of the final token when it was written, under the
  model at temperature 1 without top-p (NaN where nothing was written).

Per step ``[S, B]`` (``calls`` is ``[S]``):

* ``step_logprob`` -- Σ log p_θ of the tokens written in that step (for uniform diffusion: the log-probability of the
  whole posterior transition), ``position_logprob`` -- the log-probability of *which* positions were chosen where the
  sampler chooses them at random (ancestral Bernoulli draws, first-hitting's uniform pick, random order; 0 for
  deterministic orders). Their sum over steps is log π(trajectory), what a policy-gradient method (DCoLT) needs;
* ``times`` -- the diffusion time the step's model call was given (or derived from the masked fraction);
* ``block_bounds`` -- ``[S, B, 2]`` the half-open window [start, end) of positions that step could change;
* ``calls`` -- model calls made in that step (0 when the forward pass was reused: "no change ⇒ reuse"), so
  ``nfe = calls.sum()`` counts real calls only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["Trace", "TraceRecorder"]


@dataclass
class Trace:
    """The record of one sampling run; see the module docstring for every field."""

    states: torch.Tensor  # [S + 1, B, L] long
    fixed: torch.Tensor  # [B, L] bool
    commit_step: torch.Tensor  # [B, L] long
    commit_count: torch.Tensor  # [B, L] long
    remask_count: torch.Tensor  # [B, L] long
    confidence: torch.Tensor  # [B, L] float
    logprob: torch.Tensor  # [B, L] float
    step_logprob: torch.Tensor  # [S, B] float
    position_logprob: torch.Tensor  # [S, B] float
    times: torch.Tensor  # [S, B] float
    block_bounds: torch.Tensor  # [S, B, 2] long
    calls: torch.Tensor  # [S] long
    mask_id: int | None = None
    sampler: str = ""
    params: dict = field(default_factory=dict)

    @property
    def nfe(self) -> int:
        """Number of function (model) evaluations actually made."""
        return int(self.calls.sum())

    @property
    def n_steps(self) -> int:
        return self.states.shape[0] - 1

    @property
    def tokens(self) -> torch.Tensor:
        """The final canvas ``[B, L]``."""
        return self.states[-1]

    @property
    def generated_per_row(self) -> float:
        """Mean number of generated (non-fixed) positions per sequence."""
        return float((~self.fixed).sum()) / max(self.fixed.shape[0], 1)

    @property
    def tokens_per_forward(self) -> float:
        """Generated tokens per sequence divided by model calls (TPF; the model sees the whole batch per call)."""
        return self.generated_per_row / self.nfe if self.nfe else math.inf

    def masked_fraction(self) -> torch.Tensor:
        """``[S + 1, B]`` fraction of generated positions holding MASK after each step (for plots)."""
        if self.mask_id is None:
            return torch.zeros(self.states.shape[:2])
        masked = (self.states == self.mask_id) & ~self.fixed
        return masked.sum(-1).float() / (~self.fixed).sum(-1).clamp_min(1)

    def unmasked_per_step(self) -> torch.Tensor:
        """``[S, B]`` number of positions that went from MASK to a token in each step."""
        if self.mask_id is None:
            return torch.zeros(self.n_steps, self.states.shape[1], dtype=torch.long)
        was, now = self.states[:-1] == self.mask_id, self.states[1:] == self.mask_id
        return (was & ~now).sum(-1)

    def remask_events(self) -> torch.Tensor:
        """``[n, 3]`` rows (step, sequence, position) where a token was turned back into MASK."""
        if self.mask_id is None:
            return torch.zeros(0, 3, dtype=torch.long)
        was, now = self.states[:-1] != self.mask_id, self.states[1:] == self.mask_id
        return (was & now).nonzero()

    def to_dict(self, row: int | None = None) -> dict:
        """A JSON-able dict (lists, floats, ``None`` for NaN) of the whole trace or of sequence ``row``."""

        def plain(x: torch.Tensor):
            if x.is_floating_point():
                return (
                    [plain(v) for v in x] if x.dim() else (None if math.isnan(x.item()) else float(x.item()))
                )
            return x.tolist()

        pick = (lambda x, dim: x.select(dim, row)) if row is not None else (lambda x, dim: x)
        return {
            "sampler": self.sampler,
            "params": dict(self.params),
            "mask_id": self.mask_id,
            "nfe": self.nfe,
            "tokens_per_forward": self.tokens_per_forward,
            "states": plain(pick(self.states, 1)),
            "fixed": plain(pick(self.fixed, 0)),
            "commit_step": plain(pick(self.commit_step, 0)),
            "commit_count": plain(pick(self.commit_count, 0)),
            "remask_count": plain(pick(self.remask_count, 0)),
            "confidence": plain(pick(self.confidence, 0)),
            "logprob": plain(pick(self.logprob, 0)),
            "step_logprob": plain(pick(self.step_logprob, 1)),
            "position_logprob": plain(pick(self.position_logprob, 1)),
            "times": plain(pick(self.times, 1)),
            "block_bounds": plain(pick(self.block_bounds, 1)),
            "calls": plain(self.calls),
        }


class TraceRecorder:
    """Accumulates a :class:`Trace` step by step (used by the shared sampler loop)."""

    def __init__(
        self, x: torch.Tensor, fixed: torch.Tensor, *, mask_id: int | None, sampler: str, params: dict
    ):
        self.states = [x.detach().cpu().clone()]
        self.fixed = fixed.detach().cpu().clone()
        b, n = x.shape
        self.commit_step = torch.full((b, n), -1, dtype=torch.long)
        self.commit_count = torch.zeros(b, n, dtype=torch.long)
        self.remask_count = torch.zeros(b, n, dtype=torch.long)
        self.confidence = torch.full((b, n), math.nan)
        self.logprob = torch.full((b, n), math.nan)
        self.per_step: dict[str, list] = {
            k: [] for k in ("step_logprob", "position_logprob", "times", "bounds", "calls")
        }
        self.mask_id, self.sampler, self.params = mask_id, sampler, params

    def record(
        self, x, *, committed, remasked, confidence, logprob, step_logprob, position_logprob, t, bounds, calls
    ):
        k = len(self.per_step["calls"])
        committed, remasked = committed.cpu(), remasked.cpu()
        self.commit_step[committed] = k
        self.commit_count += committed.long()
        self.remask_count += remasked.long()
        self.confidence = torch.where(committed, confidence.detach().float().cpu(), self.confidence)
        self.logprob = torch.where(committed, logprob.detach().float().cpu(), self.logprob)
        self.commit_step[remasked] = -1
        self.confidence[remasked] = math.nan
        self.logprob[remasked] = math.nan
        self.states.append(x.detach().cpu().clone())
        for key, value in (
            ("step_logprob", step_logprob),
            ("position_logprob", position_logprob),
            ("times", t),
        ):
            self.per_step[key].append(value.detach().float().cpu())
        self.per_step["bounds"].append(bounds.detach().cpu())
        self.per_step["calls"].append(int(calls))

    def finish(self) -> Trace:
        b, n = self.fixed.shape

        def stack(key: str, empty_shape: tuple) -> torch.Tensor:
            values = self.per_step[key]
            return torch.stack(values) if values else torch.zeros(empty_shape)

        return Trace(
            states=torch.stack(self.states),
            fixed=self.fixed,
            commit_step=self.commit_step,
            commit_count=self.commit_count,
            remask_count=self.remask_count,
            confidence=self.confidence,
            logprob=self.logprob,
            step_logprob=stack("step_logprob", (0, b)),
            position_logprob=stack("position_logprob", (0, b)),
            times=stack("times", (0, b)),
            block_bounds=stack("bounds", (0, b, 2)).long(),
            calls=torch.tensor(self.per_step["calls"], dtype=torch.long),
            mask_id=self.mask_id,
            sampler=self.sampler,
            params=self.params,
        )

"""Confidence-ordered unmasking: LLaDA's "low_confidence" remasking and Fast-dLLM's threshold decoding.

LLaDA -- Nie et al., 2025, "Large Language Diffusion Models", arXiv 2502.09992 (``ML-GSAI/LLaDA:generate.py``);
Fast-dLLM -- Wu et al., 2025, arXiv 2505.22618 (``NVlabs/Fast-dLLM:llada/generate.py``); SDAR's
``low_confidence_dynamic`` (``JetAstra/SDAR:generate.py``).

Every step, for every masked position i of the current block:

1. draw a candidate x̂^i from p_θ(· | z) (float64 Gumbel-max at ``temperature``; LLaDA's default 0 = argmax);
2. score the position (``score``):
   ``"max_prob"`` c_i = p_θ(x̂^i) (LLaDA), ``"margin"`` p_θ(top-1) - p_θ(top-2) (FlexMDM's "prob_diff"),
   ``"entropy"`` -H(p_θ(· | z)^i) [uncertain: the name follows Dream's ``alg="entropy"``], and the baselines
   ``"random"`` (LLaDA's "random" remasking) and ``"left_to_right"``;
3. commit the k highest-scoring positions; the others stay masked. Committed tokens never change.

How many (k):

* by default LLaDA's count: the block's n masks spread evenly over its steps, k = ⌊n / steps⌋ plus one for the
  first n mod steps steps (what the linear schedule gives);
* ``count_schedule``: counts from a schedule's α instead -- after step j of T, round(n (1 - α(1 - (j+1)/T)) /
  (1 - α(1))) masks remain;
* ``threshold=τ`` (Fast-dLLM): commit every masked position whose score exceeds τ, always at least the best one
  (so every step makes progress, and NFE adapts to the model's confidence). With ``steps`` as well, also at least the
  scheduled k, so the block finishes within its steps (SDAR's ``low_confidence_dynamic``; default τ there 0.85).
  Thresholds apply to ``"max_prob"`` (Fast-dLLM's default τ = 0.9) and ``"margin"``.

``position_logprob`` is 0 for the deterministic orders and -log C(n, k) for the random one.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.masked import MaskedDiffusion
from minidiff.diffusion.sampling.loop import StepContext, Strategy, Update, run
from minidiff.diffusion.sampling.trace import Trace
from minidiff.diffusion.schedules import Schedule
from minidiff.diffusion.schedules import get as get_schedule

__all__ = ["Confidence", "SCORES", "counts_per_step", "sample_confidence"]

SCORES = ("max_prob", "margin", "entropy", "random", "left_to_right")


def counts_per_step(n: torch.Tensor, steps: int, schedule: str | Schedule | None = None) -> torch.Tensor:
    """Tokens to commit at each of ``steps`` steps ``[B, steps]`` for ``n [B]`` masks (each row sums to n)."""
    n = n.long()
    j = torch.arange(steps, device=n.device)
    if schedule is None:  # LLaDA's get_num_transfer_tokens
        return n[:, None] // steps + (j[None] < (n % steps)[:, None]).long()
    schedule = get_schedule(schedule)
    s = (1.0 - (j + 1).double() / steps).clamp(0.0, 1.0)
    remaining_frac = (1 - schedule.alpha(s)) / (1 - schedule.alpha(1.0))
    remaining = torch.round(n[:, None].double() * remaining_frac[None]).long()
    remaining[:, -1] = 0
    before = torch.cat([n[:, None], remaining[:, :-1]], dim=1)
    return (before - remaining).clamp_min(0)


class Confidence(Strategy):
    """Commit the k best-scoring masked positions per step; see the module docstring."""

    name = "confidence"

    def __init__(
        self,
        process: MaskedDiffusion,
        score: str = "max_prob",
        *,
        threshold: float | None = None,
        count_schedule: str | Schedule | None = None,
        fixed_steps: bool = True,
    ) -> None:
        """``fixed_steps=False`` (threshold decoding without a step budget): a block runs until it has no mask."""
        if not isinstance(process, MaskedDiffusion):
            raise TypeError(
                f"confidence sampling needs a MaskedDiffusion process, got {type(process).__name__}"
            )
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if threshold is not None:
            if score not in ("max_prob", "margin"):
                raise ValueError(f"threshold applies to score 'max_prob' or 'margin', got score={score!r}")
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be in [0, 1] or None, got {threshold!r}")
        self.mask_id, self.score, self.threshold = process.mask_id, score, threshold
        self.count_schedule = get_schedule(count_schedule) if count_schedule is not None else None
        if not fixed_steps and threshold is None:
            raise ValueError(
                "fixed_steps=False needs a threshold (otherwise nothing says how many to commit)"
            )
        self.counts: torch.Tensor | None = None
        self.fixed_steps = fixed_steps

    def params(self) -> dict:
        schedule = self.count_schedule.name if self.count_schedule is not None else None
        return {"score": self.score, "threshold": self.threshold, "count_schedule": schedule}

    def steps_for_block(self, x: torch.Tensor, window: torch.Tensor, steps: int | None) -> int:
        if not self.fixed_steps:  # threshold decoding without a step budget: at least one token per step
            return int((window & (x == self.mask_id)).sum(1).max())
        return steps

    def begin_block(self, x: torch.Tensor, window: torch.Tensor, n_steps: int) -> None:
        n = (window & (x == self.mask_id)).sum(1)
        self.counts = counts_per_step(n, n_steps, self.count_schedule) if self.fixed_steps else None

    def _scores(self, ctx: StepContext, probs: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        if self.score == "max_prob":
            return confidence
        if self.score == "margin":
            top2 = probs.topk(2, dim=-1).values
            return top2[..., 0] - top2[..., 1]
        if self.score == "entropy":
            return -torch.special.entr(probs).sum(-1)
        if self.score == "random":
            return ctx.rand(ctx.x.shape)
        return -torch.arange(ctx.x.shape[1], device=ctx.x.device, dtype=torch.float32).expand(ctx.x.shape)

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        x, masked = ctx.x, ctx.masked
        n = masked.sum(1)
        proposal = ctx.draw(log_probs)
        token_logprob = log_probs.gather(-1, proposal[..., None]).squeeze(-1)
        confidence = token_logprob.exp()
        score = torch.where(masked, self._scores(ctx, log_probs.exp(), confidence).float(), float("-inf"))
        k = self.counts[:, ctx.j] if self.counts is not None else torch.zeros_like(n)
        if self.threshold is not None:
            above = (masked & (score > self.threshold)).sum(1)
            k = torch.maximum(torch.maximum(k, above), torch.ones_like(k))
        k = torch.minimum(k, n)
        order = score.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(x.shape[1], device=x.device).expand_as(order)
        )
        committed = masked & (rank < k[:, None])
        position_logprob = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        if self.score == "random":
            n_, k_ = n.double(), k.double()
            position_logprob = -(torch.lgamma(n_ + 1) - torch.lgamma(k_ + 1) - torch.lgamma(n_ - k_ + 1))
        return Update(
            x=torch.where(committed, proposal, x),
            committed=committed,
            confidence=confidence,
            logprob=token_logprob,
            step_logprob=torch.where(committed, token_logprob, 0.0).sum(-1),
            position_logprob=position_logprob,
        )


def sample_confidence(
    model,
    process: MaskedDiffusion,
    prompt=None,
    *,
    score: str = "max_prob",
    threshold: float | None = None,
    count_schedule: str | Schedule | None = None,
    batch_size: int | None = None,
    length: int | None = None,
    gen_length: int | None = None,
    steps: int | None = None,
    block_length: int | None = None,
    temperature: float = 0.0,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    cache: bool = True,
) -> tuple[torch.Tensor, Trace]:
    """Confidence-ordered decoding; see the module docstring. ``temperature`` defaults to 0 (LLaDA's greedy
    candidates). ``steps=None``: with ``threshold``, as many steps as needed; otherwise one token per step.
    Other arguments as :func:`~minidiff.diffusion.sampling.ancestral.sample_ancestral`."""
    strategy = Confidence(process, score, threshold=threshold, count_schedule=count_schedule)
    strategy.steps_given = steps is not None or threshold is None
    return run(
        model, process, strategy, prompt, batch_size=batch_size, length=length, gen_length=gen_length,
        steps=steps, block_length=block_length, temperature=temperature, top_p=top_p, generator=generator, cache=cache,
    )  # fmt: skip

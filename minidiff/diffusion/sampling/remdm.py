"""ReMDM: predictor–corrector sampling of masked diffusion by remasking already decoded tokens.

Wang, Schiff, Sahoo & Kuleshov, 2025, "Remasking Discrete Diffusion Models with Inference-Time Scaling",
arXiv 2503.00307; code kuleshov-group/remdm (``_ddpm_caching_update``).

ReMDM keeps MDLM's marginals but lets a decoded token return to MASK. With a remasking probability
σ_t ≤ σ_max = min(1, (1 - α_s) / α_t), a step from t to s:

    unmasked token: remasked with probability σ_t, kept otherwise;
    masked token:   unmasked (value from p_θ) with probability (α_s - (1 - σ_t) α_t) / (1 - α_t),
                    stays masked with probability (1 - α_s - σ_t α_t) / (1 - α_t).

Strategies for σ_t (``strategy``):

* ``"cap"``: σ_t = min(η, σ_max);
* ``"rescale"``: σ_t = η σ_max;
* ``"conf"``: σ_t^i = σ_max · softmax_i(-c_i) over the decoded positions, c_i = p_θ(x^i) when position i was
  decoded (less confident tokens are remasked more often; masked positions use σ = 0, as the code does);
* ``"loop"``: three phases on the step grid. For t > t_on, α rises linearly from 0 to α_on (plain MDLM). For
  t_on ≥ t > t_off, α stays at α_on and tokens are remasked at σ = η while as many are unmasked: the corrector
  loop. For t ≤ t_off, α rises linearly from α_on to 1 (MDLM again). The α path is linear in t, as in the code,
  whatever the process's schedule.

Defaults are the paper's loop configuration (``scripts/remdm-loop.sh``): η = 0.02, t_on = 0.55, t_off = 0.05,
α_on = 0.9 (the paper samples with nucleus p = 0.9 and 1024 steps; pass ``top_p=0.9``). ``cap``/``rescale``/``conf``
use the process's schedule. ReMDM's remasking means every step is a real model call (the cache rarely applies),
and committed tokens can change: ``trace.remask_count`` counts how often. The last step goes to α = 1 with
σ_max = 0, so no MASK is left.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.masked import MaskedDiffusion
from minidiff.diffusion.sampling.ancestral import Ancestral, masked_step
from minidiff.diffusion.sampling.loop import StepContext, Update, run
from minidiff.diffusion.sampling.trace import Trace

__all__ = ["ReMDM", "sample_remdm", "REMASK_STRATEGIES"]

REMASK_STRATEGIES = ("cap", "rescale", "conf", "loop")


class ReMDM(Ancestral):
    """The ancestral step with remasking probability σ_t from one of :data:`REMASK_STRATEGIES`."""

    name = "remdm"
    monotone = False

    def __init__(
        self,
        process: MaskedDiffusion,
        strategy: str = "loop",
        *,
        eta: float = 0.02,
        t_on: float = 0.55,
        t_off: float = 0.05,
        alpha_on: float = 0.9,
    ) -> None:
        super().__init__(process)
        if strategy not in REMASK_STRATEGIES:
            raise ValueError(f"strategy must be one of {REMASK_STRATEGIES}, got {strategy!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        if not (0.0 < t_off < t_on < 1.0 and 0.0 < alpha_on < 1.0):
            raise ValueError(
                f"need 0 < t_off < t_on < 1 and 0 < alpha_on < 1, got t_off={t_off!r}, t_on={t_on!r}, alpha_on={alpha_on!r}"
            )
        self.strategy, self.eta, self.t_on, self.t_off, self.alpha_on = strategy, eta, t_on, t_off, alpha_on
        self.neg_confidence: torch.Tensor | None = None

    def params(self) -> dict:
        keys = (
            ("strategy", "eta", "t_on", "t_off", "alpha_on")
            if self.strategy == "loop"
            else ("strategy", "eta")
        )
        return {k: getattr(self, k) for k in keys}

    def begin(self, x: torch.Tensor, fixed: torch.Tensor) -> None:
        self.neg_confidence = torch.full(x.shape, float("-inf"), device=x.device)

    def _loop_alpha(self, t: float) -> float:
        if t > self.t_on:
            return (1 - t) * self.alpha_on / (1 - self.t_on)
        if t <= self.t_off:
            return 1 - t * (1 - self.alpha_on) / self.t_off
        return self.alpha_on

    def alphas(self, ctx: StepContext) -> tuple[float, float]:
        if self.strategy != "loop":
            return super().alphas(ctx)
        t, s = ctx.grid
        return self._loop_alpha(t), 1.0 if ctx.j == ctx.n_steps - 1 else self._loop_alpha(s)

    def sigma(self, ctx: StepContext, alpha_t: float, alpha_s: float):
        sigma_max = min(1.0, (1 - alpha_s) / alpha_t) if alpha_t > 0 else 1.0
        if self.strategy == "cap":
            return min(self.eta, sigma_max)
        if self.strategy == "rescale":
            return self.eta * sigma_max
        if self.strategy == "loop":
            t = ctx.grid[0]
            return min(self.eta, sigma_max) if self.t_off < t <= self.t_on else 0.0
        decoded = ctx.window & ~ctx.masked
        scores = torch.where(decoded, self.neg_confidence, float("-inf"))
        weights = torch.where(decoded.any(-1, keepdim=True), scores.softmax(-1), 0.0)
        return (weights * sigma_max).nan_to_num(0.0)

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        alpha_t, alpha_s = self.alphas(ctx)
        update = masked_step(ctx, log_probs, alpha_t, alpha_s, self.sigma(ctx, alpha_t, alpha_s))
        self.neg_confidence = torch.where(update.committed, -update.confidence, self.neg_confidence)
        self.neg_confidence = self.neg_confidence.masked_fill(update.remasked, float("-inf"))
        return update


def sample_remdm(
    model,
    process: MaskedDiffusion,
    prompt=None,
    *,
    strategy: str = "loop",
    eta: float = 0.02,
    t_on: float = 0.55,
    t_off: float = 0.05,
    alpha_on: float = 0.9,
    batch_size: int | None = None,
    length: int | None = None,
    gen_length: int | None = None,
    steps: int | None = None,
    block_length: int | None = None,
    temperature: float = 1.0,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    cache: bool = True,
) -> tuple[torch.Tensor, Trace]:
    """ReMDM sampling; see the module docstring. Returns ``(tokens [B, L], trace)``; other arguments as
    :func:`~minidiff.diffusion.sampling.ancestral.sample_ancestral`."""
    strategy_obj = ReMDM(process, strategy, eta=eta, t_on=t_on, t_off=t_off, alpha_on=alpha_on)
    return run(
        model, process, strategy_obj, prompt, batch_size=batch_size, length=length, gen_length=gen_length,
        steps=steps, block_length=block_length, temperature=temperature, top_p=top_p, generator=generator, cache=cache,
    )  # fmt: skip

"""Ancestral sampling of uniform-state diffusion, with an optional forward–backward corrector.

UDLM -- Schiff et al., 2024, arXiv 2412.10193; Duo -- Sahoo et al., 2025, arXiv 2506.10892; the posterior as in
``jdeschena/blockgen:samplers.py`` (``uniform_posterior_probs``).

Start from uniform noise over the K states; on a uniform grid 1 → 0, step from t to s by drawing every generated
position from the exact posterior with the denoiser's prediction substituted for the clean token (the "mean"
parameterisation; see :meth:`~minidiff.diffusion.uniform.UniformDiffusion.posterior`):

    z_s ~ q(z_s | z_t, x = p_θ(· | z_t)).

The last step goes to α_s = 1: it keeps z_t with probability K α_t p_θ(z_t) / (K α_t p_θ(z_t) + 1 - α_t) and
otherwise draws from p_θ. Any token may change at any step -- there is no MASK and nothing is "committed" for good;
the trace records every change (``commit_count``) and ``commit_step`` is the step of the last one. ``temperature``
and ``top_p`` reshape p_θ before it enters the posterior (Duo applies nucleus sampling the same way).

**Corrector** (``corrector_steps = c``) [derived: a predictor–corrector in the sense of Campbell et al., 2022,
arXiv 2205.14987, built from the two kernels we have]: after each predictor step to s (except the last), c times
re-noise the window forward from s to t (keep with probability α_t / α_s, else a uniform state) and take the
predictor step to s again. With an exact denoiser this leaves the marginal q_s invariant and pulls the sample
toward it; each corrector step costs one model call. ``step_logprob`` sums the predictor moves' log-probabilities
(temperature 1); the corrector's re-noising draws are not included.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.sampling.loop import StepContext, Strategy, Update, draw, run
from minidiff.diffusion.sampling.trace import Trace
from minidiff.diffusion.uniform import UniformDiffusion
from minidiff.sampling import filter_logits

__all__ = ["UniformAncestral", "sample_uniform"]


class UniformAncestral(Strategy):
    """Posterior sampling of the uniform process; see the module docstring."""

    name = "uniform"
    monotone = False

    def __init__(self, process: UniformDiffusion, corrector_steps: int = 0) -> None:
        if not isinstance(process, UniformDiffusion):
            raise TypeError(
                f"uniform sampling needs a UniformDiffusion process, got {type(process).__name__}"
            )
        if not isinstance(corrector_steps, int) or corrector_steps < 0:
            raise ValueError(f"corrector_steps must be a non-negative int, got {corrector_steps!r}")
        self.process, self.corrector_steps = process, corrector_steps

    def params(self) -> dict:
        return {"corrector_steps": self.corrector_steps}

    def time(self, ctx: StepContext) -> torch.Tensor:
        return torch.full((ctx.x.shape[0],), ctx.grid[0], device=ctx.x.device)

    def alphas(self, ctx: StepContext) -> tuple[float, float]:
        t, s = ctx.grid
        schedule = self.process.schedule
        return schedule.alpha(t), 1.0 if ctx.j == ctx.n_steps - 1 else schedule.alpha(s)

    def _predict(
        self, ctx: StepContext, z_t: torch.Tensor, log_probs: torch.Tensor, alpha_t: float, alpha_s: float
    ):
        """z_s drawn from the posterior in the window, and the log-probability of that move at temperature 1."""
        logits = filter_logits(log_probs, top_p=ctx.top_p) if ctx.top_p is not None else log_probs
        if ctx.temperature == 0:
            x_probs = torch.nn.functional.one_hot(logits.argmax(-1), log_probs.shape[-1]).double()
        else:
            x_probs = (logits.double() / ctx.temperature).softmax(-1)
        q = self.process.posterior(x_probs, z_t, alpha_t, alpha_s)
        z_s = torch.where(ctx.window, draw(q.log(), generator=ctx.generator), z_t)
        q_model = self.process.posterior(log_probs.double().exp(), z_t, alpha_t, alpha_s)
        move_logprob = q_model.gather(-1, z_s[..., None]).squeeze(-1).log()
        return z_s, torch.where(ctx.window, move_logprob, 0.0).sum(-1)

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        alpha_t, alpha_s = self.alphas(ctx)
        z, step_logprob = self._predict(ctx, ctx.x, log_probs, alpha_t, alpha_s)
        if ctx.j < ctx.n_steps - 1:
            t = self.time(ctx)
            for _ in range(self.corrector_steps):
                keep = ctx.rand(z.shape) < alpha_t / alpha_s
                noise = self.process.prior(z.shape, generator=ctx.generator, device=z.device)
                z_t = torch.where(ctx.window & ~keep, noise, z)
                log_probs = ctx.forward(z_t, t)
                z, corrector_logprob = self._predict(ctx, z_t, log_probs, alpha_t, alpha_s)
                step_logprob = step_logprob + corrector_logprob
        token_logprob = log_probs.gather(-1, z[..., None]).squeeze(-1)
        return Update(
            x=z,
            committed=ctx.window & (z != ctx.x),
            confidence=token_logprob.exp(),
            logprob=token_logprob,
            step_logprob=step_logprob,
            position_logprob=torch.zeros_like(step_logprob),
        )


def sample_uniform(
    model,
    process: UniformDiffusion,
    prompt=None,
    *,
    corrector_steps: int = 0,
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
    """Uniform-state ancestral sampling (plus ``corrector_steps`` per step); returns ``(tokens, trace)``.
    Other arguments as :func:`~minidiff.diffusion.sampling.ancestral.sample_ancestral`."""
    return run(
        model, process, UniformAncestral(process, corrector_steps), prompt, batch_size=batch_size, length=length,
        gen_length=gen_length, steps=steps, block_length=block_length, temperature=temperature, top_p=top_p,
        generator=generator, cache=cache,
    )  # fmt: skip

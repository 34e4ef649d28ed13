"""Ancestral sampling of masked diffusion: the exact reverse posterior, MDLM's "ddpm_cache" sampler.

Sahoo et al., 2024, "Simple and Effective Masked Diffusion Language Models", arXiv 2406.07524 (§3.3, App. B).

On a uniform grid 1 = t_0 > t_1 > ... > t_T = 0 (per block), a step from t to s:

    masked token:   unmasked with probability (α_s - α_t) / (1 - α_t), its value drawn from p_θ(· | z_t),
                    otherwise stays masked (probability (1 - α_s) / (1 - α_t));
    unmasked token: copied (SUBS carry-over).

**"No change ⇒ reuse the forward pass."** When a step unmasks nothing and the model is not time-conditioned, the
next step's input is identical, so the loop reuses the last p_θ instead of calling the model: NFE is the number of
steps in which something changed, at most the number of generated tokens however many steps are asked for. With a
time-conditioned model every step is a real call.

Differences from MDLM's code, on purpose: our grid ends at s = 0 with α = 1 (forced for schedules whose α(0) < 1),
so the last step commits every remaining mask with a *sample* from p_θ. MDLM's grid ends at ε = 1e-5 and then takes
a greedy argmax "noise removal" pass (one more NFE). Defaults: temperature 1, no nucleus (MDLM's OWT samples use
p = 1; ReMDM uses p = 0.9).
"""

from __future__ import annotations

import torch

from minidiff.diffusion.masked import MaskedDiffusion
from minidiff.diffusion.sampling.loop import StepContext, Strategy, Update, run
from minidiff.diffusion.sampling.trace import Trace

__all__ = ["Ancestral", "masked_step", "sample_ancestral"]


def _bernoulli_logprob(event: torch.Tensor, p: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Σ over ``region`` of log P(event) for independent Bernoulli(p) draws, per row ``[B]``."""
    logp = torch.where(event, p.log(), torch.log1p(-p))
    return torch.where(region, logp, 0.0).sum(-1)


def masked_step(
    ctx: StepContext, log_probs: torch.Tensor, alpha_t: float, alpha_s: float, sigma=0.0
) -> Update:
    """One reverse step from α_t to α_s with remasking probability ``sigma`` (scalar or ``[B, L]``; 0 = MDLM).

    ReMDM's posterior (Wang et al., 2025, arXiv 2503.00307, eq. 7): an unmasked token is remasked with probability
    σ; a masked token is unmasked with probability (α_s - (1 - σ) α_t) / (1 - α_t) (σ = 0 gives MDLM).
    """
    x, masked = ctx.x, ctx.masked
    unmasked = ctx.window & ~masked
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape)
    if alpha_t < 1.0:
        p_unmask = ((alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t)).clamp(0.0, 1.0)
    else:
        p_unmask = torch.ones_like(sigma)
    u = ctx.rand(x.shape).double()
    committed = masked & (u < p_unmask)
    remasked = unmasked & (u < sigma)
    proposal = ctx.draw(log_probs)
    new_x = torch.where(committed, proposal, x)
    new_x = torch.where(remasked, torch.full_like(x, ctx.process.mask_id), new_x)
    token_logprob = log_probs.gather(-1, proposal[..., None]).squeeze(-1)
    position_logprob = _bernoulli_logprob(committed, p_unmask, masked) + _bernoulli_logprob(
        remasked, sigma, unmasked
    )
    return Update(
        x=new_x,
        committed=committed,
        confidence=token_logprob.exp(),
        logprob=token_logprob,
        step_logprob=torch.where(committed, token_logprob, 0.0).sum(-1),
        position_logprob=position_logprob,
        remasked=remasked,
    )


class Ancestral(Strategy):
    """MDLM's ancestral step on the block's uniform time grid."""

    name = "ancestral"

    def __init__(self, process: MaskedDiffusion) -> None:
        if not isinstance(process, MaskedDiffusion):
            raise TypeError(
                f"{self.name} sampling needs a MaskedDiffusion process, got {type(process).__name__}"
            )
        self.schedule = process.schedule

    def alphas(self, ctx: StepContext) -> tuple[float, float]:
        """(α_t, α_s) of this step; the last step of a block goes to α = 1."""
        t, s = ctx.grid
        return self.schedule.alpha(t), 1.0 if ctx.j == ctx.n_steps - 1 else self.schedule.alpha(s)

    def time(self, ctx: StepContext) -> torch.Tensor:
        return torch.full((ctx.x.shape[0],), ctx.grid[0], device=ctx.x.device)

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        return masked_step(ctx, log_probs, *self.alphas(ctx))


def sample_ancestral(
    model,
    process: MaskedDiffusion,
    prompt=None,
    *,
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
    """Ancestral sampling; see the module docstring. Returns ``(tokens [B, L], trace)``.

    ``prompt``: ``None`` (with ``batch_size`` and ``length``), a :class:`~minidiff.data.Batch`, ``(tokens, fixed)``
    or a prefix tensor (see :func:`~minidiff.diffusion.sampling.loop.make_canvas`). ``steps`` defaults to the
    number of generated positions; ``block_length`` decodes semi-autoregressively, each block on its own grid.
    """
    return run(
        model, process, Ancestral(process), prompt, batch_size=batch_size, length=length, gen_length=gen_length,
        steps=steps, block_length=block_length, temperature=temperature, top_p=top_p, generator=generator, cache=cache,
    )  # fmt: skip

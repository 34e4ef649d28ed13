"""First-hitting sampling of masked diffusion: jump straight to the next time a token is unmasked.

Zheng et al., 2024, "Masked Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit Inaccurate
Categorical Sampling", arXiv 2409.02908; the default sampler of BD3-LM when steps ≫ block size
(``kuleshov-group/bd3lms:diffusion.py`` ``_semi_ar_sampler``).

In the reverse process every masked token waits for its own unmasking time, and these are independent. With n
tokens still masked at time t, the largest of them (the next event going backwards) is s with

    P(no token unmasks in (s, t]) = ((1 - α_s) / (1 - α_t))^n  ⇒  1 - α_s = (1 - α_t) u^{1/n},  u ~ U(0, 1),

which for the log-linear schedule is BD3-LM's ``t ← t · u^{1/n}``. At s exactly one masked token -- uniformly chosen
-- is unmasked with a value drawn from p_θ(· | z_s). The sampler is *exact* (no discretisation error; with an
exact p_θ it reproduces the data distribution) and takes exactly one step, and one model call, per generated
token, so it has no ``steps`` argument. A time-conditioned model is called at the event time s.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.masked import MaskedDiffusion
from minidiff.diffusion.sampling.loop import StepContext, Strategy, Update, run
from minidiff.diffusion.sampling.trace import Trace

__all__ = ["FirstHitting", "sample_first_hitting"]


class FirstHitting(Strategy):
    """One masked token per step, at the first-hitting time; see the module docstring."""

    name = "first_hitting"
    needs_steps = False

    def __init__(self, process: MaskedDiffusion) -> None:
        if not isinstance(process, MaskedDiffusion):
            raise TypeError(
                f"first-hitting sampling needs a MaskedDiffusion process, got {type(process).__name__}"
            )
        self.schedule, self.mask_id = process.schedule, process.mask_id
        self.t: torch.Tensor | None = None

    def steps_for_block(self, x: torch.Tensor, window: torch.Tensor, steps: int | None) -> int:
        return int((window & (x == self.mask_id)).sum(1).max())

    def begin(self, x: torch.Tensor, fixed: torch.Tensor) -> None:
        self.t = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)

    def begin_block(self, x: torch.Tensor, window: torch.Tensor, n_steps: int) -> None:
        self.t = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)

    def time(self, ctx: StepContext) -> torch.Tensor:
        n = ctx.masked.sum(1)
        u = ctx.rand(n.shape).double()
        one_minus_alpha_s = (1 - self.schedule.alpha(self.t)) * u ** (1.0 / n.clamp_min(1))
        s = self.schedule.t_of_alpha(1 - one_minus_alpha_s)
        self.t = torch.where(n > 0, torch.minimum(s, self.t), self.t)
        return self.t.float()

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        x, masked = ctx.x, ctx.masked
        n = masked.sum(1)
        pick = torch.where(masked, ctx.rand(x.shape), -1.0).argmax(1)  # uniform among the masked positions
        committed = torch.nn.functional.one_hot(pick, x.shape[1]).bool() & masked
        proposal = ctx.draw(log_probs)
        token_logprob = log_probs.gather(-1, proposal[..., None]).squeeze(-1)
        return Update(
            x=torch.where(committed, proposal, x),
            committed=committed,
            confidence=token_logprob.exp(),
            logprob=token_logprob,
            step_logprob=torch.where(committed, token_logprob, 0.0).sum(-1),
            position_logprob=torch.where(n > 0, -n.clamp_min(1).double().log(), 0.0),
        )


def sample_first_hitting(
    model,
    process: MaskedDiffusion,
    prompt=None,
    *,
    batch_size: int | None = None,
    length: int | None = None,
    gen_length: int | None = None,
    steps: None = None,
    block_length: int | None = None,
    temperature: float = 1.0,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    cache: bool = True,
) -> tuple[torch.Tensor, Trace]:
    """First-hitting sampling; one step per generated token, so ``steps`` must be ``None``. Other arguments as
    :func:`~minidiff.diffusion.sampling.ancestral.sample_ancestral`."""
    if steps is not None:
        raise ValueError(
            f"first-hitting sampling takes one step per masked token; steps must be None, got {steps!r}"
        )
    return run(
        model, process, FirstHitting(process), prompt, batch_size=batch_size, length=length, gen_length=gen_length,
        block_length=block_length, temperature=temperature, top_p=top_p, generator=generator, cache=cache,
    )  # fmt: skip

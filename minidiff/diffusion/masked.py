"""Masked (absorbing-state) diffusion: MDLM, the absorbing SEDD and LLaDA share this process.

Papers: MDLM -- Sahoo et al., 2024, "Simple and Effective Masked Diffusion Language Models", arXiv 2406.07524;
SEDD -- Lou et al., 2024, arXiv 2310.16834; LLaDA -- Nie et al., 2025, arXiv 2502.09992.

**Forward process.** Each token is independently replaced by the mask token m with probability 1 - α_t,

    q(z_t^i | x^i) = Cat(z_t^i ; α_t x^i + (1 - α_t) m),

and a masked token stays masked. **Reverse step** (s < t): a masked token is unmasked with probability
(α_s - α_t) / (1 - α_t), its value drawn from the denoiser p_θ(· | z_t); unmasked tokens are copied.

**SUBS parameterisation** (MDLM §3.2.3): the network's logit for m is set to -∞ ("zero masking probabilities")
before the log-softmax, and at unmasked positions the distribution is overwritten by a one-hot on the current
token ("carry-over unmasking"). :meth:`MaskedDiffusion.log_probs` does both; samplers use it.

**Continuous-time NELBO** (MDLM eq. 10), in nats per scored token:

    L_∞ = E_{t ~ U[0, 1]} E_{q(z_t | x)} [ -α'_t / (1 - α_t) Σ_{i : z_t^i = m} -log p_θ(x^i | z_t) ].

Only masked positions contribute (carry-over makes the others exactly zero), so the loss is independent of the
logits at unmasked positions, of the mask logit, and of a constant added to a position's logits. With the
log-linear schedule the weight is 1/t. Times are drawn on [t_eps, 1], t_eps = 1e-3, with MDLM's antithetic
sampler; the expectation over [0, t_eps] is left out, as in MDLM.

**Discrete-time NELBO** with T steps (MDLM eq. 8), t ∈ {1/T, ..., 1} and s = t - 1/T:

    L_T = Σ_{k=1}^{T} E_q [ (α_s - α_t) / (1 - α_t) Σ_{i : z_t^i = m} -log p_θ(x^i | z_t) ],

estimated as T times the term at a uniformly drawn grid time; it is the exact NELBO of the T-step ancestral sampler.
As T grows it tends to L_∞ (for α = 1 - t it is a right Riemann sum of L_∞'s integral). [derived] For a denoiser that
knows the data, L_T averaged over the data lies above L_∞ (= the data entropy) and falls toward it as T grows: the
T-step sampler pays for unmasking several tokens at once from a factorised p_θ. For a single sequence, or an
imperfect model, L_T may fall on either side of L_∞. The prior term
KL(q(z_1 | x) ‖ δ_m) is dropped (it is zero when α(1) = 0; MDLM drops it for the log-linear α(1) = ε as well), and so
is the reconstruction term at t = 0 (zero when α(0) = 1).

Defaults follow MDLM: log-linear schedule with ε = 1e-3, antithetic time sampling, t_eps = 1e-3, no time
conditioning (the network is not told t).
"""

from __future__ import annotations

import torch

from minidiff.diffusion.base import DiffusionProcess, as_time, rand
from minidiff.diffusion.schedules import Schedule

__all__ = ["MaskedDiffusion"]


class MaskedDiffusion(DiffusionProcess):
    """The absorbing-state process over ``vocab_size`` tokens with mask token ``mask_id``.

    ``include_pad``: score the PAD tail of a :class:`~minidiff.data.Batch` (default; see
    :mod:`minidiff.diffusion.base`). ``t_range=(β, ω)`` clips training times (BD3-LM's clipped schedules; see
    :func:`~minidiff.diffusion.schedules.times_for_mask_rates`), ``t_beta=(a, b)`` draws them from a Beta
    distribution; both change the training objective's weighting, never :meth:`bound`.
    """

    absorbing = True

    def __init__(
        self,
        vocab_size: int,
        mask_id: int,
        schedule: str | Schedule = "loglinear",
        *,
        include_pad: bool = True,
        t_eps: float = 1e-3,
        t_range: tuple[float, float] = (0.0, 1.0),
        antithetic: bool = True,
        t_beta: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(
            vocab_size,
            schedule,
            include_pad=include_pad,
            t_eps=t_eps,
            t_range=t_range,
            antithetic=antithetic,
            t_beta=t_beta,
        )
        if not isinstance(mask_id, int) or isinstance(mask_id, bool) or not 0 <= mask_id < vocab_size:
            raise ValueError(f"mask_id must be an int in [0, vocab_size={vocab_size}), got {mask_id!r}")
        self.mask_id = mask_id

    def __repr__(self) -> str:
        return f"MaskedDiffusion(vocab_size={self.vocab_size}, mask_id={self.mask_id}, schedule={self.schedule!r})"

    def check_tokens(self, x0: torch.Tensor) -> None:
        super().check_tokens(x0)
        if bool((x0 == self.mask_id).any()):
            raise ValueError(f"clean tokens x0 must not contain the mask token (mask_id={self.mask_id})")

    def _alpha(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """α(t) as float32, shaped to broadcast over ``like [B, L]``."""
        alpha = self.schedule.alpha(t).float()
        return alpha[:, None] if alpha.dim() == 1 else alpha

    def corrupt(
        self, x0: torch.Tensor, t, *, fixed: torch.Tensor | None = None, generator=None
    ) -> torch.Tensor:
        """z_t: each token (outside ``fixed``) masked independently with probability 1 - α(t)."""
        t = as_time(t, x0)
        masked = rand(x0.shape, generator, x0.device) >= self._alpha(t, x0)
        if fixed is not None:
            masked &= ~fixed
        return torch.where(masked, torch.full_like(x0, self.mask_id), x0)

    def prior(self, shape, *, generator=None, device=None) -> torch.Tensor:
        """The t = 1 state: every token masked."""
        return torch.full(shape, self.mask_id, dtype=torch.long, device=device)

    def log_probs(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """SUBS: log p_θ(x | z_t) ``[B, L, V]`` in float32 -- mask logit -∞, log-softmax, carry-over of z_t."""
        logp = logits.float().clone()
        logp[..., self.mask_id] = float("-inf")
        logp = logp.log_softmax(-1)
        unmasked = (z_t != self.mask_id)[..., None]
        carry = torch.full_like(logp, float("-inf")).scatter_(-1, z_t[..., None], 0.0)
        return torch.where(unmasked, carry, logp)

    def weight(self, t: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Per-masked-token weight: -α'_t / (1 - α_t), or T (α_s - α_t) / (1 - α_t) for ``steps = T``."""
        t = t.double()  # float32 t would round α(t) to 1 near t = 0
        if steps is None:
            return self.schedule.weight(t).float()
        s = (t - 1.0 / steps).clamp_min(0.0)
        alpha_t, alpha_s = self.schedule.alpha(t), self.schedule.alpha(s)
        return (steps * (alpha_s - alpha_t) / (1 - alpha_t)).float()

    def _terms(self, logits, x0, z_t, t, steps):
        masked = z_t == self.mask_id
        logp = logits.float().clone()
        logp[..., self.mask_id] = float("-inf")
        ce = -logp.log_softmax(-1).gather(-1, x0[..., None]).squeeze(-1)  # [B, L]
        w = self.weight(t, steps)
        w = w[:, None] if w.dim() == 1 else w
        w = torch.where(masked, w, 0.0)  # before the product, so an infinite weight never meets a zero
        nelbo = torch.where(masked, w * ce, 0.0)
        return nelbo, torch.where(masked, ce, 0.0)

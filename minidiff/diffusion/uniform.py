"""Uniform-state diffusion: UDLM and Duo (the process BlockGen-uniform runs inside blocks).

Papers: UDLM -- Schiff et al., 2024, "Simple Guidance Mechanisms for Discrete Diffusion Models", arXiv 2412.10193;
Duo -- Sahoo et al., 2025, "The Diffusion Duality", arXiv 2506.10892; BlockGen (jdeschena/blockgen) reuses both
formulas term for term.

**Forward process.** There is no mask token: a token is kept with probability α_t and otherwise redrawn uniformly
from the K states (possibly landing on itself),

    q(z_t | x) = Cat(z_t ; α_t x + (1 - α_t) 1 / K).

With ``mask_id`` given (a vocabulary shared with masked models), that id is not one of the K states: noise never
draws it and the model's logit for it is removed.

**Exact posterior** (s < t, r = α_t / α_s; x one-hot or, at sampling time, the denoiser's p_θ -- the "mean"
parameterisation):

    q(z_s | z_t, x) = [K α_t x ⊙ z_t + (r - α_t) z_t + (α_s - α_t) x + (1 - r)(1 - α_s) 1 / K] / (K α_t ⟨x, z_t⟩ + 1 - α_t).

At α_s = 1 (the last step) it keeps z_t with probability K α_t p(z_t) / (K α_t p(z_t) + 1 - α_t) and otherwise
draws from p_θ.

**Closed-form NELBO per token** (UDLM eq. 18; Duo's ``nll_per_token``). With x̄ = K α_t x + (1 - α_t) 1 and
x̄_θ = K α_t p_θ + (1 - α_t) 1,

    L = α'_t / (K α_t) · [ K / x̄_{z_t} - K / x̄_θ,{z_t} - Σ_j (x̄_j / x̄_{z_t}) log( x̄_θ,{z_t} x̄_j / (x̄_θ,j x̄_{z_t}) ) ],

which is the continuous-time limit of the posterior KLs, i.e. SEDD's score entropy (Lou et al., 2024,
arXiv 2310.16834) with model ratios x̄_θ,j / x̄_θ,{z_t}. :meth:`UniformDiffusion._terms` evaluates it in Duo's
expanded form (the sum is split on whether x = z_t). The network output is a plain log-softmax: no SUBS, because
no position is ever known to be clean. ``steps = T`` gives the discrete-time NELBO,
T · KL(q(z_s | z_t, x) ‖ q(z_s | z_t, p_θ)) at a uniformly drawn grid time t, s = t - 1/T.
[derived] The prior term KL(q(z_1 | x) ‖ Uniform) ≤ α(1) log K is dropped (α(1) = 1e-3 for the log-linear
default), as Duo does.
"""

from __future__ import annotations

import torch

from minidiff.diffusion.base import DiffusionProcess, as_time, rand
from minidiff.diffusion.schedules import Schedule

__all__ = ["UniformDiffusion"]


def _expand(alpha, like: torch.Tensor) -> torch.Tensor:
    """α as a tensor broadcasting over ``like [B, L, V]``: floats, [B] and [B, L] accepted."""
    alpha = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    if alpha.dim() == 1:
        alpha = alpha[:, None]
    return alpha[..., None] if alpha.dim() == 2 else alpha


class UniformDiffusion(DiffusionProcess):
    """The uniform-state process over the ``vocab_size`` ids (less ``mask_id`` when given)."""

    def __init__(
        self, vocab_size: int, schedule: str | Schedule = "loglinear", *, mask_id: int | None = None, **kwargs
    ) -> None:
        super().__init__(vocab_size, schedule, **kwargs)
        self.allowed = torch.ones(vocab_size, dtype=torch.bool)
        if mask_id is not None:
            if not isinstance(mask_id, int) or not 0 <= mask_id < vocab_size:
                raise ValueError(
                    f"mask_id must be None or an int in [0, vocab_size={vocab_size}), got {mask_id!r}"
                )
            self.allowed[mask_id] = False
        self.mask_id = mask_id
        self.states = self.allowed.nonzero().squeeze(-1)  # the K ids noise can take
        self.n_states = int(self.states.numel())

    def __repr__(self) -> str:
        return (
            f"UniformDiffusion(vocab_size={self.vocab_size}, K={self.n_states}, schedule={self.schedule!r})"
        )

    def check_tokens(self, x0: torch.Tensor) -> None:
        super().check_tokens(x0)
        if self.mask_id is not None and bool((x0 == self.mask_id).any()):
            raise ValueError(f"clean tokens x0 must not contain the excluded mask_id={self.mask_id}")

    def _uniform_states(self, shape, generator, device) -> torch.Tensor:
        idx = (rand(shape, generator, device) * self.n_states).long().clamp_max(self.n_states - 1)
        return self.states.to(device)[idx]

    def corrupt(
        self, x0: torch.Tensor, t, *, fixed: torch.Tensor | None = None, generator=None
    ) -> torch.Tensor:
        """z_t: each token (outside ``fixed``) kept with probability α(t), else drawn uniformly from the K states."""
        t = as_time(t, x0)
        alpha = self.schedule.alpha(t).float()
        alpha = alpha[:, None] if alpha.dim() == 1 else alpha
        redraw = rand(x0.shape, generator, x0.device) >= alpha
        if fixed is not None:
            redraw &= ~fixed
        return torch.where(redraw, self._uniform_states(x0.shape, generator, x0.device), x0)

    def prior(self, shape, *, generator=None, device=None) -> torch.Tensor:
        """The t = 1 state: uniform noise over the K states."""
        return self._uniform_states(shape, generator, device or torch.device("cpu"))

    def log_probs(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """log p_θ(x | z_t) ``[B, L, V]`` in float32: a plain log-softmax over the K states (mean parameterisation)."""
        logp = logits.float().masked_fill(~self.allowed.to(logits.device), float("-inf"))
        return logp.log_softmax(-1)

    def posterior(self, x_probs: torch.Tensor, z_t: torch.Tensor, alpha_t, alpha_s) -> torch.Tensor:
        """q(z_s | z_t, x) ``[B, L, V]`` for x given as probabilities ``x_probs [B, L, V]`` (see the module docstring)."""
        k = self.n_states
        one = self.allowed.to(x_probs.device, x_probs.dtype)
        a_t, a_s = _expand(alpha_t, x_probs), _expand(alpha_s, x_probs)
        r = a_t / a_s
        z = torch.nn.functional.one_hot(z_t, self.vocab_size).to(x_probs.dtype)
        numerator = (
            k * a_t * x_probs * z + (r - a_t) * z + (a_s - a_t) * x_probs + (1 - r) * (1 - a_s) / k * one
        )
        denominator = k * a_t * x_probs.gather(-1, z_t[..., None]) + 1 - a_t
        return numerator / denominator

    def _terms(self, logits, x0, z_t, t, steps):
        logp = self.log_probs(logits, z_t).double()
        ce = -logp.gather(-1, x0[..., None]).squeeze(-1)
        p = logp.exp()
        if steps is not None:
            return self._discrete_kl(p, x0, z_t, t, steps).float(), ce.float()
        k, one = self.n_states, self.allowed.to(p.device, p.dtype)
        alpha = self.schedule.alpha(t.double())
        dalpha = self.schedule.alpha_prime(t.double())
        alpha, dalpha = (alpha[:, None], dalpha[:, None]) if alpha.dim() == 1 else (alpha, dalpha)
        x_bar_theta = k * alpha[..., None] * p + (1 - alpha[..., None]) * one  # [B, L, V]
        coeff = dalpha / (k * alpha)
        x_eq_xt = (x0 == z_t).double()
        x_neq_xt = 1 - x_eq_xt
        xbar_xt = (1 - alpha) + k * alpha * x_eq_xt
        xbar_theta_xt = x_bar_theta.gather(-1, z_t[..., None]).squeeze(-1)
        xbar_theta_x = x_bar_theta.gather(-1, x0[..., None]).squeeze(-1)
        term1 = k * (1 / xbar_xt - 1 / xbar_theta_xt)
        const = (1 - alpha) / (k * alpha + 1 - alpha)  # x̄_j / x̄_{z_t} for j ≠ z_t when x = z_t
        term2_coefs = x_eq_xt * const + x_neq_xt
        term2_offset = ((k - 1) * const * x_eq_xt - (1 / const) * x_neq_xt) * const.log()
        sum_log = torch.where(one.bool(), x_bar_theta, 1.0).log().sum(-1)  # Σ over the K states only
        term2_theta = -term2_coefs * (sum_log - k * xbar_theta_xt.log())
        term2_theta = (
            term2_theta - k * alpha / (1 - alpha) * (xbar_theta_x.log() - xbar_theta_xt.log()) * x_neq_xt
        )
        nelbo = coeff * (term1 - (term2_theta + term2_offset))
        return nelbo.float(), ce.float()

    def _discrete_kl(self, p, x0, z_t, t, steps):
        """T · KL(q(z_s | z_t, x) ‖ q(z_s | z_t, p_θ)) per position, s = t - 1/T."""
        t = t.double()
        s = (t - 1.0 / steps).clamp_min(0.0)
        alpha_t, alpha_s = self.schedule.alpha(t), self.schedule.alpha(s)
        x_onehot = torch.nn.functional.one_hot(x0, self.vocab_size).double()
        q_true = self.posterior(x_onehot, z_t, alpha_t, alpha_s)
        q_model = self.posterior(p, z_t, alpha_t, alpha_s)
        terms = torch.where(q_true > 0, q_true * (q_true.clamp_min(1e-300).log() - q_model.log()), 0.0)
        return steps * terms.sum(-1)

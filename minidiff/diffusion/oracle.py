"""Exact denoisers of small enumerable distributions: "a model that knows the data".

The optima they compute are those of the objectives in :mod:`minidiff.diffusion.masked` (MDLM, Sahoo et al., 2024,
arXiv 2406.07524: the SUBS denoiser's minimiser is the posterior over clean tokens) and
:mod:`minidiff.diffusion.uniform` (Duo, Sahoo et al., 2025, arXiv 2506.10892; rates as in SEDD, Lou et al., 2024,
arXiv 2310.16834).

Given a joint distribution p(x) over short sequences (every sequence enumerable: K^L of them), these callables
return what a perfectly trained network would, so a sampler driven by them must reproduce p(x) (up to its own
discretisation error), and a NELBO computed with them must equal -log p(x) where theory says it is exact. Tests
use them for the χ² checks; chapters can use them to separate "the sampler is wrong" from "the model is wrong".

* :class:`MaskedOracle` -- for masked diffusion, logits[b, i, v] = log p(x^i = v | the unmasked tokens of row b).
  The mask logit is -∞. This is the minimiser of the masked NELBO, and it is exact for any number of masks.
* :class:`UniformOracle` -- for uniform diffusion under the mean parameterisation. The reverse rate of the
  uniform CTMC from z to y at position i is (β_t / K) q_t(y | z^{-i}) / q_t(z^i | z^{-i}), where
  q_t(· | z^{-i}) = α_t p(x^i = · | z^{-i}) + (1 - α_t) / K is the noisy marginal of position i given the *other*
  noisy tokens. The posterior formula reproduces that rate when fed x_θ = p(x^i | z_t^{-i}) [derived], so that is
  what this oracle returns (it is time-conditioned: the likelihood of the other tokens depends on α_t).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from types import SimpleNamespace

import torch

from minidiff.diffusion.uniform import UniformDiffusion

__all__ = ["MaskedOracle", "UniformOracle"]


class _Enumerated:
    """The support of ``joint`` (a tensor [K] * L of probabilities) as token sequences and their probabilities."""

    def __init__(self, joint: torch.Tensor, vocab_size: int, symbols: Sequence[int] | None) -> None:
        joint = torch.as_tensor(joint, dtype=torch.float64)
        if joint.dim() < 1 or (joint < 0).any() or abs(float(joint.sum()) - 1.0) > 1e-6:
            raise ValueError("joint must be a tensor [K] * L of non-negative probabilities summing to 1")
        k, length = joint.shape[0], joint.dim()
        if any(size != k for size in joint.shape):
            raise ValueError(f"joint must have the same size K along every axis, got {tuple(joint.shape)}")
        symbols = list(range(k)) if symbols is None else list(symbols)
        if len(symbols) != k or max(symbols) >= vocab_size or min(symbols) < 0:
            raise ValueError(f"symbols must be {k} token ids in [0, vocab_size={vocab_size}), got {symbols}")
        index = torch.tensor(list(itertools.product(range(k), repeat=length)), dtype=torch.long)  # [N, L]
        self.sequences = torch.tensor(symbols)[index]  # [N, L] token ids
        self.probs = joint[tuple(index.T)]  # [N]
        self.vocab_size, self.length = vocab_size, length
        self.onehot = torch.nn.functional.one_hot(self.sequences, vocab_size).double()  # [N, L, V]

    def distribution(self) -> dict[tuple[int, ...], float]:
        """``{sequence of token ids: probability}`` over the support."""
        return {tuple(s.tolist()): float(p) for s, p in zip(self.sequences, self.probs) if p > 0}

    def marginals(self, log_weights: torch.Tensor) -> torch.Tensor:
        """logits [B, L, V] = log Σ_n w[b, n, i] 1[x_n^i = v] for log-weights [B, N, L] (normalised per position)."""
        w = (log_weights - log_weights.amax(1, keepdim=True)).exp()  # [B, N, L]
        marg = torch.einsum("bnl,nlv->blv", w, self.onehot)
        return (marg / marg.sum(-1, keepdim=True)).log().float()

    def unique_rows(
        self, tokens: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Indices of the distinct rows of ``tokens`` (and of ``extra``, e.g. times) and the inverse map.

        The oracles compute each distinct row once, so their cost does not grow with the batch."""
        base = (
            torch.tensor(self.vocab_size, dtype=torch.long)
            .pow(torch.arange(tokens.shape[1]))
            .to(tokens.device)
        )
        code = (tokens.long() * base).sum(1)
        if extra is not None:
            _, extra_code = torch.unique(extra.reshape(tokens.shape[0], -1), dim=0, return_inverse=True)
            code = code * (int(extra_code.max()) + 1) + extra_code
        _, inverse = torch.unique(code, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), tokens.shape[0], dtype=torch.long, device=tokens.device)
        first = first.scatter_reduce(0, inverse, torch.arange(tokens.shape[0], device=tokens.device), "amin")
        return first, inverse

    def check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"tokens must have shape [B, {self.length}], got {tuple(tokens.shape)}")


class MaskedOracle(_Enumerated):
    """Exact p(x^i | unmasked tokens) of ``joint`` for masked diffusion (see the module docstring).

    ``symbols`` are the token ids of the K values (default 0..K-1); ``vocab_size`` defaults to max(symbols,
    mask_id) + 1. Rows whose unmasked tokens have probability 0 under ``joint`` get the unconditional marginals.
    """

    def __init__(
        self, joint, *, mask_id: int, vocab_size: int | None = None, symbols: Sequence[int] | None = None
    ):
        k = torch.as_tensor(joint).shape[0]
        vocab_size = vocab_size or max(max(symbols or range(k)), mask_id) + 1
        super().__init__(joint, vocab_size, symbols)
        self.mask_id = mask_id

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.check(tokens)
        first, inverse = self.unique_rows(tokens)
        return self._logits(tokens[first])[inverse]

    def _logits(self, tokens: torch.Tensor) -> torch.Tensor:
        visible = tokens != self.mask_id  # [B, L]
        seqs, probs = self.sequences.to(tokens.device), self.probs.to(tokens.device)
        consistent = ((seqs[None] == tokens[:, None]) | ~visible[:, None]).all(-1) & (
            probs[None] > 0
        )  # [B, N]
        consistent |= ~consistent.any(-1, keepdim=True) & (
            probs[None] > 0
        )  # impossible context: no conditioning
        log_w = torch.where(consistent, probs[None].log(), float("-inf"))  # [B, N]
        self.onehot = self.onehot.to(tokens.device)
        return self.marginals(log_w[..., None].expand(-1, -1, self.length))


class UniformOracle(_Enumerated):
    """Exact x_θ^i = p(x^i | z_t^{-i}) of ``joint`` for the uniform ``process`` (time-conditioned)."""

    def __init__(self, joint, process: UniformDiffusion, *, symbols: Sequence[int] | None = None):
        super().__init__(joint, process.vocab_size, symbols)
        self.process = process
        self.cfg = SimpleNamespace(time_conditioning=True)

    def __call__(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check(tokens)
        t = torch.as_tensor(t, dtype=torch.float64, device=tokens.device)
        t = t.expand(tokens.shape[0]) if t.dim() == 0 else t
        first, inverse = self.unique_rows(tokens, t)
        return self._logits(tokens[first], t[first])[inverse]

    def _logits(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = self.process.schedule.alpha(t)
        alpha = (alpha[:, None] if alpha.dim() == 1 else alpha)[:, None, :]  # [B, 1, L] or [B, 1, 1]
        seqs, probs = self.sequences.to(tokens.device), self.probs.to(tokens.device)
        same = (seqs[None] == tokens[:, None]).double()  # [B, N, L]
        log_lik = (alpha * same + (1 - alpha) / self.process.n_states).log()  # log q_t(z^j | x_n^j)
        total = probs.log()[None, :, None] + log_lik.sum(-1, keepdim=True)  # [B, N, 1]
        self.onehot = self.onehot.to(tokens.device)
        return self.marginals(total - log_lik)  # leave out position i's own likelihood

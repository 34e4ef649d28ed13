"""FlexMDM: any-order masked diffusion that also *inserts* tokens, so it models sequences of flexible length.

Kim, Cheuk-Kit, Domingo-Enrich, Du, Kakade, Ngotiaoco, Chen and Albergo, 2025, "Any-Order Flexible Length Masked
Diffusion", arXiv 2509.01025 (reference code ``brianlck/FlexMDM``: ``interpolant.py``, ``model/transformer.py``,
``lightning_modules/any_order.py``, ``sampling.py``).

**Time.** The paper runs τ from 0 (empty sequence) to 1 (clean data). minidiff keeps its one convention (MDLM's):
t = 0 is clean and t = 1 is fully noised -- here *fully deleted* -- so **τ = 1 - t** and every schedule below is a
library :class:`~minidiff.diffusion.schedules.Schedule` α(t) that falls from 1 to 0:

================================  ===================================  ====================================
quantity                          paper (τ = 1 - t)                    minidiff (t)
================================  ===================================  ====================================
P(token inserted, i.e. present)   β(τ)                                 ``insertion_schedule.alpha(t)``
P(unmasked | inserted at s)       (α(τ) - α(s)) / (1 - α(s))           same with ``unmask_schedule.alpha``
unmask rate of a masked token     α'(τ) / (1 - α(τ))                   ``unmask_schedule.weight(t)``
insertion rate per missing token  β'(τ) / (1 - β(τ))                   ``insertion_schedule.weight(t)``
================================  ===================================  ====================================

(β for insertion and α for unmasking follow our notes; ``weight(t) = -α'(t) / (1 - α(t))`` is the library's masked
NELBO weight, which is the paper's rate because d/dτ = -d/dt.) The toy bracket configuration of the paper uses a
*sin* insertion schedule β(τ) = sin(πτ/2) and a *linear* unmask schedule α(τ) = τ; in our time these are
``Cosine(eps=0)`` (cos(πt/2) = sin(π(1 - t)/2)) and ``linear`` (1 - t), the defaults here.

**The joint interpolant** (``interpolant.py``: ``AnyOrderMaskInsertionInterpolant``). For every clean token i, in
paper time, an insertion time T1_i ~ β (P(T1 <= τ) = β(τ), drawn by inverse CDF) and an unmask time T2_i ~ α
truncated to [T1_i, 1], i.e. α(T2) = α(T1) + U (1 - α(T1)). At τ the token is *deleted* if τ < T1_i, *masked* if
T1_i <= τ < T2_i and *clean* if τ >= T2_i. Deleted tokens are removed and the survivors packed to the left in order
(PAD fills the tail); between the L_τ survivors lie L_τ + 1 *gaps* (both ends included), and the gap's target
g_j is the number of deleted tokens in it, so Σ_j g_j = (clean length) - L_τ. Hence the marginals (:meth:`
FlexibleDiffusion.marginals`): a fraction β(τ) of the tokens is present, and among those a fraction
E[(α(τ) - α(T1)) / (1 - α(T1)) | T1 <= τ] is clean. The truncation is what makes the hazard of unmasking a masked
token α'(τ)/(1 - α(τ)) whatever its insertion time: the rates above. [The reference draws T2 with the *time* T1
as the truncation point, which coincides for a linear α; we truncate at α(T1), the conditional law.]

**Anchors (prompts).** Tokens marked as anchors are never deleted nor masked. A prefix prompt is a run of anchors
at the start; FlexMDM's maze task puts the subgoals *inside* the answer: the sequence state is the path itself,
the subgoal cells are anchors at their positions, and generation starts from the subgoals alone and inserts the
segments into the gaps between them. No gap is forbidden by construction: gaps that never receive a token in the
data (before the first subgoal, after the last) have target 0 and the model learns to predict 0 there.

**The network** (:class:`FlexMDM`, ``model/transformer.py``: ``AnyOrderMaskInsertionFlow``): the shared
time-conditioned :class:`~minidiff.nn.Transformer` with full attention over the packed sequence plus **one extra PAD
slot** (L + 1 positions; keys beyond length + 1 are hidden with ``key_mask``). Its ``lm_head`` gives token logits at
the L positions; an insertion head on the last hidden state gives, for gap j (before position j; gap L is the one
after the last token, read at the extra slot), either

* ``"expected"`` (the reference's default): ĝ_j = softplus(MLP(h_j)) · max_length, the expected number of missing
  tokens, trained with the Poisson / Bregman divergence D(g, ĝ) = ĝ - g + g (log g - log ĝ) (:func:`poisson_bregman`;
  zero exactly when ĝ = g, and the term of the ELBO of a jump process with rate ĝ); or
* ``"categorical"``: a distribution over 0..max_gap, trained with cross-entropy, whose mean is the rate.
  [ours: the reference's "distribution" mode scores it with a squared error to the one-hot target (a Brier score);
  both are proper scoring rules with the same minimiser.]

**The loss** (``lightning_modules/any_order.py``), one time per sequence (antithetic, as MDLM):

    L = E_t [ Σ_{masked i} w_α(t) · CE(logits_i, x_i)  +  Σ_{gaps j} w_β(t) · D(g_j, ĝ_j) ],
    w_α(t) = -α'(t) / (1 - α(t)),   w_β(t) = -β'(t) / (1 - β(t))     (our time; the paper's α'/(1-α), β'/(1-β))

reported in nats per generated (non-anchor) clean token. [derived: the reference divides by B · max_length; per
clean token makes the number comparable with a fixed-length MDM's NELBO per token.] The MASK and PAD logits are set
to -∞ before the softmax (SUBS-style: an unmasked token is never MASK or PAD).

**Retrofit** (:meth:`FlexMDM.from_masked`; ``scaling_flexmdm/llada_dit.py``): a trained fixed-length masked
diffusion Transformer gets zero-initialised adaLN time conditioning (``Transformer.enable_time_conditioning``, the
function is unchanged at first) and a new insertion head, then is fine-tuned briefly with this loss -- what the
paper does to LLaDA-8B (with LoRA, 16 H100s, 3 days).

Sampling lives in :mod:`minidiff.diffusion.sampling.flexible`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minidiff.data.tasks.base import Batch
from minidiff.diffusion import schedules
from minidiff.diffusion.base import as_time, rand
from minidiff.diffusion.schedules import Schedule, check_time_options, sample_times
from minidiff.nn.transformer import RotaryEmbedding, Transformer

__all__ = ["FlexMDM", "FlexOutput", "FlexState", "FlexibleDiffusion", "poisson_bregman", "HEADS"]

HEADS = ("expected", "categorical")


def poisson_bregman(target: torch.Tensor, predicted: torch.Tensor, *, floor: float = 1e-6) -> torch.Tensor:
    """D(g, ĝ) = ĝ - g + g (log g - log ĝ), elementwise (0 · log 0 = 0; ĝ floored at ``floor`` inside the log).

    The Bregman divergence of x log x: non-negative, zero exactly when ĝ = g. Counts must be non-negative.
    """
    target = torch.as_tensor(target, dtype=predicted.dtype, device=predicted.device)
    if bool((target < 0).any()):
        raise ValueError(f"target gap counts must be non-negative, got {float(target.min())}")
    if bool((predicted < 0).any()):
        raise ValueError(f"predicted gap counts must be non-negative, got {float(predicted.min())}")
    return predicted - target + torch.xlogy(target, target) - torch.xlogy(target, predicted.clamp_min(floor))


@dataclass
class FlexOutput:
    """What :class:`FlexMDM` returns for a packed sequence of width N."""

    logits: torch.Tensor  # [B, N, V] token logits
    gap_counts: torch.Tensor  # [B, N + 1] expected number of missing tokens per gap (ĝ)
    gap_logits: torch.Tensor | None = None  # [B, N + 1, max_gap + 1] for the categorical head


@dataclass
class FlexState:
    """A draw of the interpolant: the packed noisy sequence and the training targets (all ``[B, L]`` unless noted)."""

    z: torch.Tensor  # long: present tokens (clean or MASK) left-packed, PAD tail
    anchors: torch.Tensor  # bool: anchor slots of z
    lengths: torch.Tensor  # [B] long: number of present tokens
    targets: torch.Tensor  # long: the clean token at each slot (PAD in the tail)
    gaps: (
        torch.Tensor
    )  # [B, L + 1] long: deleted tokens per gap (gap j before slot j; gap lengths[b] at the end)
    source: torch.Tensor  # long: index in x0 of each slot (-1 in the tail)
    mask_id: int

    @property
    def masked(self) -> torch.Tensor:
        return self.z == self.mask_id


class FlexMDM(nn.Module):
    """A time-conditioned :class:`~minidiff.nn.Transformer` plus an insertion head; see the module docstring.

    ``model(x, t, lengths=None)`` takes a packed sequence ``x [B, N]`` (PAD tail; ``lengths`` default: the non-PAD
    count), times ``t [B]`` in the library's convention, and returns a :class:`FlexOutput`.

    ``length_embedding=True`` (ours, not the paper's; default off) adds a learned embedding of the current length
    L_t to every input vector, initialised at zero so that the model computes the same function at first. The
    paper's model, like ours by default, has only rotary (relative) positions, so its insertion head must *count*
    the sequence to know how many tokens are still missing, which a small model learns slowly: on brackets with
    lengths {4, 8, 32, 64} (``benchmarks/maze.py``, d_model 64, 2 layers, 1500 steps) the length distribution's
    total variation is 0.85 without it and 0.10 with it.
    """

    def __init__(
        self,
        backbone: Transformer,
        max_length: int,
        *,
        pad_id: int,
        head: str = "expected",
        max_gap: int | None = None,
        length_embedding: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if not isinstance(length_embedding, bool):
            raise TypeError(f"length_embedding must be True or False, got {length_embedding!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if not backbone.cfg.time_conditioning:
            raise ValueError(
                "backbone must be time-conditioned (TransformerConfig(time_conditioning=True)); "
                "retrofit a trained model with FlexMDM.from_masked"
            )
        if backbone.cfg.mask != "full":
            raise ValueError(
                f"backbone must use full attention (mask='full'), got mask={backbone.cfg.mask!r}"
            )
        if backbone.cfg.max_len < max_length + 1:
            raise ValueError(
                f"backbone max_len={backbone.cfg.max_len} must be >= max_length + 1 = {max_length + 1} "
                "(one extra slot for the last gap)"
            )
        self.max_gap = max_length if max_gap is None else max_gap
        if not isinstance(self.max_gap, int) or self.max_gap < 1:
            raise ValueError(f"max_gap must be a positive int or None, got {max_gap!r}")
        self.backbone, self.max_length, self.pad_id, self.head = backbone, max_length, pad_id, head
        d = backbone.cfg.d_model
        out = 1 if head == "expected" else self.max_gap + 1
        self.insertion_head = nn.Sequential(nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, out))
        last = self.insertion_head[-1]
        nn.init.normal_(last.weight, std=0.02)
        nn.init.zeros_(last.bias)
        if head == "expected":  # ours: start at ĝ = 1 per gap instead of softplus(0) · max_length
            nn.init.constant_(last.bias, math.log(math.expm1(1.0 / max_length)))
        self.length_embed = nn.Embedding(max_length + 1, d) if length_embedding else None
        if self.length_embed is not None:
            nn.init.zeros_(self.length_embed.weight)  # the same function as without it, at first

    @property
    def cfg(self):
        return self.backbone.cfg

    @classmethod
    def from_masked(
        cls,
        model: Transformer,
        max_length: int,
        *,
        pad_id: int,
        head: str = "expected",
        max_gap: int | None = None,
        copy_model: bool = True,
        length_embedding: bool = False,
    ) -> FlexMDM:
        """Retrofit a trained masked-diffusion Transformer: add zero-init time conditioning (same function at first)
        and an insertion head (and, with ``length_embedding``, a zero-init length embedding); rotary tables grow if
        ``max_length + 1`` exceeds ``max_len`` (they have no weights). The model is deep-copied unless
        ``copy_model=False``."""
        backbone = copy.deepcopy(model) if copy_model else model
        backbone.enable_time_conditioning()
        if backbone.cfg.max_len < max_length + 1:
            cfg = backbone.cfg
            cfg.max_len = max_length + 1
            rope = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.max_len, cfg.rope_base)
            backbone.rope = rope.to(backbone.embed.weight.device)
        return cls(
            backbone, max_length, pad_id=pad_id, head=head, max_gap=max_gap, length_embedding=length_embedding
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, lengths: torch.Tensor | None = None) -> FlexOutput:
        b, n = x.shape
        if n > self.max_length:
            raise ValueError(f"x has {n} positions, more than max_length={self.max_length}")
        if lengths is None:
            lengths = (x != self.pad_id).sum(1)
        slot = torch.full((b, 1), self.pad_id, dtype=x.dtype, device=x.device)
        x_ext = torch.cat([x, slot], dim=1)  # [B, N + 1]: the extra slot reads the last gap
        key_mask = torch.arange(n + 1, device=x.device)[None, :] <= lengths[:, None]
        if self.length_embed is None:
            out = self.backbone(x_ext, t=t, key_mask=key_mask, return_hidden=True)
        else:
            if bool((lengths < 0).any()) or bool((lengths > self.max_length).any()):
                raise ValueError(f"lengths must lie in [0, max_length={self.max_length}]")
            self.backbone._check_tokens(x_ext)
            embeds = self.backbone.embed(x_ext) + self.length_embed(lengths)[:, None, :]
            out = self.backbone(inputs_embeds=embeds, t=t, key_mask=key_mask, return_hidden=True)
        head = self.insertion_head(out.last_hidden).float()  # [B, N + 1, 1 or G + 1]
        if self.head == "expected":
            return FlexOutput(out.logits[:, :n], F.softplus(head.squeeze(-1)) * self.max_length)
        probs = head.softmax(-1)
        mean = (probs * torch.arange(self.max_gap + 1, device=x.device, dtype=probs.dtype)).sum(-1)
        return FlexOutput(out.logits[:, :n], mean, head)


def _check_schedule(schedule: Schedule, name: str, *, ends: bool) -> Schedule:
    """α must map [0, 1] into [0, 1] and not increase; with ``ends``, α(0) ≈ 1 and α(1) ≈ 0."""
    grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    alpha = schedule.alpha(grid)
    if not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()) or bool((alpha > 1).any()):
        bad = alpha[~((alpha >= 0) & (alpha <= 1))][0].item()
        raise ValueError(f"{name} must map [0, 1] into [0, 1], got alpha = {bad}")
    if bool((alpha[1:] > alpha[:-1] + 1e-12).any()):
        raise ValueError(f"{name} must not increase with t (t = 0 clean, t = 1 noised)")
    if ends and not (alpha[0] >= 0.99 and alpha[-1] <= 0.01):
        raise ValueError(
            f"{name} must go from alpha(0) = 1 (all present) to alpha(1) = 0 (empty), "
            f"got {alpha[0].item():.3g} and {alpha[-1].item():.3g}"
        )
    return schedule


class FlexibleDiffusion:
    """The FlexMDM process over ``vocab_size`` tokens; see the module docstring.

    ``insertion_schedule`` default: ``Cosine(eps=0)`` (the paper's sin insertion); ``unmask_schedule`` default:
    ``"linear"``. ``max_length`` caps every sequence (data and samples).
    """

    def __init__(
        self,
        vocab_size: int,
        mask_id: int,
        pad_id: int,
        *,
        max_length: int,
        insertion_schedule: str | Schedule | None = None,
        unmask_schedule: str | Schedule = "linear",
        t_eps: float = 1e-3,
        antithetic: bool = True,
    ) -> None:
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 3:
            raise ValueError(f"vocab_size must be an int >= 3, got {vocab_size!r}")
        for name, value in (("mask_id", mask_id), ("pad_id", pad_id)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
                raise ValueError(f"{name} must be an int in [0, vocab_size={vocab_size}), got {value!r}")
        if mask_id == pad_id:
            raise ValueError(f"mask_id and pad_id must differ, got {mask_id} for both")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        check_time_options(0.0, 1.0, t_eps)
        self.vocab_size, self.mask_id, self.pad_id, self.max_length = vocab_size, mask_id, pad_id, max_length
        insertion = (
            schedules.Cosine(eps=0.0) if insertion_schedule is None else schedules.get(insertion_schedule)
        )
        self.insertion_schedule = _check_schedule(insertion, "insertion_schedule", ends=True)
        self.unmask_schedule = _check_schedule(schedules.get(unmask_schedule), "unmask_schedule", ends=False)
        self.t_eps, self.antithetic = t_eps, antithetic

    def __repr__(self) -> str:
        return (
            f"FlexibleDiffusion(vocab_size={self.vocab_size}, max_length={self.max_length}, "
            f"insertion={self.insertion_schedule!r}, unmask={self.unmask_schedule!r})"
        )

    # ----------------------------------------------------------------------------------------- inputs
    def read(self, batch, anchors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, anchors)`` from a ``[B, L]`` tensor (PAD = absent), a ``(tokens, anchors)`` pair or a
        :class:`~minidiff.data.Batch` (its prompt_mask are the anchors, its PAD tail absent)."""
        if isinstance(batch, Batch):
            x0, anchors = batch.tokens, batch.prompt_mask
        elif isinstance(batch, (tuple, list)) and len(batch) == 2:
            x0, anchors = batch
        elif isinstance(batch, torch.Tensor):
            x0 = batch
        else:
            raise TypeError(
                f"batch must be a [B, L] tensor, a (tokens, anchors) pair or a Batch, got {type(batch).__name__}"
            )
        if x0.dim() != 2 or x0.is_floating_point():
            raise ValueError(f"tokens must be a [B, L] integer tensor, got {x0.dtype} {tuple(x0.shape)}")
        if x0.shape[1] > self.max_length:
            raise ValueError(f"sequences of {x0.shape[1]} positions exceed max_length={self.max_length}")
        if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}), got {int(x0.min())}..{int(x0.max())}"
            )
        if bool((x0 == self.mask_id).any()):
            raise ValueError(f"clean tokens must not contain the mask token (mask_id={self.mask_id})")
        anchors = torch.zeros_like(x0, dtype=torch.bool) if anchors is None else anchors.to(x0.device)
        if anchors.shape != x0.shape or anchors.dtype != torch.bool:
            raise ValueError(
                f"anchors must be a bool tensor shaped like the tokens, got {anchors.dtype} {tuple(anchors.shape)}"
            )
        return x0, anchors & (x0 != self.pad_id)

    # ----------------------------------------------------------------------------------------- interpolant
    def hitting_times(self, shape, *, generator=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token ``(delete_time, mask_time)`` in our time: present while t < delete_time, clean while
        t < mask_time <= delete_time (paper: T1 = 1 - delete_time, T2 = 1 - mask_time), float64."""
        u_insert = rand(shape, generator, device).double()
        u_unmask = rand(shape, generator, device).double()
        delete_time = self.insertion_schedule.t_of_alpha(u_insert)  # P(delete_time > t) = β-present(t)
        alpha_d = self.unmask_schedule.alpha(delete_time)
        mask_time = self.unmask_schedule.t_of_alpha(alpha_d + u_unmask * (1 - alpha_d))
        return delete_time, torch.minimum(mask_time, delete_time)

    def corrupt(
        self, x0: torch.Tensor, t, *, anchors: torch.Tensor | None = None, generator=None
    ) -> FlexState:
        """Draw the interpolant at times ``t`` (float or ``[B]``) for clean rows ``x0 [B, L]`` (PAD = absent)."""
        x0, anchors = self.read(x0, anchors)
        t = as_time(t, x0)
        if t.dim() != 1:
            raise ValueError(f"t must be a float or [B] (one time per sequence), got shape {tuple(t.shape)}")
        b, n = x0.shape
        valid = x0 != self.pad_id
        delete_time, mask_time = self.hitting_times((b, n), generator=generator, device=x0.device)
        tt = t.double()[:, None]
        present = valid & (anchors | (tt < delete_time))
        clean = present & (anchors | (tt < mask_time))
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)  # survivors first, in order
        lengths = present.sum(1)
        slot = torch.arange(n, device=x0.device)[None, :] < lengths[:, None]
        values = torch.where(clean, x0, torch.full_like(x0, self.mask_id))
        z = torch.where(slot, values.gather(1, order), self.pad_id)
        targets = torch.where(slot, x0.gather(1, order), self.pad_id)
        gap_index = torch.cumsum(present.long(), 1) - present.long()  # present tokens before each position
        deleted = (valid & ~present).long()
        gaps = torch.zeros(b, n + 1, dtype=torch.long, device=x0.device).scatter_add_(1, gap_index, deleted)
        return FlexState(
            z=z,
            anchors=anchors.gather(1, order) & slot,
            lengths=lengths,
            targets=targets,
            gaps=gaps,
            source=torch.where(slot, order, -1),
            mask_id=self.mask_id,
        )

    def marginals(self, t, *, points: int = 4001) -> tuple[torch.Tensor, torch.Tensor]:
        """``(present, clean_given_present)`` at times ``t`` (float or 1-D): β-present(t) and
        E[(α(t) - α(D)) / (1 - α(D)) | D > t] over the delete time D, by the trapezoid rule (float64)."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        present = self.insertion_schedule.alpha(t)
        clean = []
        for ti in t.tolist():
            d = torch.linspace(ti, 1.0, points, dtype=torch.float64)[1:]
            density = -self.insertion_schedule.alpha_prime(d)  # density of the delete time on (t, 1]
            a_t, a_d = self.unmask_schedule.alpha(ti), self.unmask_schedule.alpha(d)
            frac = torch.where(a_d < 1, (a_t - a_d) / (1 - a_d).clamp_min(1e-300), 0.0)
            y = torch.cat([torch.zeros(1, dtype=torch.float64), frac * density])
            x = torch.cat([torch.tensor([ti], dtype=torch.float64), d])
            mass = self.insertion_schedule.alpha(ti)
            clean.append(float(torch.trapezoid(y, x)) / mass if mass > 0 else 0.0)
        return present, torch.tensor(clean, dtype=torch.float64)

    # ----------------------------------------------------------------------------------------- loss
    def draw_times(self, n: int, *, generator=None, device=None) -> torch.Tensor:
        """Training times ``[n]`` on [t_eps, 1] (antithetic by default, as MDLM)."""
        return sample_times(n, generator=generator, antithetic=self.antithetic, eps=self.t_eps, device=device)

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log p_θ(token) ``[B, N, V]`` in float32 with MASK and PAD excluded."""
        logp = logits.float().clone()
        logp[..., [self.mask_id, self.pad_id]] = float("-inf")
        return logp.log_softmax(-1)

    def loss(self, model, batch, *, anchors: torch.Tensor | None = None, t=None, generator=None):
        """The FlexMDM loss in nats per generated token and metrics; usable as ``fit``'s ``loss_fn``.

        ``batch``: a ``[B, L]`` tensor (PAD tail), ``(tokens, anchors)`` or a :class:`~minidiff.data.Batch`.
        Metrics: ``tokens`` (generated clean tokens), ``unmask`` and ``insert`` (the two terms, same units),
        ``present_frac``, ``masked_frac`` (of present non-anchor tokens) and ``t_mean``.
        """
        x0, anchors = self.read(batch, anchors)
        if t is None:
            t = self.draw_times(x0.shape[0], generator=generator, device=x0.device)
        t = as_time(t, x0)
        state = self.corrupt(x0, t, anchors=anchors, generator=generator)
        width = max(int(state.lengths.max()), 1)  # drop the all-PAD tail columns
        z, targets = state.z[:, :width], state.targets[:, :width]
        out = model(z, t, lengths=state.lengths)
        masked = z == self.mask_id
        ce = -self.log_probs(out.logits).gather(-1, targets[..., None]).squeeze(-1)
        w_unmask = self.unmask_schedule.weight(t.double()).float()[:, None]
        unmask = torch.where(masked, w_unmask * ce, 0.0).sum()
        gaps = state.gaps[:, : width + 1]
        open_gap = torch.arange(width + 1, device=z.device)[None, :] <= state.lengths[:, None]
        w_insert = self.insertion_schedule.weight(t.double()).float()[:, None]
        if out.gap_logits is not None:
            cap = out.gap_logits.shape[-1] - 1
            div = F.cross_entropy(out.gap_logits.transpose(1, 2), gaps.clamp(max=cap), reduction="none")
        else:
            div = poisson_bregman(gaps.float(), out.gap_counts)
        insert = torch.where(open_gap, w_insert * div, 0.0).sum()
        generated = (x0 != self.pad_id) & ~anchors
        n = generated.sum().clamp_min(1)
        free = (x0 != self.pad_id).sum() - anchors.sum()
        present_free = state.lengths.sum() - state.anchors.sum()
        metrics = {
            "tokens": float(n),
            "unmask": float(unmask.detach() / n),
            "insert": float(insert.detach() / n),
            "present_frac": float(present_free / free.clamp_min(1)),
            "masked_frac": float(masked.sum() / present_free.clamp_min(1)),
            "t_mean": float(t.mean()),
        }
        return (unmask + insert) / n, metrics

"""FlexMDM sampling: start from the prompt alone (or empty), insert masks into gaps and unmask them.

Kim et al., 2025, "Any-Order Flexible Length Masked Diffusion", arXiv 2509.01025 (``brianlck/FlexMDM:sampling.py``;
the confidence variant from ``scaling_flexmdm``). See :mod:`minidiff.diffusion.flexible` for the process.

The canvas changes length, so this sampler has its own loop rather than the fixed-canvas :func:`~minidiff.diffusion.
sampling.loop.run` (which checks that positions stay put); it shares :func:`~minidiff.diffusion.sampling.loop.draw`
for tokens. On the grid t_k = 1 - k/S (our time; the paper's τ = k/S), with dt = 1/S, each step:

1. calls the model once on the packed state: token log-probs and expected gap counts ĝ_j;
2. **unmasks** masked positions. The unmask rate of a masked position is w_α(t) = -α'(t)/(1 - α(t)) (times
   p_θ(v) per token v):

   * ``"euler"``: each masked position fires with probability min(1, w_α dt), its token drawn from p_θ;
   * ``"tau_leaping"``: each masked position gets a Poisson(w_α dt) number of events (the superposition of its
     per-token Poisson counts) and is unmasked only if exactly one fired -- the reference's acceptance rule;
   * ``"confidence"`` (the reference's large-scale variant): k ~ Poisson(n_masked · w_α dt) positions are unmasked,
     those with the largest top-1 minus top-2 probability margin ("prob_diff"); with ``window=(f, c)`` only the
     leftmost min(f · k, c) masked positions compete (the reference's sliding window, f = 5, c = 32);

3. **inserts** (every step but the last): gap j (j <= length) receives n_j masks, n_j ~ Bernoulli(min(1, r_j))
   for ``"euler"`` (at most one per step, as the reference) and Poisson(r_j) otherwise, with r_j = ĝ_j w_β(t) dt,
   w_β(t) = -β'(t)/(1 - β(t)). Insertions beyond ``max_length`` are dropped at random, so the length never
   exceeds it; tokens right of a gap shift right;
4. at the last step, every remaining mask is unmasked and nothing is inserted, so no MASK is left.

Anchors (the prompt) are never changed: they only shift right as masks are inserted before them. ``temperature``
applies to token draws (0 = argmax), not to when events fire.

**Checked against the exact model.** For sequences of one repeated symbol whose length follows a small mixture, the
Bayes-optimal ĝ_j = E[N - L | L, t] / (L + 1) is computable (``LengthOracle`` in ``tests/diffusion/test_flexible.py``);
driven by it, every variant reproduces the length distribution, with an error first order in 1/S. Measured on the
bracket mixture {4, 8, 32, 64} (max_length 64, 1000 samples): TV ≈ 0.08 (tau-leaping) and ≈ 0.19 (Euler, whose
one-insertion-per-gap rule truncates rates above 1 on short sequences) at S = 64, ≈ 0.02-0.03 for both at S = 256.
So a trained model whose lengths are far off has a poor ĝ (too little training to count the length exactly), not
a faulty sampler.

Returns ``(tokens [B, max_length] with a PAD tail, FlexTrace)``. The :class:`FlexTrace` is a
:class:`~minidiff.diffusion.sampling.trace.Trace` (states ``[S + 1, B, max_length]``, final ``fixed`` anchors,
``commit_step`` per final position, NFE ...) that also records the growth: ``lengths [S + 1, B]``, the anchors
after every step, which positions were inserted and which unmasked at each step (in post-step coordinates), and
``insert_step`` per final position -- what :class:`widgets.GrowthPlayer` animates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from minidiff.diffusion.base import eval_mode, model_device, rand
from minidiff.diffusion.flexible import FlexibleDiffusion
from minidiff.diffusion.sampling.loop import draw
from minidiff.diffusion.sampling.trace import Trace

__all__ = ["FlexTrace", "sample_flexible", "FLEX_METHODS", "prompt_state"]

FLEX_METHODS = ("euler", "tau_leaping", "confidence")


@dataclass
class FlexTrace(Trace):
    """A :class:`Trace` whose canvas grows; the extra fields (``None`` only in a bare ``Trace``) are below."""

    lengths: torch.Tensor | None = None  # [S + 1, B] long: sequence length after each step
    anchor_states: torch.Tensor | None = None  # [S + 1, B, L] bool: where the anchors sit after each step
    inserted: torch.Tensor | None = None  # [S, B, L] bool: positions (after step k) that step k inserted
    unmasked: torch.Tensor | None = None  # [S, B, L] bool: positions (after step k) that step k unmasked
    insert_step: torch.Tensor | None = (
        None  # [B, L] long: step that inserted each final position (-1: anchor)
    )

    @property
    def generated_per_row(self) -> float:
        final = self.states[-1]
        pad = self.params.get("pad_id")
        return float(((final != pad) & ~self.fixed).sum()) / max(final.shape[0], 1)

    def masked_fraction(self) -> torch.Tensor:
        """``[S + 1, B]`` fraction of the present non-anchor positions holding MASK after each step."""
        masked = (self.states == self.mask_id).sum(-1).float()
        free = self.lengths - self.anchor_states.sum(-1)
        return torch.where(free > 0, masked / free.clamp_min(1), 0.0)

    def unmasked_per_step(self) -> torch.Tensor:
        return self.unmasked.sum(-1)

    def inserted_per_step(self) -> torch.Tensor:
        """``[S, B]`` masks inserted at each step."""
        return self.inserted.sum(-1)

    def remask_events(self) -> torch.Tensor:
        return torch.zeros(0, 3, dtype=torch.long)

    def sequences(self) -> list[list[int]]:
        """The final sequences without their PAD tail."""
        return [row[:n] for row, n in zip(self.states[-1].tolist(), self.lengths[-1].tolist())]

    def to_dict(self, row: int | None = None) -> dict:
        out = super().to_dict(row)
        pick = (lambda x, dim: x.select(dim, row)) if row is not None else (lambda x, dim: x)
        out |= {
            "lengths": pick(self.lengths, 1).tolist(),
            "anchor_states": pick(self.anchor_states, 1).tolist(),
            "inserted": pick(self.inserted, 1).tolist(),
            "unmasked": pick(self.unmasked, 1).tolist(),
            "insert_step": pick(self.insert_step, 0).tolist(),
        }
        return out


def prompt_state(
    prompt, process: FlexibleDiffusion, *, batch_size: int | None, device
) -> tuple[torch.Tensor, ...]:
    """``(x, anchors, lengths)`` on a ``[B, max_length]`` canvas from ``prompt``.

    ``prompt``: ``None`` (empty; needs ``batch_size``), a ``[B, P]`` tensor (its non-PAD tokens are anchors) or
    ``(tokens, anchors)``: non-PAD tokens are kept in order and left-packed; anchored ones never change, the others
    may be MASK (positions to fill) or fixed-for-now tokens.
    """
    n = process.max_length
    if prompt is None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"without a prompt, batch_size must be a positive int, got {batch_size!r}")
        empty = torch.full((batch_size, n), process.pad_id, dtype=torch.long, device=device)
        return (
            empty,
            torch.zeros_like(empty, dtype=torch.bool),
            torch.zeros(batch_size, dtype=torch.long, device=device),
        )
    if isinstance(prompt, (tuple, list)) and len(prompt) == 2:
        tokens, anchors = prompt
    elif isinstance(prompt, torch.Tensor):
        tokens, anchors = prompt, prompt != process.pad_id
    else:
        raise TypeError(
            f"prompt must be None, a [B, P] tensor or (tokens, anchors), got {type(prompt).__name__}"
        )
    if tokens.dim() != 2 or anchors.shape != tokens.shape or anchors.dtype != torch.bool:
        raise ValueError(
            f"prompt tokens must be [B, P] with a bool anchors mask of the same shape, got {tuple(tokens.shape)} "
            f"and {anchors.dtype} {tuple(anchors.shape)}"
        )
    if batch_size is not None and batch_size != tokens.shape[0]:
        raise ValueError(f"batch_size={batch_size} disagrees with the prompt's {tokens.shape[0]} rows")
    tokens, anchors = tokens.to(device), anchors.to(device)
    present = tokens != process.pad_id
    lengths = present.sum(1)
    if lengths.numel() and int(lengths.max()) > n:
        raise ValueError(f"the prompt ({int(lengths.max())} tokens) is longer than max_length={n}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= process.vocab_size):
        raise ValueError(f"prompt token ids must lie in [0, {process.vocab_size})")
    if bool((anchors & (tokens == process.mask_id)).any()):
        raise ValueError("an anchor must be a token, not MASK")
    order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)
    width = min(tokens.shape[1], n)
    slot = torch.arange(n, device=device)[None, :] < lengths[:, None]
    x = torch.full((tokens.shape[0], n), process.pad_id, dtype=torch.long, device=device)
    a = torch.zeros_like(x, dtype=torch.bool)
    x[:, :width] = tokens.gather(1, order)[:, :width]
    a[:, :width] = (anchors & present).gather(1, order)[:, :width]
    return torch.where(slot, x, process.pad_id), a & slot, lengths


def _insert(tensors: list[torch.Tensor], fills: list, counts: torch.Tensor, lengths: torch.Tensor):
    """Insert ``counts[b, j]`` new slots into gap j (before position j) of every ``[B, L]`` tensor; new slots get
    the matching ``fills`` value and positions past the new length that value too. Returns (tensors, inserted)."""
    b, n = tensors[0].shape
    cols = torch.arange(n, device=counts.device)[None, :]
    old = cols < lengths[:, None]
    new_pos = torch.where(old, cols + counts[:, :n].cumsum(1), n)  # [B, L]; n = a dump column
    new_len = lengths + counts.sum(1)
    out = []
    for tensor, fill in zip(tensors, fills):
        wide = torch.full((b, n + 1), fill, dtype=tensor.dtype, device=tensor.device)
        wide.scatter_(1, new_pos, tensor)
        out.append(wide[:, :n])
    moved = torch.zeros(b, n + 1, dtype=torch.bool, device=counts.device).scatter_(1, new_pos, old)[:, :n]
    inserted = (cols < new_len[:, None]) & ~moved
    return out, inserted


def _trim(counts: torch.Tensor, room: torch.Tensor, generator) -> torch.Tensor:
    """Drop insertion events uniformly at random so that each row inserts at most ``room`` masks."""
    over = (counts.sum(1) > room).nonzero().flatten().tolist()
    for i in over:
        events = torch.repeat_interleave(torch.arange(counts.shape[1], device=counts.device), counts[i])
        keep = torch.randperm(len(events), generator=generator).to(counts.device)
        kept = events[keep[: int(room[i])]]
        counts[i] = torch.bincount(kept, minlength=counts.shape[1])
    return counts


@torch.no_grad()
def sample_flexible(
    model,
    process: FlexibleDiffusion,
    prompt=None,
    *,
    batch_size: int | None = None,
    steps: int = 64,
    method: str = "euler",
    temperature: float = 1.0,
    window: tuple[float, int] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, FlexTrace]:
    """Sample from a :class:`~minidiff.diffusion.flexible.FlexMDM`; see the module docstring.

    ``prompt``: ``None`` (start empty, with ``batch_size``), a ``[B, P]`` tensor of anchors (PAD = nothing) or
    ``(tokens, anchors)``; anchors may sit anywhere (subgoals). ``method``: ``"euler"``, ``"tau_leaping"`` or
    ``"confidence"``; ``window=(factor, cap)`` only with ``"confidence"``.
    """
    if method not in FLEX_METHODS:
        raise ValueError(f"method must be one of {FLEX_METHODS}, got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if window is not None and (method != "confidence" or len(window) != 2 or window[0] <= 0 or window[1] < 1):
        raise ValueError(
            f"window must be None or (factor > 0, cap >= 1) with method='confidence', got {window!r}"
        )
    given = prompt[0] if isinstance(prompt, (tuple, list)) else prompt
    device = model_device(model, given.device if isinstance(given, torch.Tensor) else None)
    x, anchors, lengths = prompt_state(prompt, process, batch_size=batch_size, device=device)
    b, n = x.shape
    mask_id, pad_id = process.mask_id, process.pad_id
    cols = torch.arange(n, device=device)[None, :]
    insert_step = torch.full_like(x, -1)  # -1: given in the prompt (or past the end)
    gap_cols = torch.arange(n + 1, device=device)[None, :]
    commit_step = torch.full_like(x, -1)
    confidence = torch.full(x.shape, math.nan, device=device)
    logprob = torch.full(x.shape, math.nan, device=device)
    record = {
        k: [] for k in ("states", "lengths", "anchors", "inserted", "unmasked", "times", "step_logprob")
    }
    record["states"].append(x.cpu())
    record["lengths"].append(lengths.cpu())
    record["anchors"].append(anchors.cpu())
    dt = 1.0 / steps
    with eval_mode(model):
        for k in range(steps):
            t = 1.0 - k * dt
            last = k == steps - 1
            t_vec = torch.full((b,), t, device=device)
            out = model(x, t_vec, lengths=lengths)
            log_probs = process.log_probs(out.logits)  # [B, L, V]
            masked = x == mask_id
            w_unmask = float(process.unmask_schedule.weight(t))
            if last:
                fire = masked
            elif method == "euler":
                fire = masked & (rand(x.shape, generator, device) < min(1.0, w_unmask * dt))
            elif method == "tau_leaping":
                events = torch.poisson(torch.full(x.shape, w_unmask * dt, device=device), generator=generator)
                fire = masked & (events == 1)
            else:
                fire = _confidence_pick(log_probs, masked, w_unmask * dt, window, generator)
            proposal = draw(log_probs, temperature=temperature, generator=generator)
            token_logprob = log_probs.gather(-1, proposal[..., None]).squeeze(-1)
            x = torch.where(fire, proposal, x)
            commit_step = torch.where(fire, k, commit_step)
            confidence = torch.where(fire, token_logprob.exp(), confidence)
            logprob = torch.where(fire, token_logprob, logprob)
            step_logprob = torch.where(fire, token_logprob, 0.0).sum(-1)
            inserted = torch.zeros_like(fire)
            if not last:
                rate = out.gap_counts.float() * float(process.insertion_schedule.weight(t)) * dt
                rate = torch.where(gap_cols <= lengths[:, None], rate, 0.0)
                if method == "euler":
                    counts = (rand(rate.shape, generator, device) < rate.clamp(max=1.0)).long()
                else:
                    counts = torch.poisson(rate, generator=generator).long()
                counts = _trim(counts, n - lengths, generator)
                (x, anchors_l, fire, commit_step, confidence, logprob, insert_step), inserted = _insert(
                    [x, anchors.long(), fire.long(), commit_step, confidence, logprob, insert_step],
                    [mask_id, 0, 0, -1, math.nan, math.nan, k],
                    counts,
                    lengths,
                )
                anchors, fire = anchors_l.bool(), fire.bool()
                lengths = lengths + counts.sum(1)
                x = torch.where(cols < lengths[:, None], x, pad_id)
                insert_step = torch.where(cols < lengths[:, None], insert_step, -1)
            record["states"].append(x.cpu())
            record["lengths"].append(lengths.cpu())
            record["anchors"].append(anchors.cpu())
            record["inserted"].append(inserted.cpu())
            record["unmasked"].append(fire.cpu())
            record["times"].append(t_vec.cpu())
            record["step_logprob"].append(step_logprob.cpu())
    if bool((x == mask_id).any()):
        raise RuntimeError("sampling left MASK tokens")  # cannot happen: the last step unmasks everything
    present = cols < lengths[:, None]
    trace = FlexTrace(
        states=torch.stack(record["states"]),
        fixed=anchors.cpu(),
        commit_step=commit_step.cpu(),
        commit_count=(present & (commit_step >= 0)).long().cpu(),
        remask_count=torch.zeros(b, n, dtype=torch.long),
        confidence=confidence.cpu(),
        logprob=logprob.cpu(),
        step_logprob=torch.stack(record["step_logprob"]),
        position_logprob=torch.zeros(steps, b),
        times=torch.stack(record["times"]),
        block_bounds=torch.stack(
            [torch.stack([torch.zeros_like(ln), ln], dim=-1) for ln in record["lengths"][1:]]
        ).long(),
        calls=torch.ones(steps, dtype=torch.long),
        mask_id=mask_id,
        sampler=f"flexible_{method}",
        params={
            "steps": steps,
            "method": method,
            "temperature": temperature,
            "window": window,
            "pad_id": pad_id,
            "max_length": n,
        },
        lengths=torch.stack(record["lengths"]),
        anchor_states=torch.stack(record["anchors"]),
        inserted=torch.stack(record["inserted"]),
        unmasked=torch.stack(record["unmasked"]),
        insert_step=insert_step.cpu(),
    )
    return x, trace


def _confidence_pick(log_probs, masked, rate_dt: float, window, generator) -> torch.Tensor:
    """k ~ Poisson(n_masked · rate_dt) masked positions with the largest top-1 - top-2 margin (optional window)."""
    n_masked = masked.sum(1).double()
    k = torch.poisson(n_masked * rate_dt, generator=generator).long().clamp(max=masked.sum(1))
    top2 = log_probs.exp().topk(2, dim=-1).values
    margin = torch.where(masked, top2[..., 0] - top2[..., 1], -math.inf)
    if window is not None:
        factor, cap = window
        rank = masked.long().cumsum(1) - 1  # 0 for the leftmost mask
        allowed = torch.minimum((factor * k.double()).ceil().long(), torch.full_like(k, int(cap))).clamp_min(
            k
        )
        margin = torch.where(rank < allowed[:, None], margin, -math.inf)
    order = margin.argsort(dim=1, descending=True)
    chosen = torch.arange(masked.shape[1], device=masked.device)[None, :] < k[:, None]
    return torch.zeros_like(masked).scatter_(1, order, chosen) & masked

"""The one sampler loop every sampler runs; samplers differ only in a small ``Strategy`` object.

The loop (after blockgen's explicit Sampler/State split and LLaDA's ``generate``, Nie et al., 2025,
arXiv 2502.09992):

1. lay out the canvas: prompt tokens where ``fixed``, the process's prior (MASK, or uniform noise) elsewhere;
2. split the free positions into blocks of ``block_length`` (one block when ``None``) counted from each row's first
   free position, and the ``steps`` equally over the blocks (semi-autoregressive decoding: positions right of the
   current block stay as they are and may not change, but the model still sees them);
3. for each step of each block: ask the strategy for the time, call the model (or reuse the last forward pass
   when the canvas did not change and the model ignores time: MDLM's "ddpm_cache"), let the strategy commit (and
   maybe remask) tokens inside the window, check that nothing else changed, and record the step in the
   :class:`~minidiff.diffusion.sampling.trace.Trace`.

A *monotone* strategy only ever writes tokens into MASK positions; for those the loop skips blocks and steps with
nothing left to unmask and checks that no MASK is left in a block when it ends.

Tokens are drawn with float64 Gumbel-max noise (:mod:`minidiff.sampling`) at ``temperature`` (0 = argmax) after
nucleus filtering (``top_p``). A model in training mode is put in eval mode for the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from minidiff.data.tasks.base import Batch
from minidiff.diffusion.base import denoise, eval_mode, is_time_conditioned, model_device, rand
from minidiff.diffusion.sampling.trace import Trace, TraceRecorder
from minidiff.sampling import filter_logits, gumbel_noise

__all__ = ["StepContext", "Update", "Strategy", "run", "draw", "make_canvas", "block_windows"]


def draw(log_probs: torch.Tensor, *, temperature: float = 1.0, top_p: float | None = None, generator=None):
    """One token per position from ``log_probs [..., V]``: nucleus filter, then float64 Gumbel-max at temperature."""
    logits = filter_logits(log_probs, top_p=top_p) if top_p is not None else log_probs
    if temperature == 0:
        return logits.argmax(-1)
    gen_device = generator.device if generator is not None else logits.device
    noise = gumbel_noise(logits.shape, generator=generator, device=gen_device).to(logits.device)
    return (logits.double() / temperature + noise).argmax(-1)


@dataclass
class StepContext:
    """What a strategy sees at one step."""

    x: torch.Tensor  # [B, L] the canvas before the step
    fixed: torch.Tensor  # [B, L] prompt positions
    window: torch.Tensor  # [B, L] positions this step may change (current block, not fixed)
    j: int  # step index within the block
    n_steps: int  # steps in this block
    process: object
    generator: torch.Generator | None
    temperature: float
    top_p: float | None
    forward: Callable  # forward(x, t) -> log-probs [B, L, V]; extra model calls made through it are counted

    @property
    def masked(self) -> torch.Tensor:
        """[B, L] positions in the window that hold MASK."""
        if not self.process.absorbing:
            return torch.zeros_like(self.window)
        return self.window & (self.x == self.process.mask_id)

    @property
    def grid(self) -> tuple[float, float]:
        """(t, s) of this step on the block's uniform grid 1 → 0."""
        return 1.0 - self.j / self.n_steps, 1.0 - (self.j + 1) / self.n_steps

    def draw(self, log_probs: torch.Tensor) -> torch.Tensor:
        return draw(log_probs, temperature=self.temperature, top_p=self.top_p, generator=self.generator)

    def rand(self, shape) -> torch.Tensor:
        return rand(shape, self.generator, self.x.device)


@dataclass
class Update:
    """What a strategy returns: the new canvas and what happened (tensors [B, L] unless noted)."""

    x: torch.Tensor
    committed: torch.Tensor  # bool: positions written this step
    confidence: torch.Tensor  # p_θ(token written), temperature 1
    logprob: torch.Tensor  # log p_θ(token written), temperature 1
    step_logprob: torch.Tensor  # [B]
    position_logprob: torch.Tensor  # [B]
    remasked: torch.Tensor | None = None  # bool: positions turned back into MASK


class Strategy:
    """How one sampler family chooses and writes tokens; see :func:`run`."""

    name = "strategy"
    monotone = True  # only writes into MASK positions; never changes or remasks a committed token
    needs_steps = True  # False: the strategy decides the number of steps per block itself

    def params(self) -> dict:
        return {}

    def begin(self, x: torch.Tensor, fixed: torch.Tensor) -> None:
        """Called once before the first step."""

    def steps_for_block(self, x: torch.Tensor, window: torch.Tensor, steps: int | None) -> int:
        return steps

    def begin_block(self, x: torch.Tensor, window: torch.Tensor, n_steps: int) -> None:
        """Called at the start of every block."""

    def time(self, ctx: StepContext) -> torch.Tensor | None:
        """The time ``[B]`` the model is called at; ``None``: t_of_alpha(1 - masked fraction of the window)."""
        return None

    def step(self, ctx: StepContext, log_probs: torch.Tensor) -> Update:
        raise NotImplementedError


def make_canvas(
    process, prompt, *, batch_size, length, gen_length, generator, device
) -> tuple[torch.Tensor, ...]:
    """``(x, fixed)``: the initial canvas ``[B, L]`` and its prompt positions.

    ``prompt``: ``None`` (unconditional; needs ``batch_size``), a :class:`~minidiff.data.Batch` (its prompt_mask
    positions are kept, everything else is generated), a pair ``(tokens, fixed)`` (any positions may be fixed:
    infilling), or a tensor ``[B, P]`` (all of it is a prefix). ``length`` is the canvas width; ``gen_length``
    instead gives it as (end of the longest prompt) + gen_length; by default the prompt's own width.
    """
    if length is not None and gen_length is not None:
        raise ValueError("pass length or gen_length, not both")
    for name, value in (("length", length), ("gen_length", gen_length), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if prompt is None:
        if batch_size is None or (length or gen_length) is None:
            raise ValueError("without a prompt, pass batch_size and length (or gen_length)")
        tokens = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        fixed = torch.zeros(batch_size, 0, dtype=torch.bool, device=device)
    elif isinstance(prompt, Batch):
        tokens, fixed = prompt.tokens, prompt.prompt_mask
    elif isinstance(prompt, (tuple, list)) and len(prompt) == 2:
        tokens, fixed = prompt
    elif isinstance(prompt, torch.Tensor):
        tokens = prompt
        fixed = torch.ones_like(prompt, dtype=torch.bool)
    else:
        raise TypeError(
            f"prompt must be None, a Batch, a (tokens, fixed) pair or a [B, P] tensor, got {type(prompt).__name__}"
        )
    if tokens.dim() != 2 or fixed.shape != tokens.shape or fixed.dtype != torch.bool:
        raise ValueError(
            f"prompt tokens must be [B, P] with a bool fixed mask of the same shape, got {tuple(tokens.shape)} and {fixed.dtype} {tuple(fixed.shape)}"
        )
    if batch_size is not None and batch_size != tokens.shape[0]:
        raise ValueError(f"batch_size={batch_size} disagrees with the prompt's {tokens.shape[0]} rows")
    tokens, fixed = tokens.to(device), fixed.to(device)
    cols = torch.arange(tokens.shape[1], device=device)
    prompt_end = int(torch.where(fixed, cols + 1, 0).max()) if fixed.numel() else 0
    width = (
        length
        if length is not None
        else prompt_end + gen_length
        if gen_length is not None
        else tokens.shape[1]
    )
    if prompt_end > width:
        raise ValueError(f"the prompt ({prompt_end} tokens) is longer than the sequence (length={width})")
    if width == prompt_end and not (~fixed[:, :width]).any():
        raise ValueError(
            f"nothing to generate: the prompt fills the whole sequence (length={width}); pass gen_length"
        )
    pad = max(width - tokens.shape[1], 0)
    tokens = torch.nn.functional.pad(tokens[:, :width], (0, pad))
    fixed = torch.nn.functional.pad(fixed[:, :width], (0, pad), value=False)
    process.check_tokens(tokens[fixed])
    noise = process.prior(tokens.shape, generator=generator, device=device)
    return torch.where(fixed, tokens, noise), fixed


def block_windows(fixed: torch.Tensor, block_length: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per block, ``(start [B], end [B])`` counted from each row's first free position (one block for ``None``)."""
    b, n = fixed.shape
    free = ~fixed
    first = torch.where(free.any(1), free.long().argmax(1), torch.full((b,), n, device=fixed.device))
    if block_length is None:
        return [(first, torch.full_like(first, n))]
    n_blocks = max(1, math.ceil(int((n - first).max()) / block_length))
    return [
        ((first + i * block_length).clamp(max=n), (first + (i + 1) * block_length).clamp(max=n))
        for i in range(n_blocks)
    ]


def _check_common(steps, block_length, temperature, top_p) -> None:
    for name, value in (("steps", steps), ("block_length", block_length)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _prompt_device(prompt) -> torch.device | None:
    if isinstance(prompt, Batch):
        return prompt.tokens.device
    if isinstance(prompt, torch.Tensor):
        return prompt.device
    if isinstance(prompt, (tuple, list)) and prompt and isinstance(prompt[0], torch.Tensor):
        return prompt[0].device
    return None


class _Forward:
    """Counted model calls returning the process's log-probs, with the "no change ⇒ reuse" cache."""

    def __init__(self, model, process, cache: bool) -> None:
        self.model, self.process, self.calls, self.last = model, process, 0, None
        self.reuse = cache and not is_time_conditioned(model)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.reuse and self.last is not None and torch.equal(self.last[0], x):
            return self.last[1]
        log_probs = self.process.log_probs(denoise(self.model, x, t, vocab_size=self.process.vocab_size), x)
        self.calls += 1
        if self.reuse:
            self.last = (x.clone(), log_probs)
        return log_probs


def _one_step(strategy: Strategy, ctx: StepContext, forward: _Forward) -> tuple[Update, torch.Tensor, int]:
    """Time, model call (or cache), strategy step, and the check that only the window changed."""
    t = strategy.time(ctx)
    if t is None:
        frac = ctx.masked.sum(1) / ctx.window.sum(1).clamp_min(1)
        t = ctx.process.schedule.t_of_alpha(1.0 - frac.double()).float()
    t = t.expand(ctx.x.shape[0]) if t.dim() == 0 else t
    calls_before = forward.calls
    update = strategy.step(ctx, forward(ctx.x, t))
    if not torch.equal(update.x[~ctx.window], ctx.x[~ctx.window]):
        raise RuntimeError(f"strategy {strategy.name!r} changed positions outside the current window")
    return update, t, forward.calls - calls_before


@torch.no_grad()
def run(
    model,
    process,
    strategy: Strategy,
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
    """Run ``strategy`` to completion; returns the final tokens ``[B, L]`` and the :class:`Trace`.

    ``steps`` is the total over all blocks and must be a multiple of their number; by default each block gets as
    many steps as it has positions (one token per step on average).
    """
    _check_common(steps, block_length, temperature, top_p)
    device = model_device(model, _prompt_device(prompt))
    x, fixed = make_canvas(
        process,
        prompt,
        batch_size=batch_size,
        length=length,
        gen_length=gen_length,
        generator=generator,
        device=device,
    )
    blocks = block_windows(fixed, block_length)
    if steps is not None and steps % len(blocks):
        raise ValueError(f"steps={steps} must be a multiple of the number of blocks ({len(blocks)})")
    per_block = steps // len(blocks) if steps is not None else None
    params = {
        "steps": steps,
        "block_length": block_length,
        "temperature": temperature,
        "top_p": top_p,
        **strategy.params(),
    }
    mask_id = process.mask_id if process.absorbing else None
    recorder = TraceRecorder(x, fixed, mask_id=mask_id, sampler=strategy.name, params=params)
    forward = _Forward(model, process, cache)
    positions = torch.arange(x.shape[1], device=device)
    strategy.begin(x, fixed)
    with eval_mode(model):
        for start, end in blocks:
            window = (positions >= start[:, None]) & (positions < end[:, None]) & ~fixed
            if strategy.monotone and not (window & (x == mask_id)).any():
                continue
            n_steps = strategy.steps_for_block(x, window, per_block or int((end - start).max()))
            strategy.begin_block(x, window, n_steps)
            for j in range(n_steps):
                if strategy.monotone and not (window & (x == mask_id)).any():
                    break
                ctx = StepContext(
                    x, fixed, window, j, n_steps, process, generator, temperature, top_p, forward
                )
                update, t, calls = _one_step(strategy, ctx, forward)
                x = update.x
                recorder.record(
                    x,
                    committed=update.committed & window,
                    remasked=(update.remasked if update.remasked is not None else torch.zeros_like(window))
                    & window,
                    confidence=update.confidence,
                    logprob=update.logprob,
                    step_logprob=update.step_logprob,
                    position_logprob=update.position_logprob,
                    t=t,
                    bounds=torch.stack([start, end], dim=-1),
                    calls=calls,
                )
            if strategy.monotone and (window & (x == mask_id)).any():
                raise RuntimeError(f"strategy {strategy.name!r} left MASK tokens in a finished block")
    return x, recorder.finish()

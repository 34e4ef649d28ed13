"""What every diffusion process shares: calling the denoiser, reading batches, drawing times, the loss and bound.

A process (``MaskedDiffusion``, ``UniformDiffusion``) only defines how tokens are corrupted, how the network's
logits become probabilities, and the per-token NELBO; :class:`DiffusionProcess` turns those into

* ``loss(model, batch)`` -- a ``fit``-ready loss function returning ``(loss, metrics)``, the NELBO in nats per
  scored token (a Monte Carlo estimate with one time and one corruption per sequence);
* ``bound(model, data, n_samples)`` -- the NELBO of held-out data with its standard error (the perplexity bound
  is ``exp`` of it), in continuous time or for ``steps = T`` discrete steps.

Which positions are scored: for a :class:`~minidiff.data.Batch` laid out ``[BOS] prompt answer [EOS] [PAD ...]``
the prompt is never corrupted and never scored, and every other position -- answer, EOS and by default the PAD
tail -- is. Scoring the PAD tail is what LLaDA's SFT does (Nie et al., 2025, arXiv 2502.09992: "padded EOS counts
as answer"): a fixed-length model must learn where the answer stops, and it can only learn that if it is trained to
predict the padding. With ``include_pad=False`` the PAD tail is left clean and unscored instead, which tells the
model the answer's length; that is a different (conditional) likelihood and suits sampling only when the length is
given too. A plain ``[B, L]`` tensor (text) is scored at every position.
"""

from __future__ import annotations

import contextlib
import math

import torch

from minidiff.data.tasks.base import Batch
from minidiff.diffusion import schedules
from minidiff.diffusion.schedules import Schedule, check_time_options, check_unit_interval, sample_times

__all__ = ["denoise", "is_time_conditioned", "read_batch", "as_time", "eval_mode", "rand", "DiffusionProcess"]


def is_time_conditioned(model) -> bool:
    """True when ``model.cfg.time_conditioning`` is set (then the model is called as ``model(x, t=t)``)."""
    return bool(getattr(getattr(model, "cfg", None), "time_conditioning", False))


def denoise(
    model, x: torch.Tensor, t: torch.Tensor | None = None, *, vocab_size: int | None = None
) -> torch.Tensor:
    """Run the denoiser on tokens ``x [B, L]`` and check that it returned logits ``[B, L, V]``.

    ``model`` is any callable; it gets ``t`` (``[B]`` or ``[B, L]``) only when it is time-conditioned, as in MDLM
    where ``time_conditioning=False`` is the default and the network ignores t.
    """
    if is_time_conditioned(model):
        if t is None:
            raise ValueError("the model is time-conditioned (model.cfg.time_conditioning): pass t")
        out = model(x, t=t)
    else:
        out = model(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model must return a logits tensor [B, L, V], got {type(out).__name__}")
    b, n = x.shape
    v = vocab_size if vocab_size is not None else "V"
    if (
        out.dim() != 3
        or tuple(out.shape[:2]) != (b, n)
        or (vocab_size is not None and out.shape[2] != vocab_size)
    ):
        raise ValueError(
            f"model must return logits of shape [B, L, V] = [{b}, {n}, {v}] for tokens of shape [{b}, {n}], "
            f"got {tuple(out.shape)}"
        )
    return out


def read_batch(
    batch: Batch | torch.Tensor, *, include_pad: bool = True, prompt_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, ...]:
    """``(x0, fixed, scored)``: tokens ``[B, L]``, positions never corrupted, positions in the loss (= ~fixed).

    ``prompt_mask`` (bool ``[B, L]``) marks never-corrupted positions of a plain tensor; a Batch carries its own."""
    if prompt_mask is not None:
        if isinstance(batch, Batch):
            raise ValueError("prompt_mask is for a plain [B, L] tensor; a Batch carries its own prompt_mask")
        if (
            not isinstance(batch, torch.Tensor)
            or prompt_mask.shape != batch.shape
            or prompt_mask.dtype != torch.bool
        ):
            raise ValueError(
                f"prompt_mask must be a bool tensor shaped like the tokens, got {prompt_mask.dtype} {tuple(prompt_mask.shape)}"
            )
        x0, fixed, _ = read_batch(batch)
        return x0, prompt_mask.to(x0.device), ~prompt_mask.to(x0.device)
    if isinstance(batch, Batch):
        x0, fixed = batch.tokens, batch.prompt_mask.clone()
        if not include_pad:
            fixed |= ~batch.valid
    elif isinstance(batch, torch.Tensor):
        if batch.dim() != 2 or batch.is_floating_point() or batch.is_complex():
            raise ValueError(
                f"batch must be a [B, L] integer tensor, got dtype {batch.dtype} shape {tuple(batch.shape)}"
            )
        x0, fixed = batch, torch.zeros_like(batch, dtype=torch.bool)
    else:
        raise TypeError(
            f"batch must be a minidiff.data.Batch or a [B, L] LongTensor, got {type(batch).__name__}"
        )
    return x0, fixed, ~fixed


def as_time(t, x0: torch.Tensor) -> torch.Tensor:
    """``t`` as a float tensor ``[B]`` or ``[B, L]`` on ``x0``'s device, checked to lie in [0, 1]."""
    t = torch.as_tensor(t, dtype=torch.float32, device=x0.device)
    if t.dim() == 0:
        t = t.expand(x0.shape[0])
    if tuple(t.shape) not in ((x0.shape[0],), tuple(x0.shape)):
        raise ValueError(f"t must be a float, [B] or [B, L] = {list(x0.shape)}, got shape {tuple(t.shape)}")
    check_unit_interval(t, "t")
    return t


def rand(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """U(0, 1) draws from ``generator`` (on the generator's own device), moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


@contextlib.contextmanager
def eval_mode(model):
    """Put an ``nn.Module`` in eval mode (no dropout) for the duration, then restore its mode."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def model_device(model, default) -> torch.device:
    if isinstance(model, torch.nn.Module):
        first = next(model.parameters(), None)
        if first is not None:
            return first.device
    return torch.device(default) if default is not None else torch.device("cpu")


class DiffusionProcess:
    """Base class of the processes; see the module docstring. Subclasses define ``corrupt``, ``log_probs``,
    ``_terms`` (per-token NELBO and cross-entropy) and ``prior``."""

    absorbing = False  # True for processes whose noise is a MASK token (samplers then track masks)

    def __init__(
        self,
        vocab_size: int,
        schedule: str | Schedule = "loglinear",
        *,
        include_pad: bool = True,
        t_eps: float = 1e-3,
        t_range: tuple[float, float] = (0.0, 1.0),
        antithetic: bool = True,
        t_beta: tuple[float, float] | None = None,
    ) -> None:
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        self.vocab_size = vocab_size
        self.schedule = schedules.get(schedule)
        self.include_pad = bool(include_pad)
        self.t_eps, self.t_range, self.antithetic, self.t_beta = t_eps, tuple(t_range), antithetic, t_beta
        check_time_options(self.t_range[0], self.t_range[1], t_eps, t_beta)

    # -- to be defined by each process ----------------------------------------------------------------------
    def corrupt(self, x0, t, *, fixed=None, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def log_probs(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prior(self, shape, *, generator=None, device=None) -> torch.Tensor:
        raise NotImplementedError

    def _terms(self, logits, x0, z_t, t, steps) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def check_tokens(self, x0: torch.Tensor) -> None:
        if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}) (vocab_size), got {int(x0.min())}..{int(x0.max())}"
            )

    # -- shared ---------------------------------------------------------------------------------------------
    def per_token_nelbo(self, logits, x0, z_t, t, *, steps: int | None = None) -> torch.Tensor:
        """The NELBO term of every position ``[B, L]`` given the network's ``logits`` on ``z_t`` (no reduction)."""
        return self._terms(logits, x0, z_t, as_time(t, x0), steps)[0]

    def draw_times(
        self, n: int, *, steps: int | None = None, generator=None, device=None, clipped: bool = True
    ):
        """Training times ``[n]``: on [max(low, t_eps), high] (or Beta), or on the grid {1/T, ..., 1} for ``steps``."""
        if steps is not None:
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
                raise ValueError(f"steps must be a positive int or None, got {steps!r}")
            u = sample_times(n, generator=generator, antithetic=self.antithetic, eps=0.0, device=device)
            return (torch.floor(u * steps) + 1).clamp(max=steps) / steps
        low, high = self.t_range if clipped else (0.0, 1.0)
        beta = self.t_beta if clipped else None
        return sample_times(
            n,
            generator=generator,
            antithetic=self.antithetic,
            low=low,
            high=high,
            eps=self.t_eps,
            beta=beta,
            device=device,
        )

    def loss(
        self,
        model,
        batch: Batch | torch.Tensor,
        *,
        prompt_mask: torch.Tensor | None = None,
        t=None,
        steps: int | None = None,
        generator=None,
    ):
        """The NELBO in nats per scored token and metrics; usable directly as ``fit``'s ``loss_fn``.

        ``batch``: a :class:`~minidiff.data.Batch` or tokens ``[B, L]`` (with an optional bool ``prompt_mask`` of
        positions that are never corrupted nor scored). ``t``: a float, ``[B]`` or ``[B, L]`` (one time per position, as block diffusion needs); drawn with
        :meth:`draw_times` when omitted. ``steps``: the discrete-time NELBO with T steps instead of the continuous one.
        Metrics: ``tokens`` (scored positions), ``noised_frac`` (fraction of them corrupted), ``ce_noised`` (mean
        -log p_θ(x | z_t) over corrupted positions, unweighted) and ``t_mean``.
        """
        x0, fixed, scored = read_batch(batch, include_pad=self.include_pad, prompt_mask=prompt_mask)
        self.check_tokens(x0)
        if t is None:
            t = self.draw_times(x0.shape[0], steps=steps, generator=generator, device=x0.device)
        t = as_time(t, x0)
        z_t = self.corrupt(x0, t, fixed=fixed, generator=generator)
        logits = denoise(model, z_t, t, vocab_size=self.vocab_size)
        nelbo, ce = self._terms(logits, x0, z_t, t, steps)
        n = scored.sum()
        loss = torch.where(scored, nelbo, 0.0).sum() / n.clamp_min(1)
        noised = (z_t != x0) & scored
        metrics = {
            "tokens": float(n),
            "noised_frac": float(noised.sum() / n.clamp_min(1)),
            "ce_noised": float(torch.where(noised, ce.detach(), 0.0).sum() / noised.sum().clamp_min(1)),
            "t_mean": float(t.mean()),
        }
        return loss, metrics

    @torch.no_grad()
    def bound(
        self,
        model,
        data: Batch | torch.Tensor,
        n_samples: int = 8,
        *,
        steps: int | None = None,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
    ) -> tuple[float, float]:
        """NELBO of ``data`` in nats per scored token, and its standard error over ``n_samples`` Monte Carlo passes.

        Each pass draws fresh (antithetic) times and corruptions for every sequence; the passes are independent,
        so the standard error is their standard deviation / √n_samples. Times are drawn on the full range
        [t_eps, 1] even if training clips them (BD3-LM reports perplexity with the unclipped ELBO). ``steps = T``
        gives the discrete-time NELBO (that of the T-step ancestral sampler), which tends to the continuous one as T
        grows -- from above for a model that knows the data (chapter 01's "bound vs number of steps").
        """
        if not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(
                f"n_samples must be an int >= 2 (a standard error needs two passes), got {n_samples!r}"
            )
        tokens = data.tokens if isinstance(data, Batch) else data
        device = model_device(model, tokens.device)
        estimates = []
        with eval_mode(model):
            for _ in range(n_samples):
                total, count = 0.0, 0.0
                for start in range(0, tokens.shape[0], batch_size):
                    chunk = data[start : start + batch_size].to(device)
                    n_rows = chunk.tokens.shape[0] if isinstance(chunk, Batch) else chunk.shape[0]
                    t = self.draw_times(
                        n_rows, steps=steps, generator=generator, device=device, clipped=False
                    )
                    loss, metrics = self.loss(model, chunk, t=t, steps=steps, generator=generator)
                    total += loss.item() * metrics["tokens"]
                    count += metrics["tokens"]
                estimates.append(total / max(count, 1.0))
        est = torch.tensor(estimates, dtype=torch.float64)
        return est.mean().item(), (est.std() / math.sqrt(n_samples)).item()

"""``fit``: the one training loop every chapter and benchmark uses."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from minidiff.config import resolve_device
from minidiff.data.tasks.base import Batch
from minidiff.train.checkpoint import load_checkpoint, save_checkpoint
from minidiff.train.history import History
from minidiff.train.lr_schedules import get_lr_schedule

__all__ = ["fit"]

LossFn = Callable[[torch.nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict]"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate(args: dict[str, Any]) -> None:
    """Check fit's arguments (``args`` is its ``locals()`` on entry); errors name the argument."""
    for name in ("steps", "batch_size", "log_every", "grad_accum", "eval_every", "checkpoint_every"):
        value, optional = args[name], name in ("eval_every", "checkpoint_every")
        if optional and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int{' or None' if optional else ''}, got {value!r}")
    if not callable(args["loss_fn"]):
        raise TypeError(f"loss_fn must be a callable loss_fn(model, batch), got {args['loss_fn']!r}")
    if not _is_number(args["lr"]) or not args["lr"] > 0:
        raise ValueError(f"lr must be a positive number, got {args['lr']!r}")
    if not _is_number(args["weight_decay"]) or not args["weight_decay"] >= 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {args['weight_decay']!r}")
    if args["clip"] is not None and (not _is_number(args["clip"]) or not args["clip"] > 0):
        raise ValueError(f"clip must be None (no clipping) or a positive number, got {args['clip']!r}")
    if args["eval_fn"] is not None and not callable(args["eval_fn"]):
        raise TypeError(f"eval_fn must be None or a callable eval_fn(model) -> dict, got {args['eval_fn']!r}")
    if args["eval_every"] is not None and args["eval_fn"] is None:
        raise ValueError("eval_every requires eval_fn")
    if args["checkpoint_every"] is not None and args["checkpoint"] is None:
        raise ValueError("checkpoint_every requires checkpoint (a file path)")
    seed = args["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, (torch.Tensor, Batch)):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _batch_sampler(data: Any, device: torch.device) -> Callable[[int, torch.Generator], Any]:
    """``(batch_size, generator) -> batch`` on ``device`` for each accepted form of ``data``."""
    if isinstance(data, (torch.Tensor, Batch)):
        tokens = data.tokens if isinstance(data, Batch) else data
        if tokens.dim() == 0 or tokens.shape[0] == 0:
            raise ValueError(f"data must hold at least one row [N, ...], got shape {tuple(tokens.shape)}")
        rows, n = data.to(device), tokens.shape[0]
        # Indices are drawn on the CPU generator, so a run is the same on any device.
        return lambda batch_size, gen: rows[torch.randint(n, (batch_size,), generator=gen).to(device)]
    if callable(data):
        return lambda batch_size, gen: _to_device(data(batch_size, gen), device)
    raise TypeError(
        f"data must be a callable data(batch_size, generator), a tensor [N, ...] or a minidiff.data.Batch, "
        f"got {type(data).__name__}"
    )


def _count_tokens(batch: Any) -> int:
    if isinstance(batch, Batch):
        return int(batch.valid.sum())
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].numel()
    return 0


def _build_optimizer(
    optimizer: Any, model: torch.nn.Module, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        from minidiff.optim import create

        return create(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay)
    if callable(optimizer):
        built = optimizer(model.parameters())
        if not isinstance(built, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer factory must return a torch.optim.Optimizer, got {type(built).__name__}"
            )
        return built
    raise TypeError(
        f"optimizer must be a registry name, a torch.optim.Optimizer or a callable params -> Optimizer, "
        f"got {type(optimizer).__name__}"
    )


def _multiplier(lr_schedule: Any, steps: int, warmup: int, schedule_kwargs: dict) -> Callable[[int], float]:
    if not callable(lr_schedule):
        return get_lr_schedule(lr_schedule, steps, warmup, **schedule_kwargs)
    if schedule_kwargs or warmup:
        raise ValueError(
            "warmup and schedule keyword arguments apply to named schedules, not a callable lr_schedule"
        )
    return lr_schedule


def _due(step: int, every: int | None, steps: int) -> bool:
    """True every ``every`` steps and at the last step."""
    return step == steps or (every is not None and step % every == 0)


def _split_loss(out: Any, step: int) -> tuple[torch.Tensor, dict]:
    loss, metrics = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError(
            f"loss_fn must return a scalar tensor or (scalar, metrics dict); got {loss!r} at step {step}"
        )
    if not isinstance(metrics, dict):
        raise TypeError(f"loss_fn's metrics must be a dict, got {type(metrics).__name__} at step {step}")
    return loss, metrics


def _accumulate_gradients(
    model: torch.nn.Module,
    loss_fn: LossFn,
    draw: Callable[[], Any],
    grad_accum: int,
    step: int,
    history: History,
) -> tuple[float, dict[str, float], int]:
    """Backpropagate the mean loss of ``grad_accum`` batches; returns (mean loss, mean metrics, tokens seen)."""
    loss_sum, metric_sums, n_tokens = 0.0, {}, 0
    for _ in range(grad_accum):
        batch = draw()
        loss, metrics = _split_loss(loss_fn(model, batch), step)
        value = loss.item()
        if not math.isfinite(value):
            err = FloatingPointError(
                f"loss is {value} at step {step}; training stopped (the {len(history)} steps logged before it are "
                f"in err.history)"
            )
            err.history = history
            raise err
        (loss / grad_accum).backward()
        loss_sum += value
        batch_tokens = metrics.pop("tokens", None)
        n_tokens += int(batch_tokens) if batch_tokens is not None else _count_tokens(batch)
        for name, metric in metrics.items():
            metric_sums[name] = metric_sums.get(name, 0.0) + (
                metric.item() if hasattr(metric, "item") else metric
            )
    return loss_sum / grad_accum, {k: v / grad_accum for k, v in metric_sums.items()}, n_tokens


def _evaluate(model: torch.nn.Module, eval_fn: Callable, history: History, step: int) -> dict:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            metrics = eval_fn(model)
    finally:
        model.train(was_training)
    return history.log_eval(step, metrics)


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Callable[[int, torch.Generator], Any] | torch.Tensor | Batch,
    *,
    steps: int,
    batch_size: int,
    optimizer: str | torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] = "adamw",
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    lr_schedule: str | Callable[[int], float] = "constant",
    warmup: int = 0,
    clip: float | None = 1.0,
    eval_fn: Callable[[torch.nn.Module], dict] | None = None,
    eval_every: int | None = None,
    log_every: int = 1,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    grad_accum: int = 1,
    **schedule_kwargs: Any,
) -> History:
    """Train ``model`` for ``steps`` optimizer updates of ``loss_fn`` and return the :class:`History`.

    Each update draws ``grad_accum`` batches of ``batch_size`` rows, averages the gradients of
    ``loss_fn(model, batch)`` (a scalar tensor, or ``(scalar, metrics)`` whose metrics are logged in
    ``history.extra``; a ``"tokens"`` metric overrides the token count), clips their global norm to ``clip``
    (the norm before clipping is logged), and steps the optimizer with the LR ``lr · m(step)`` of the schedule.

    * ``data``: a callable ``data(batch_size, generator) -> batch``, a tensor ``[N, ...]`` or a
      :class:`minidiff.data.Batch`, whose rows are sampled with replacement. Batches come from fit's own
      ``torch.Generator`` seeded with ``seed`` and are moved to ``device`` (default: where the model is).
      Tokens per batch: its number of elements, or ``valid.sum()`` for a ``Batch``.
    * ``optimizer``: a name from :func:`minidiff.optim.available` (built with ``lr`` and ``weight_decay``), a
      callable ``params -> Optimizer``, or a ready ``Optimizer`` (then ``lr`` and ``weight_decay`` are unused; its
      own LR is the base the schedule multiplies).
    * ``lr_schedule``: ``"constant"``, ``"cosine"``, ``"wsd"`` (see :mod:`minidiff.train.lr_schedules`; extra
      keyword arguments such as ``min_ratio`` or ``decay_frac`` go to it) or a multiplier function ``step -> float``.
    * ``eval_fn(model) -> dict`` runs every ``eval_every`` steps and after the last, in eval mode under
      ``torch.no_grad``; results land in ``history.evals``.
    * ``checkpoint``: a file written every ``checkpoint_every`` steps and at the end. With ``resume`` and an
      existing file, training continues from it -- model, optimizer, scheduler, history, batch generator and the
      global RNGs are restored, so the result is bit-identical to an uninterrupted run.

    The global RNGs (which objectives use for noise levels and masks) are not reseeded: seed them before
    building the model, e.g. with :func:`minidiff.seed_everything`. A non-finite loss raises
    ``FloatingPointError`` naming the step; the history so far is attached to it as ``err.history``.

    Example::

        tokens = torch.arange(8).repeat(64).view(32, 16)  # 32 rows of 0 1 ... 7 0 1 ... 7
        model = Transformer(vocab_size=8, d_model=32, n_layers=1, n_heads=2, max_len=16, mask="causal")

        def next_token_loss(model, x):  # x: [B, L]
            return F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())

        history = fit(model, next_token_loss, tokens, steps=100, batch_size=8, lr=1e-2, lr_schedule="cosine", warmup=10)
        history.plot()
    """
    _validate(locals())
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    else:
        device = resolve_device(device)
        model.to(device)
    next_batch = _batch_sampler(data, device)
    opt = _build_optimizer(optimizer, model, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, _multiplier(lr_schedule, steps, warmup, schedule_kwargs)
    )
    generator = torch.Generator().manual_seed(seed)
    params = [p for group in opt.param_groups for p in group["params"]]

    history, start, tokens, time_offset = History(), 0, 0, 0.0
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        state = load_checkpoint(
            checkpoint, model=model, optimizer=opt, scheduler=scheduler, generator=generator
        )
        start = state["step"]
        if start > steps:
            raise ValueError(f"checkpoint {checkpoint} is at step {start}, beyond steps={steps}")
        history = state["history"] or History()
        fit_state = (state["extra"] or {}).get("fit", {})
        tokens, time_offset = fit_state.get("tokens", 0), fit_state.get("wall_time", 0.0)

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=not progress, desc="fit", dynamic_ncols=True)
    postfix: dict[str, str] = {}
    t0 = time.perf_counter()
    model.train()
    try:
        for step in range(start + 1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss_mean, metrics, n_tokens = _accumulate_gradients(
                model, loss_fn, lambda: next_batch(batch_size, generator), grad_accum, step, history
            )
            tokens += n_tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
            lr_now = opt.param_groups[0]["lr"]  # the LR this update uses (group 0's, if groups differ)
            opt.step()
            scheduler.step()

            elapsed = time_offset + time.perf_counter() - t0
            if _due(step, log_every, steps):
                history.log(
                    step,
                    loss=loss_mean,
                    lr=lr_now,
                    grad_norm=grad_norm,
                    tokens=tokens,
                    wall_time=elapsed,
                    metrics=metrics,
                )
                postfix.update(loss=f"{loss_mean:.4g}", lr=f"{lr_now:.3g}")
            if eval_fn is not None and _due(step, eval_every, steps):
                record = _evaluate(model, eval_fn, history, step)
                postfix.update(
                    {k: f"{v:.4g}" for k, v in record.items() if k != "step" and isinstance(v, float)}
                )
            if checkpoint is not None and _due(step, checkpoint_every, steps):
                save_checkpoint(
                    checkpoint,
                    model=model,
                    optimizer=opt,
                    scheduler=scheduler,
                    history=history,
                    step=step,
                    generator=generator,
                    extra={"fit": {"tokens": tokens, "wall_time": elapsed}},
                )
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return history

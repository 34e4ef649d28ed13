r"""Building blocks shared by minidiff's optimizers (optax-style: small pieces composed, never copied).

What lives here, and who may reuse it:

- **hyperparameter checks** -- :func:`check_lr`, :func:`check_betas`, :func:`check_eps`,
  :func:`check_non_negative`, :func:`check_positive`, :func:`check_in_range`, :func:`check_positive_int`,
  :func:`check_non_negative_int`. Each takes ``(name, value)`` and raises ``ValueError`` naming the argument and
  the accepted range. An optimizer lists them in its ``hparam_checks`` table and :class:`MinidiffOptimizer`
  runs them on every param group, so per-group overrides are checked too.
- **scalar schedules** -- :func:`bias_correction` (``1 - β^t``).
- **update pieces on lists of tensors** (``torch._foreach_*``, one call per list):
  :func:`decoupled_weight_decay_` (θ ← θ(1 − η·λ), torch's convention), :func:`adam_moments_`
  (m, v ← EMAs of g, g²), :func:`adam_denominator` (√v / √(1 − β2^t) + ε, torch's ε placement),
  :func:`coordinate_clip` (clip the top fraction of coordinates to the next magnitude, O15),
  :func:`finite_mask` (which gradients are free of NaN/Inf), :func:`scalars_to_floats` (one sync per device).
- :class:`MinidiffOptimizer` -- the common ``step()``: closure, ``None`` grads skipped, sparse grads and complex
  params rejected, fp32 state for bf16/fp16 params, the NaN/Inf policy, per-parameter step counters, and
  ``state_dict`` round trips that keep fp32 state. A subclass writes only the update rule, ``_update``.

**NaN/Inf policy (library-wide, ``nonfinite_policy = "skip"``).** A parameter whose gradient holds any NaN or
±Inf is *skipped* for that step: its value, its moments and its step counter stay exactly as they were, and
``state[p]["nonfinite_skips"]`` counts the skipped steps. Other parameters step normally. Why skip rather than
propagate: one bad batch would otherwise poison Adam's second moment for good (v = NaN forever), and a run that
can continue is easier to debug than one that is NaN everywhere. The check costs one fp32 sum per gradient (a
read of the gradient, the cheapest reduction) and one host sync per param group and step. torch's own optimizers (``adamw`` is torch's AdamW) propagate; the
conformance suite reads ``nonfinite_policy`` to know which behaviour to expect (absent means ``"propagate"``).

**Low precision.** For bf16/fp16 parameters every state tensor is kept in fp32; the update is computed in fp32
on an fp32 copy of the parameter and rounded to the parameter's dtype once per step (no stochastic rounding, no
master weights: updates smaller than half an ulp of θ are lost -- keep fp32 master weights for real bf16 runs).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import chain
from numbers import Real
from typing import Any

import torch

__all__ = [
    "LOW_PRECISION",
    "MinidiffOptimizer",
    "adam_denominator",
    "adam_moments_",
    "bias_correction",
    "check_betas",
    "check_eps",
    "check_in_range",
    "check_lr",
    "check_non_negative",
    "check_non_negative_int",
    "check_positive",
    "check_positive_int",
    "coordinate_clip",
    "decoupled_weight_decay_",
    "cache_sized_chunks",
    "finite_mask",
    "scalars_to_floats",
    "state_dtype",
]

Tensors = list[torch.Tensor]
LOW_PRECISION = (torch.bfloat16, torch.float16)


# --------------------------------------------------------------------------- hyperparameter checks
def _is_real(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, Real) and not isinstance(value, bool)


def check_non_negative(name: str, value: Any) -> None:
    """``value`` must be a finite real number ≥ 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """``value`` must be a finite real number > 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a finite float > 0, got {value!r}")


def check_lr(name: str, value: Any) -> None:
    """Learning rates are finite and ≥ 0 (0 is allowed: schedulers and frozen groups use it)."""
    check_non_negative(name, value)


def check_eps(name: str, value: Any) -> None:
    """ε sits in a denominator (or under a square root) and must be > 0."""
    check_positive(name, value)


def check_in_range(name: str, value: Any, low: float, high: float, *, high_open: bool = True) -> None:
    """``low <= value < high`` (or ``<= high`` with ``high_open=False``)."""
    bracket = ")" if high_open else "]"
    ok = (
        _is_real(value)
        and low <= float(value)
        and (float(value) < high if high_open else float(value) <= high)
    )
    if not ok:
        raise ValueError(f"{name} must be a float in [{low}, {high}{bracket}, got {value!r}")


def check_betas(name: str, value: Any, n: int = 2) -> None:
    """A tuple of ``n`` EMA coefficients, each in [0, 1)."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise ValueError(f"{name} must be a tuple of {n} floats in [0, 1), got {value!r}")
    for i, beta in enumerate(value):
        check_in_range(f"{name}[{i}]", beta, 0.0, 1.0)


def check_positive_int(name: str, value: Any) -> None:
    """An int ≥ 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_non_negative_int(name: str, value: Any) -> None:
    """An int ≥ 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


# --------------------------------------------------------------------------- scalar pieces
def bias_correction(beta: float, step: int) -> float:
    """``1 - β^t``: the mass an EMA started at zero has accumulated after ``t`` steps."""
    return 1.0 - beta**step


def state_dtype(p: torch.Tensor) -> torch.dtype:
    """fp32 for bf16/fp16 parameters, the parameter's own dtype otherwise."""
    return torch.float32 if p.dtype in LOW_PRECISION else p.dtype


# --------------------------------------------------------------------------- list-of-tensor pieces
def decoupled_weight_decay_(
    params: Tensors, lr: float, weight_decay: float, ratios: list[float] | None = None
) -> None:
    """θ ← θ (1 − lr·λ·r) in place (torch's AdamW convention: the decay is scaled by the learning rate).

    ``ratios`` (one per tensor) scales λ per tensor; AdamP/SGDP use it to weaken the decay of projected weights.
    """
    if weight_decay == 0 or lr == 0:
        return
    if ratios is None:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    else:
        torch._foreach_mul_(params, [1.0 - lr * weight_decay * r for r in ratios])


def adam_moments_(
    exp_avgs: Tensors, exp_avg_sqs: Tensors, grads: Tensors, beta1: float, beta2: float
) -> None:
    """m ← β1 m + (1 − β1) g and v ← β2 v + (1 − β2) g², in place, with torch Adam's exact operations."""
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)


def adam_denominator(exp_avg_sqs: Tensors, beta2: float, step: int, eps: float) -> Tensors:
    """√v / √(1 − β2^t) + ε as new tensors: torch's (and the Adam paper's) ε placement, outside the root."""
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, math.sqrt(bias_correction(beta2, step)))
    torch._foreach_add_(denom, eps)
    return denom


def finite_mask(grads: Tensors) -> list[bool]:
    """``True`` for each gradient free of NaN and ±Inf: one fp32 sum per tensor, one host sync.

    A sum propagates NaN, and +Inf + (−Inf) = NaN, so Σg is finite exactly when g is -- unless finite entries
    add up beyond fp32's range (|Σg| > 3.4e38), a gradient we are content to skip too. A sum is the cheapest
    reduction on CPU (a max-|g| or an L1 norm materializes |g| first and costs ~10× more).
    """
    return [math.isfinite(x) for x in scalars_to_floats([g.sum(dtype=torch.float32) for g in grads])]


def cache_sized_chunks(*lists: Tensors, max_numel: int = 1 << 20) -> Iterator[tuple[list[torch.Tensor], ...]]:
    """Split parallel tensor lists into consecutive chunks of at most ``max_numel`` elements per list (a tensor
    larger than that is a chunk of its own), so that a sequence of ``torch._foreach_*`` ops over one chunk
    finds its operands still in cache. Yields one tuple of sub-lists per chunk; lists must have equal length."""
    if len({len(items) for items in lists}) > 1:
        raise ValueError(f"lists must have equal lengths, got {[len(items) for items in lists]}")
    if not lists or not lists[0]:
        return
    start, numel = 0, 0
    for i, t in enumerate(lists[0]):
        if i > start and numel + t.numel() > max_numel:
            yield tuple(items[start:i] for items in lists)
            start, numel = i, 0
        numel += t.numel()
    yield tuple(items[start:] for items in lists)


def scalars_to_floats(scalars: Tensors) -> list[float]:
    """0-dim tensors → Python floats with one host sync per device (not one per tensor)."""
    if not scalars:
        return []
    device = scalars[0].device
    if all(s.device == device for s in scalars):
        return torch.stack([s.float() for s in scalars]).tolist()
    return [s.item() for s in scalars]


def coordinate_clip(grads: Tensors, fraction: float) -> tuple[Tensors, float]:
    r"""Clip the top ``fraction`` of coordinates (by |g|, over all tensors together) to the next magnitude.

        With d coordinates and k = ⌊c·d⌋, the threshold τ is the (k+1)-th largest |g_i|, and
        g_i ← sign(g_i)·min(|g_i|, τ) = clamp(g_i, −τ, τ) (Pan & Li 2023, arXiv 2306.00204, "coordinate-wise
        clipping"). k = 0 leaves g unchanged; k ≥ d (c = 1) gives τ = 0 and a zero gradient. Costs a copy of |g| and
    a top-(k+1) selection over the group: ~10 ms per million coordinates at c = 0.1 on one CPU core.
        Returns new tensors (the inputs are not modified) and τ.
    """
    d = sum(g.numel() for g in grads)
    k = math.floor(fraction * d)
    if k == 0 or d == 0:
        return list(grads), float("inf")
    if k >= d:
        return [torch.zeros_like(g) for g in grads], 0.0
    magnitudes = torch.cat([g.detach().reshape(-1).float() for g in grads]).abs_()
    tau = torch.topk(magnitudes, k + 1, sorted=False).values.min().item()  # the (k+1)-th largest |g|
    return [g.clamp(-tau, tau) for g in grads], tau


# --------------------------------------------------------------------------- the common step
class MinidiffOptimizer(torch.optim.Optimizer):
    """Base class: everything around the update rule, so each optimizer file holds only its equations.

    A subclass sets the class attributes below and implements :meth:`_update` (and, when its state is more than
    zero tensors shaped like the parameter, :meth:`_init_state`).

    - ``param_kind``: ``"any"`` or ``"matrix"`` (2-D weights only; other shapes raise ``ValueError``).
    - ``state_keys``: names of the state tensors shaped like the parameter, created as zeros.
    - ``hparam_checks``: ``{name: check(name, value)}`` run on every param group when it is added.
    - ``nonfinite_policy``: ``"skip"`` (see the module docstring).
    - ``test_hparams``: hyperparameters the conformance suite uses (e.g. a workable lr).
    """

    param_kind: str = "any"
    nonfinite_policy: str = "skip"
    state_keys: tuple[str, ...] = ()
    hparam_checks: dict[str, Callable[[str, Any], None]] = {}
    test_hparams: dict[str, Any] = {}

    # ---- construction
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for name, check in self.hparam_checks.items():
            check(name, group[name])
        for p in group["params"]:
            self._check_param(p)

    def _check_param(self, p: torch.Tensor) -> None:
        name = type(self).__name__
        if p.is_complex():
            raise ValueError(
                f"{name} does not support complex parameters (got one of shape {tuple(p.shape)}); "
                "optimize torch.view_as_real(p) instead"
            )
        if self.param_kind == "matrix" and p.ndim != 2:
            raise ValueError(
                f"{name} updates 2-D weight matrices only (param_kind='matrix'), got a parameter of shape "
                f"{tuple(p.shape)}; route embeddings, heads, norms and biases to an Adam-family optimizer"
            )

    # ---- the parts a subclass writes
    def _init_state(self, group: dict[str, Any], p: torch.Tensor, state: dict[str, Any]) -> None:
        """Create the per-parameter state (called once, before the first step that sees a gradient)."""
        for key in self.state_keys:
            state[key] = torch.zeros_like(p, dtype=state_dtype(p), memory_format=torch.preserve_format)

    def _update(
        self, group: dict[str, Any], params: Tensors, grads: Tensors, states: list[dict[str, Any]], step: int
    ) -> None:
        """Apply the update rule in place to ``params`` (fp32 working copies for low-precision params).

        All tensors passed in one call share the same step count ``step`` (1 on the first update), so bias
        corrections and schedules are plain floats. ``grads`` must not be modified in place.
        """
        raise NotImplementedError

    # ---- the common step
    def _gather(self, group: dict[str, Any]) -> list[torch.Tensor]:
        """Parameters of ``group`` that take a step now: grad present and finite (others are skipped/counted)."""
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients (parameter of shape "
                    f"{tuple(p.shape)}); use dense gradients, e.g. nn.Embedding(sparse=False)"
                )
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["nonfinite_skips"] = 0
                self._init_state(group, p, state)
        ready = []
        for p, finite in zip(params, finite_mask([p.grad for p in params])):
            if finite:
                ready.append(p)
            else:
                self.state[p]["nonfinite_skips"] += 1
        return ready

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a finite gradient; returns ``closure()`` when given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_step: dict[int, list[torch.Tensor]] = defaultdict(list)
            for p in self._gather(group):
                self.state[p]["step"] += 1
                by_step[self.state[p]["step"]].append(p)
            for step, params in by_step.items():  # one bucket unless some parameters skipped steps
                work = [p.float() if p.dtype in LOW_PRECISION else p for p in params]
                grads = [p.grad.float() if p.grad.dtype in LOW_PRECISION else p.grad for p in params]
                self._update(group, work, grads, [self.state[p] for p in params], step)
                for p, w in zip(params, work):
                    if w is not p:
                        p.copy_(w)
        return loss

    # ---- state dicts keep fp32 state for low-precision parameters
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch casts every floating state tensor to its parameter's dtype; undo that for bf16/fp16 params."""
        saved_state = state_dict["state"]
        saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        super().load_state_dict(state_dict)
        current = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(saved_ids, current):
            if p.dtype in LOW_PRECISION and saved_id in saved_state:
                for key, value in saved_state[saved_id].items():
                    if isinstance(value, torch.Tensor) and value.is_floating_point():
                        self.state[p][key] = value.to(device=p.device, dtype=torch.float32, copy=True)

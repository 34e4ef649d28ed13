r"""Learning-rate schedules as multipliers of the base LR, for ``torch.optim.lr_scheduler.LambdaLR``.

Each schedule is a pure function ``m(step, *, steps, warmup, ...) -> float`` of the 0-based index of the
update about to be taken (``LambdaLR`` evaluates it at 0 before the first update and at ``k`` after ``k``
updates), so a widget can plot ``[cosine(s, steps=100) for s in range(100)]`` directly.
:func:`get_lr_schedule` validates the arguments and binds them, giving the ``Callable[[int], float]`` that
``LambdaLR`` wants.

All three share a linear warmup, ``m(s) = (s + 1) / warmup`` for ``s < warmup``: it reaches 1 on the last warmup
update and never spends an update at LR 0.

* ``constant``: 1 after warmup.
* ``cosine``: ``m(s) = r + (1 - r) · ½ (1 + cos(π p))`` with ``p = (s - warmup) / (steps - warmup)`` and
  ``r = min_ratio``; ``m`` reaches ``min_ratio`` at ``s = steps``, just after the last update.
* ``wsd`` (warmup–stable–decay): 1 after warmup until the last ``D = round(decay_frac · steps)`` updates, which
  decay to ``min_ratio`` with ``q = (s - (steps - D)) / D`` as ``1 - q`` (``shape="linear"``) or ``1 - √q``
  (``shape="1-sqrt"``). The schedule comes from MiniCPM (Hu et al., 2024, arXiv 2404.06395), which showed that
  the stable phase can be branched at any point and cooled down quickly (they use an exponential decay over
  about 10% of the run); Hägele et al. (2024, arXiv 2405.18392) found that a cooldown of ~20% of the steps
  matches cosine and that the ``1-sqrt`` shape beats linear. Our default is theirs: ``decay_frac=0.2``, linear.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

__all__ = ["constant", "cosine", "wsd", "get_lr_schedule", "SCHEDULES", "WSD_SHAPES"]

WSD_SHAPES = ("linear", "1-sqrt")


def _check_int(name: str, value: int, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def _check_common(step: int, steps: int, warmup: int, min_ratio: float) -> None:
    _check_int("step", step, minimum=0)
    _check_int("steps", steps, minimum=1)
    _check_int("warmup", warmup, minimum=0)
    if warmup > steps:
        raise ValueError(f"warmup must be at most steps={steps}, got {warmup}")
    if not isinstance(min_ratio, (int, float)) or isinstance(min_ratio, bool) or not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be a number in [0, 1], got {min_ratio!r}")


def _warmup(step: int, warmup: int) -> float:
    return (step + 1) / warmup


def constant(step: int, *, steps: int, warmup: int = 0) -> float:
    """Linear warmup, then 1."""
    _check_common(step, steps, warmup, 0.0)
    return _warmup(step, warmup) if step < warmup else 1.0


def cosine(step: int, *, steps: int, warmup: int = 0, min_ratio: float = 0.0) -> float:
    """Linear warmup, then a half cosine from 1 down to ``min_ratio`` (reached at ``step == steps``)."""
    _check_common(step, steps, warmup, min_ratio)
    if step < warmup:
        return _warmup(step, warmup)
    p = min(1.0, (step - warmup) / max(steps - warmup, 1))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def wsd(
    step: int,
    *,
    steps: int,
    warmup: int = 0,
    decay_frac: float = 0.2,
    shape: str = "linear",
    min_ratio: float = 0.0,
) -> float:
    """Warmup, stable at 1, then decay to ``min_ratio`` over the last ``round(decay_frac · steps)`` updates."""
    _check_common(step, steps, warmup, min_ratio)
    if (
        not isinstance(decay_frac, (int, float))
        or isinstance(decay_frac, bool)
        or not 0.0 <= decay_frac <= 1.0
    ):
        raise ValueError(f"decay_frac must be a number in [0, 1], got {decay_frac!r}")
    if shape not in WSD_SHAPES:
        raise ValueError(f"shape must be one of {WSD_SHAPES}, got {shape!r}")
    decay = round(decay_frac * steps)
    if warmup + decay > steps:
        raise ValueError(
            f"warmup + decay steps must fit in steps={steps}: warmup={warmup} and decay_frac={decay_frac} "
            f"({decay} decay steps); lower warmup or decay_frac"
        )
    if step < warmup:
        return _warmup(step, warmup)
    decay_start = steps - decay
    if step < decay_start or decay == 0:
        return 1.0
    q = min(1.0, (step - decay_start) / decay)
    fall = q if shape == "linear" else math.sqrt(q)
    return min_ratio + (1.0 - min_ratio) * (1.0 - fall)


SCHEDULES: dict[str, Callable[..., float]] = {"constant": constant, "cosine": cosine, "wsd": wsd}


def get_lr_schedule(name: str, steps: int, warmup: int = 0, **kwargs) -> Callable[[int], float]:
    """The multiplier function ``step -> float`` of schedule ``name`` with its arguments bound and checked.

    >>> m = get_lr_schedule("cosine", steps=10, warmup=2)
    >>> [round(m(s), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {tuple(SCHEDULES)}, got {name!r}")
    fn = SCHEDULES[name]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("step", "steps", "warmup")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for the {name!r} schedule; it accepts {accepted}")
    # A partial of a module-level function (not a closure) keeps LambdaLR's state_dict empty of callables.
    schedule = functools.partial(fn, steps=steps, warmup=warmup, **kwargs)
    schedule(0)  # validate now rather than at the first optimizer step
    return schedule

"""Noise schedules: the keep probability α(t) of discrete diffusion, its derivative and the loss weight.

Time runs as in MDLM (Sahoo et al., 2024, arXiv 2406.07524): ``t = 0`` is clean data and ``t = 1`` is pure noise.
α(t) is the probability that a token is still clean at time t, so α(0) ≈ 1 and α(1) ≈ 0. MDLM's code writes the
same thing as a "total noise" σ(t) with α(t) = exp(-σ(t)).

Every schedule is a small object with

* ``alpha(t)``: α(t), the keep probability;
* ``alpha_prime(t)``: dα/dt (negative);
* ``weight(t) = -α'(t) / (1 - α(t))``: the weight of the masked-diffusion NELBO
  L = E_t E_{z_t} [ w(t) Σ_{i: z_t^i = m} -log p_θ(x^i | z_t) ];
* ``t_of_alpha(a)``: the inverse of α (samplers use it to turn a target keep probability back into a time),

all vectorised over ``t`` given as a float, a numpy array or a tensor (the result has the same kind), so a widget
can plot a schedule from a grid directly. ``t`` outside [0, 1] raises ``ValueError``.

The registry (``get(name, **kw)``, ``available()``, ``register``) holds:

========== ========================================== ====================================================
name       α(t)                                       source
========== ========================================== ====================================================
loglinear  1 - (1 - ε) t, ε = 1e-3                    MDLM's default (σ(t) = -log(1 - (1 - ε) t)); LLaDA's
                                                      "linear" p_mask = (1 - ε) t + ε is the same process
linear     1 - t                                      BD3-LM's mask probability p = t (Arriola et al., 2025,
                                                      arXiv 2503.09573); loglinear with ε = 0
square     1 - t²                                     BD3-LM's "square"
sqrt       1 - √t                                     BD3-LM's "square_root"
cosine     ε + (1 - ε) cos(πt/2), ε = 1e-3            MDLM's cosine
geometric  exp(-σ_min^(1-t) σ_max^t), σ = 1e-4 .. 20  SEDD's geometric (Lou et al., 2024, arXiv 2310.16834)
========== ========================================== ====================================================

The continuous-time NELBO does not depend on the schedule between its end points (substitute a = α(t):
∫ w(t) (1-α)^k α^(L-k) dt = ∫ (1-a)^(k-1) a^(L-k) da); the schedule only changes the variance of the Monte
Carlo estimate and, for samplers, where the steps go.

Training-time helpers: :func:`sample_times` draws t with MDLM's low-discrepancy (antithetic) scheme, optionally
clipped to [low, high] (BD3-LM's "clipped" schedules sample the mask rate in [β, ω]; :func:`times_for_mask_rates`
converts such a range into times) or Beta-distributed (SDAR-VL's noise curriculum).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "Schedule",
    "LogLinear",
    "Polynomial",
    "Cosine",
    "Geometric",
    "get",
    "available",
    "register",
    "sample_times",
    "times_for_mask_rates",
    "check_unit_interval",
    "check_time_options",
]


def check_unit_interval(value: torch.Tensor, name: str = "t") -> None:
    """Raise ``ValueError`` unless every entry of ``value`` lies in [0, 1] (NaN fails too)."""
    if value.numel() and not bool(((value >= 0) & (value <= 1)).all()):
        bad = value[~((value >= 0) & (value <= 1))].flatten()[0].item()
        raise ValueError(f"{name} must lie in [0, 1], got {bad}")


def _vectorised(fn: Callable) -> Callable:
    """Accept a float, numpy array or tensor in [0, 1]; compute in float64; return the input's kind and dtype."""

    def wrapper(self, t):
        if isinstance(t, torch.Tensor):
            x, kind = t.to(torch.float64), "torch"
        elif isinstance(t, np.ndarray):
            x, kind = torch.from_numpy(np.asarray(t, dtype=np.float64)), "numpy"
        elif isinstance(t, (int, float)) and not isinstance(t, bool):
            x, kind = torch.tensor(float(t), dtype=torch.float64), "float"
        else:
            raise TypeError(f"t must be a float, numpy array or tensor, got {type(t).__name__}")
        check_unit_interval(x, "alpha" if fn.__name__ == "t_of_alpha" else "t")
        out = fn(self, x)
        if kind == "torch":
            return out.to(t.dtype if t.is_floating_point() else torch.get_default_dtype())
        if kind == "numpy":
            return out.numpy()
        return float(out)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


class Schedule:
    """Base class: subclasses define ``_alpha``, ``_alpha_prime`` and ``_t_of_alpha`` on float64 tensors."""

    name = "schedule"

    @_vectorised
    def alpha(self, t):
        """α(t), the probability that a token is still clean at time t."""
        return self._alpha(t)

    @_vectorised
    def alpha_prime(self, t):
        """dα/dt."""
        return self._alpha_prime(t)

    @_vectorised
    def weight(self, t):
        """The NELBO weight -α'(t) / (1 - α(t)) (infinite where α = 1)."""
        return self._weight(t)

    @_vectorised
    def t_of_alpha(self, alpha):
        """The time at which the keep probability equals ``alpha`` (clamped to [0, 1])."""
        return self._t_of_alpha(alpha).clamp(0.0, 1.0)

    def mask_rate(self, t):
        """1 - α(t), the probability that a token is noised at time t."""
        return 1 - self.alpha(t)

    def __call__(self, t):
        return self.alpha(t)

    def _weight(self, t: torch.Tensor) -> torch.Tensor:
        return -self._alpha_prime(t) / (1 - self._alpha(t))

    def _alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _t_of_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be a number in [0, 1), got {eps!r}")
    return float(eps)


class LogLinear(Schedule):
    """α(t) = 1 - (1 - ε) t, so σ(t) = -log(1 - (1 - ε) t) and w(t) = 1/t (MDLM's default, ε = 1e-3)."""

    name = "loglinear"

    def __init__(self, eps: float = 1e-3) -> None:
        self.eps = _check_eps(eps)

    def _alpha(self, t):
        return 1 - (1 - self.eps) * t

    def _alpha_prime(self, t):
        return torch.full_like(t, -(1 - self.eps))

    def _weight(self, t):
        return 1 / t

    def _t_of_alpha(self, alpha):
        return (1 - alpha) / (1 - self.eps)


class Polynomial(Schedule):
    """α(t) = 1 - (1 - ε) t^p: ``linear`` (p = 1), ``square`` (p = 2), ``sqrt`` (p = 1/2); w(t) = p / t."""

    def __init__(self, power: float = 1.0, eps: float = 0.0) -> None:
        if not isinstance(power, (int, float)) or isinstance(power, bool) or not power > 0:
            raise ValueError(f"power must be a positive number, got {power!r}")
        self.power, self.eps = float(power), _check_eps(eps)
        self.name = {1.0: "linear", 2.0: "square", 0.5: "sqrt"}.get(self.power, f"polynomial{self.power:g}")

    def _alpha(self, t):
        return 1 - (1 - self.eps) * t**self.power

    def _alpha_prime(self, t):
        return -(1 - self.eps) * self.power * t ** (self.power - 1)

    def _weight(self, t):
        return self.power / t

    def _t_of_alpha(self, alpha):
        return ((1 - alpha) / (1 - self.eps)) ** (1 / self.power)


class Cosine(Schedule):
    """α(t) = ε + (1 - ε) cos(πt/2); w(t) = (π/2) sin(πt/2) / (1 - cos(πt/2)) = (π/2) cot(πt/4) (MDLM's cosine)."""

    name = "cosine"

    def __init__(self, eps: float = 1e-3) -> None:
        self.eps = _check_eps(eps)

    def _alpha(self, t):
        return self.eps + (1 - self.eps) * torch.cos(math.pi * t / 2)

    def _alpha_prime(self, t):
        return -(1 - self.eps) * (math.pi / 2) * torch.sin(math.pi * t / 2)

    def _weight(self, t):
        return (math.pi / 2) / torch.tan(math.pi * t / 4)

    def _t_of_alpha(self, alpha):
        return (2 / math.pi) * torch.arccos(((alpha - self.eps) / (1 - self.eps)).clamp(-1.0, 1.0))


class Geometric(Schedule):
    """σ(t) = σ_min^(1-t) σ_max^t, α = exp(-σ); w(t) = σ'(t) / expm1(σ(t)) (SEDD; σ_min = 1e-4, σ_max = 20)."""

    name = "geometric"

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}"
            )
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def _sigma(self, t):
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def _alpha(self, t):
        return torch.exp(-self._sigma(t))

    def _alpha_prime(self, t):
        sigma = self._sigma(t)
        return -sigma * math.log(self.sigma_max / self.sigma_min) * torch.exp(-sigma)

    def _weight(self, t):
        sigma = self._sigma(t)
        return sigma * math.log(self.sigma_max / self.sigma_min) / torch.expm1(sigma)

    def _t_of_alpha(self, alpha):
        sigma = -torch.log(alpha)
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


_REGISTRY: dict[str, Callable[..., Schedule]] = {
    "loglinear": LogLinear,
    "linear": lambda **kw: Polynomial(1.0, **kw),
    "square": lambda **kw: Polynomial(2.0, **kw),
    "sqrt": lambda **kw: Polynomial(0.5, **kw),
    "cosine": Cosine,
    "geometric": Geometric,
}


def register(name: str, factory: Callable[..., Schedule]) -> None:
    """Add a schedule factory under ``name`` (``get(name, **kw)`` calls ``factory(**kw)``)."""
    if name in _REGISTRY:
        raise ValueError(f"schedule name {name!r} is already registered")
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Names accepted by :func:`get`."""
    return sorted(_REGISTRY)


def get(schedule: str | Schedule, **kwargs) -> Schedule:
    """A schedule by name (keyword arguments go to its constructor), or a :class:`Schedule` passed through."""
    if isinstance(schedule, Schedule):
        if kwargs:
            raise ValueError("keyword arguments apply to a schedule name, not to a Schedule instance")
        return schedule
    if schedule not in _REGISTRY:
        raise ValueError(f"unknown schedule {schedule!r}; available schedules: {', '.join(available())}")
    return _REGISTRY[schedule](**kwargs)


def times_for_mask_rates(schedule: str | Schedule, beta: float, omega: float) -> tuple[float, float]:
    """The time range [low, high] in which the mask rate 1 - α(t) lies in [β, ω] (BD3-LM's clipped schedules)."""
    if not 0.0 <= beta < omega <= 1.0:
        raise ValueError(f"need 0 <= beta < omega <= 1, got beta={beta!r}, omega={omega!r}")
    schedule = get(schedule)
    return schedule.t_of_alpha(1.0 - beta), schedule.t_of_alpha(1.0 - omega)


def check_time_options(low: float, high: float, eps: float, beta: tuple[float, float] | None = None) -> float:
    """Validate :func:`sample_times`' range options; returns the effective lower end max(low, eps)."""
    lo = max(float(low), _check_eps(eps))
    if not 0.0 <= low <= 1.0 or not lo < high <= 1.0:
        raise ValueError(
            f"need 0 <= low < high <= 1 with eps < high, got low={low!r}, high={high!r}, eps={eps!r}"
        )
    if beta is not None and not (len(beta) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in beta)):
        raise ValueError(f"beta must be None or two positive numbers (a, b), got {beta!r}")
    return lo


def sample_times(
    shape: int | tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    antithetic: bool = True,
    low: float = 0.0,
    high: float = 1.0,
    eps: float = 1e-3,
    beta: tuple[float, float] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Diffusion times for a batch, in [max(low, eps), high].

    ``antithetic`` (MDLM's low-discrepancy sampler): one u ~ U(0, 1), then t_i = (u + π(i)) / n for the n entries
    of ``shape``, so the batch covers [0, 1) evenly (BD3-LM stratifies the same way over batch × blocks: pass
    ``shape=(B, n_blocks)``). π is a random permutation: MDLM assigns the strata in row order, which is harmless
    for shuffled training batches but biases an evaluation that walks a sorted data set. Otherwise i.i.d. uniform. ``beta=(a, b)`` draws u ~ Beta(a, b) instead (i.i.d.;
    SDAR-VL's curriculum), seeded from ``generator``. The draw u is finally mapped affinely onto the range.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be a positive int or a tuple of them, got {shape!r}")
    lo = check_time_options(low, high, eps, beta)
    n, gen_device = math.prod(shape), generator.device if generator is not None else device
    if beta is not None:
        a, b = beta
        if generator is None:
            u = torch.distributions.Beta(float(a), float(b)).sample((n,))
        else:  # torch's Beta takes no generator: seed a forked global RNG from it instead
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                u = torch.distributions.Beta(float(a), float(b)).sample((n,))
    elif antithetic:
        u0 = torch.rand(1, generator=generator, device=gen_device)
        order = torch.randperm(
            n, generator=generator, device=u0.device
        )  # so row order never correlates with t
        u = (u0 + order) / n
    else:
        u = torch.rand(n, generator=generator, device=gen_device)
    return (lo + (high - lo) * u).to(device or u.device).view(shape)

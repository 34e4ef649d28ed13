"""Discrete diffusion language models: noise schedules, the masked and uniform-state processes, samplers, traces.

Time runs as in MDLM (Sahoo et al., 2024, arXiv 2406.07524): t = 0 is clean data, t = 1 pure noise, and α(t) is
the probability that a token is still clean. Papers that run the other way (FlexMDM) are converted at their boundary.

* :mod:`~minidiff.diffusion.schedules` -- α(t), α'(t), the loss weight, a registry, time sampling;
* :class:`MaskedDiffusion` -- the absorbing process (MDLM / LLaDA): ``corrupt``, the SUBS ``loss`` (a ``fit``
  loss function, nats per token, continuous or T-step), ``bound`` (NELBO with standard error);
* :class:`UniformDiffusion` -- the uniform-state process (UDLM / Duo) with its closed-form NELBO and posterior;
* :mod:`~minidiff.diffusion.sampling` -- the samplers, all ``(tokens, Trace)`` from one loop;
* :class:`MaskedOracle`, :class:`UniformOracle` -- exact denoisers of tiny enumerable distributions.
"""

from minidiff.diffusion import sampling, schedules
from minidiff.diffusion.base import DiffusionProcess, denoise, is_time_conditioned
from minidiff.diffusion.masked import MaskedDiffusion
from minidiff.diffusion.oracle import MaskedOracle, UniformOracle
from minidiff.diffusion.sampling import (
    SAMPLERS,
    Trace,
    sample_ancestral,
    sample_confidence,
    sample_first_hitting,
    sample_remdm,
    sample_semi_ar,
    sample_uniform,
)
from minidiff.diffusion.schedules import Schedule, sample_times
from minidiff.diffusion.uniform import UniformDiffusion

__all__ = [
    "schedules",
    "sampling",
    "Schedule",
    "sample_times",
    "DiffusionProcess",
    "MaskedDiffusion",
    "UniformDiffusion",
    "MaskedOracle",
    "UniformOracle",
    "denoise",
    "is_time_conditioned",
    "SAMPLERS",
    "Trace",
    "sample_ancestral",
    "sample_first_hitting",
    "sample_confidence",
    "sample_remdm",
    "sample_uniform",
    "sample_semi_ar",
]

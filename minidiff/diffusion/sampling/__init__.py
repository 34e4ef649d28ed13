"""Samplers for discrete diffusion: one shared loop (``loop.py``), one file per family, all returning
``(tokens, Trace)``.

========================  ==========================================================================
``sample_ancestral``      exact reverse posterior of masked diffusion with the "no change ⇒ reuse" cache (MDLM)
``sample_first_hitting``  one token per step at the exact first-hitting time (Zheng et al., 2024)
``sample_confidence``     confidence-ordered unmasking: max-prob / margin / entropy / random / left-to-right,
                          scheduled counts (LLaDA) or a threshold τ (Fast-dLLM)
``sample_remdm``          predictor–corrector remasking: cap / rescale / conf / loop (ReMDM)
``sample_uniform``        posterior sampling of uniform-state diffusion, with a forward–backward corrector
``sample_semi_ar``        any of the above block by block (LLaDA's semi-autoregressive decoding, BD3-LM style)
========================  ==========================================================================

``SAMPLERS`` maps these names (without ``sample_``) to the functions, for benchmarks and widgets.
"""

from minidiff.diffusion.sampling.ancestral import Ancestral, masked_step, sample_ancestral
from minidiff.diffusion.sampling.blocks import sample_semi_ar
from minidiff.diffusion.sampling.confidence import SCORES, Confidence, counts_per_step, sample_confidence
from minidiff.diffusion.sampling.first_hitting import FirstHitting, sample_first_hitting
from minidiff.diffusion.sampling.loop import (
    StepContext,
    Strategy,
    Update,
    block_windows,
    draw,
    make_canvas,
    run,
)
from minidiff.diffusion.sampling.remdm import REMASK_STRATEGIES, ReMDM, sample_remdm
from minidiff.diffusion.sampling.trace import Trace
from minidiff.diffusion.sampling.uniform import UniformAncestral, sample_uniform

SAMPLERS = {
    "ancestral": sample_ancestral,
    "first_hitting": sample_first_hitting,
    "confidence": sample_confidence,
    "remdm": sample_remdm,
    "uniform": sample_uniform,
    "semi_ar": sample_semi_ar,
}

__all__ = [
    "SAMPLERS",
    "Trace",
    "sample_ancestral",
    "sample_first_hitting",
    "sample_confidence",
    "sample_remdm",
    "sample_uniform",
    "sample_semi_ar",
    "Strategy",
    "StepContext",
    "Update",
    "run",
    "draw",
    "make_canvas",
    "block_windows",
    "masked_step",
    "counts_per_step",
    "Ancestral",
    "FirstHitting",
    "Confidence",
    "ReMDM",
    "UniformAncestral",
    "SCORES",
    "REMASK_STRATEGIES",
]

"""Fast paths: Triton kernels, each beside its plain-torch reference, behind one switch.

``MINIDIFF_KERNELS=auto|torch|triton`` (default ``auto``: Triton for CUDA tensors when triton is importable, the
torch reference elsewhere) picks the implementation; every kernel also takes ``backend=`` for one call. See
:mod:`minidiff.kernels._dispatch` for the rules, including Triton's CPU interpreter (``TRITON_INTERPRET=1``),
which is how the tests run the Triton code on machines without a GPU.

=====================================  =====================================================================
kernel                                 what it computes (torch reference → where)
=====================================  =====================================================================
:func:`newton_schulz`                  Muon's odd-polynomial orthogonalisation (→ ``minidiff.optim.linalg``);
                                       Triton computes only the upper triangle of the symmetric X Xᵀ and A²
:func:`adam_step_`                     AdamW on lists of tensors, one launch for all of them
:func:`lion_step_`                     Lion, idem
:func:`ademamix_step_`                 AdEMAMix, idem
:func:`quantize_blockwise`             block-wise dynamic 8-bit quantisation (→ ``minidiff.optim.quantize``)
:func:`dequantize_blockwise`           its inverse
:func:`adam8bit_step_`                 AdamW with 8-bit states: dequantise, update, requantise in one pass
:func:`lion8bit_step_`                 Lion with an 8-bit momentum, idem
:func:`pack_signs` / :func:`unpack_signs`  1-bit compression RMS(x)·sign(x), eight signs per byte
:func:`masked_diffusion_loss`          weighted CE at masked positions without a [B, L, V] float32 log-softmax
=====================================  =====================================================================

Importing this package never imports triton: the Triton code lives in ``_triton_*`` modules that a kernel
imports on its first Triton call. Triton: Tillet, Kung & Cox, 2019, "Triton: an intermediate language and
compiler for tiled neural network computations" (MAPL 2019).
"""

from minidiff.kernels._dispatch import BACKENDS, KernelFallbackWarning, backend, triton_available
from minidiff.kernels.diffusion_loss import masked_diffusion_loss, row_cross_entropy
from minidiff.kernels.elementwise import adam_step_, ademamix_step_, lion_step_
from minidiff.kernels.orthogonalize import newton_schulz
from minidiff.kernels.quantization import (
    adam8bit_step_,
    dequantize_blockwise,
    lion8bit_step_,
    quantize_blockwise,
)
from minidiff.kernels.signs import compress, pack_signs, unpack_signs

__all__ = [
    "BACKENDS",
    "KernelFallbackWarning",
    "backend",
    "triton_available",
    "newton_schulz",
    "adam_step_",
    "lion_step_",
    "ademamix_step_",
    "quantize_blockwise",
    "dequantize_blockwise",
    "adam8bit_step_",
    "lion8bit_step_",
    "pack_signs",
    "unpack_signs",
    "compress",
    "masked_diffusion_loss",
    "row_cross_entropy",
]

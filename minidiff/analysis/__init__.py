"""Analysis tools that measure models and optimizers from the outside (hooks and parameter snapshots).

``minidiff.analysis.spectra``: singular values of weights, gradients, momenta and updates, stable rank, soft and
hard spectral rank of representations, :class:`~minidiff.analysis.spectra.UpdateProbe` and
:class:`~minidiff.analysis.spectra.SpectrumRecorder`.
"""

from minidiff.analysis.spectra import (
    SpectrumRecorder,
    UpdateProbe,
    bucket_ranks,
    frequency_buckets,
    hard_rank,
    singular_values,
    soft_rank,
    spectral_ranks,
    stable_rank,
)

__all__ = [
    "SpectrumRecorder",
    "UpdateProbe",
    "bucket_ranks",
    "frequency_buckets",
    "hard_rank",
    "singular_values",
    "soft_rank",
    "spectral_ranks",
    "stable_rank",
]

"""Shared fixtures of the diffusion tests: a tiny correlated joint distribution, its oracles, a small model."""

import itertools

import numpy as np
import pytest
import torch

from minidiff.nn import Transformer

# A correlated joint over V = 3 symbols and L = 2 positions (ids 0..2; MASK is id 3).
JOINT = torch.tensor([[0.30, 0.05, 0.05], [0.02, 0.20, 0.08], [0.10, 0.05, 0.15]], dtype=torch.float64)
MASK = 3
CHI2_8DOF_999 = 26.12  # 0.999 quantile of chi-square with 8 degrees of freedom


@pytest.fixture
def joint() -> torch.Tensor:
    return JOINT.clone()


def chi2_against(samples: torch.Tensor, joint: torch.Tensor) -> float:
    """Pearson chi-square of [N, 2] samples of ids 0..2 against the 3x3 ``joint``."""
    n = samples.shape[0]
    counts = torch.bincount(samples[:, 0] * 3 + samples[:, 1], minlength=9).double()
    expected = n * joint.flatten()
    return float(((counts - expected) ** 2 / expected).sum())


class CountingModel:
    """Wraps a model and counts its calls (the NFE a trace must report)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0
        self.cfg = getattr(model, "cfg", None)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


@pytest.fixture
def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(vocab_size=12, d_model=32, n_layers=1, n_heads=2, max_len=64)


def gauss_legendre(a: float, b: float, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes t and weights w with ∫_a^b f(t) dt ≈ Σ w f(t); t = a + (b - a) u² removes √t-type end singularities."""
    u, w = np.polynomial.legendre.leggauss(n)
    u, w = (u + 1) / 2, w / 2
    t = a + (b - a) * u**2
    return torch.tensor(t), torch.tensor(w * 2 * (b - a) * u)


def all_mask_patterns(length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([False, True], repeat=length)))

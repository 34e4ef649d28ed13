"""Shared test set-up.

Triton kernels run through the interpreter on machines without CUDA; the variable must be set before any
``@triton.jit`` decorator runs, hence here, at import time of the test session.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded generator, so tests draw their randomness explicitly."""
    return torch.Generator().manual_seed(0)

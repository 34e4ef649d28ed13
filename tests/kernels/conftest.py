"""Kernel tests run the Triton code against its torch reference: compiled on a CUDA device, through the interpreter
(``TRITON_INTERPRET=1``, set by the top-level conftest) on CPU. Shapes are small and ``BLOCK``s large, because the
interpreter pays per program instance. The interpreter converts float32 to bfloat16 by truncation where torch and the
GPU round to nearest even, so bfloat16 outputs are compared to within one bfloat16 step. Tests marked ``triton`` are skipped, with the reason, when triton is not
installed; the torch references are tested either way."""

from __future__ import annotations

import importlib.util

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None


def pytest_configure(config):
    config.addinivalue_line("markers", "triton: runs a Triton kernel (compiled on CUDA, interpreted on CPU)")


def pytest_collection_modifyitems(config, items):
    if HAS_TRITON:
        return
    skip = pytest.mark.skip(
        reason="triton cannot be imported (pip install 'minidiff[triton]'); torch references only"
    )
    for item in items:
        if item.get_closest_marker("triton") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where kernels run: CUDA when present (compiled Triton), else CPU (Triton's interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

"""Global switches: seeding, device and dtype choice, and FAST mode.

FAST mode (``MINIDIFF_FAST=1`` in the environment, set by CI and by nbval) shrinks every chapter and benchmark
to a smoke-test size. Chapters never branch on it by hand; they write ``pick(full=2000, fast=50)`` wherever a
step count or a size depends on the mode, so the full-mode numbers stay readable in the source.

``FAST`` is the one module-level switch of the library; it is read once at import. Tests that need the other
mode pass ``fast=`` to :func:`pick` explicitly instead of mutating it.
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = ["FAST", "pick", "seed_everything", "default_device", "default_dtype", "resolve_device"]

T = TypeVar("T")


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"environment variable {name} must be one of 0/1/true/false/yes/no/on/off, got {value!r}"
    )


FAST: bool = _env_flag("MINIDIFF_FAST")


def pick(full: T, fast: T, *, fast_mode: bool | None = None) -> T:
    """Return ``fast`` in FAST mode and ``full`` otherwise.

    >>> pick(full=2000, fast=20, fast_mode=True)
    20
    """
    return fast if (FAST if fast_mode is None else fast_mode) else full


def seed_everything(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh ``torch.Generator`` seeded with ``seed``.

    With ``deterministic=True`` torch is also asked for deterministic algorithms, which chapters use where a
    printed number is checked by nbval.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- seeding the legacy global state is the point here
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available, else CPU (``MINIDIFF_DEVICE`` overrides, e.g. ``cpu`` on a GPU box)."""
    forced = os.environ.get("MINIDIFF_DEVICE")
    if forced:
        return resolve_device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None``/``"auto"``/a string into a ``torch.device``; unknown names raise ``ValueError``."""
    if device is None or device == "auto":
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err


def default_dtype(device: torch.device | None = None) -> torch.dtype:
    """bfloat16 on CUDA devices that support it, float32 elsewhere (CPU bf16 matmuls are slow)."""
    device = device or default_device()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32

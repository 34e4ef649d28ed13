"""The one switch that picks a kernel's implementation: the torch reference or the Triton kernel.

``MINIDIFF_KERNELS`` (read on every call, so tests and notebooks may change it) takes

- ``auto`` (default): Triton for CUDA tensors when ``import triton`` works, the torch reference otherwise;
- ``torch``: always the torch reference;
- ``triton``: always Triton. CUDA tensors run compiled kernels; CPU tensors run through Triton's interpreter,
  which needs ``TRITON_INTERPRET=1`` in the environment *before* the first kernel module is imported (Triton reads
  it when ``@triton.jit`` runs). Any other device, or CPU without the interpreter, raises ``RuntimeError``.

Every public kernel also takes ``backend=`` to override the variable for one call (tests, benchmarks).

**Unsupported inputs** never reach a Triton kernel: the kernel's ``_check`` lists the dtypes it handles, and a
tensor of another dtype (float64, say) or an unusable layout falls back to the torch reference, with a
:class:`KernelFallbackWarning` when Triton was explicitly asked for (Python's default filter shows it once per
call site). Inputs no implementation can handle (integer params, mismatched shapes or devices) raise
``ValueError`` before any dispatch.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Iterable

import torch

__all__ = ["BACKENDS", "KernelFallbackWarning", "backend", "requested_backend", "triton_available", "choose"]

BACKENDS = ("auto", "torch", "triton")


class KernelFallbackWarning(UserWarning):
    """A Triton kernel was requested but the inputs need the torch reference (the result is still correct)."""


def requested_backend(override: str | None = None) -> str:
    """``override`` or ``$MINIDIFF_KERNELS`` (default ``auto``), validated."""
    value = override if override is not None else os.environ.get("MINIDIFF_KERNELS", "auto")
    value = value.strip().lower() if isinstance(value, str) else value
    if value not in BACKENDS:
        source = "backend" if override is not None else "MINIDIFF_KERNELS"
        raise ValueError(f"{source} must be one of auto|torch|triton, got {value!r}")
    return value


@functools.cache
def triton_available() -> bool:
    """Whether ``import triton`` would work (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton kernels run through the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def backend(device: torch.device | str | None = None, override: str | None = None) -> str:
    """The implementation (``"torch"`` or ``"triton"``) that kernels use for tensors on ``device``.

    ``device`` defaults to CUDA when available, else CPU. Raises ``ValueError`` for an unknown setting and
    ``RuntimeError`` when Triton is forced but cannot run (not installed, or a CPU device without the interpreter).
    """
    requested = requested_backend(override)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if requested == "torch":
        return "torch"
    if requested == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError(
            "MINIDIFF_KERNELS=triton but triton cannot be imported; install it with pip install 'minidiff[triton]' "
            "or use MINIDIFF_KERNELS=auto|torch"
        )
    if device.type == "cuda":
        return "triton"
    if device.type == "cpu" and interpreting():
        return "triton"
    raise RuntimeError(
        f"MINIDIFF_KERNELS=triton cannot run on a {device.type} device: Triton kernels need CUDA tensors, or "
        "TRITON_INTERPRET=1 set before the first kernel is used to run them on CPU through the interpreter"
    )


def common_device(tensors: Iterable[torch.Tensor], what: str) -> torch.device:
    """The one device all ``tensors`` live on; ``ValueError`` naming ``what`` otherwise."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"{what}: all tensors must be on one device, got {sorted(map(str, devices))}")
    return devices.pop()


def choose(kernel: str, device: torch.device, override: str | None, problem: str | None) -> str:
    """Resolve the backend for one call; ``problem`` (or ``None``) says why the Triton path cannot take the inputs."""
    chosen = backend(device, override)
    if chosen == "triton" and problem is not None:
        if requested_backend(override) == "triton":
            warnings.warn(
                f"{kernel}: the Triton kernel {problem}; using the torch reference",
                KernelFallbackWarning,
                stacklevel=3,
            )
        return "torch"
    return chosen

"""The switch: MINIDIFF_KERNELS validation, auto/torch/triton resolution, lazy triton import, fallbacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from minidiff import kernels
from minidiff.kernels import _dispatch


def test_unknown_setting_raises_value_error_listing_the_choices(monkeypatch):
    monkeypatch.setenv("MINIDIFF_KERNELS", "cuda")
    with pytest.raises(ValueError, match=r"MINIDIFF_KERNELS must be one of auto\|torch\|triton, got 'cuda'"):
        kernels.backend("cpu")


def test_backend_argument_is_validated_like_the_variable():
    with pytest.raises(ValueError, match=r"backend must be one of auto\|torch\|triton"):
        kernels.pack_signs(torch.ones(3), backend="fast")


def test_auto_uses_torch_on_cpu(monkeypatch):
    monkeypatch.setenv("MINIDIFF_KERNELS", "auto")
    assert kernels.backend("cpu") == "torch"


def test_torch_setting_always_gives_torch(monkeypatch):
    monkeypatch.setenv("MINIDIFF_KERNELS", "torch")
    assert kernels.backend("cpu") == "torch"
    assert kernels.backend("cuda") == "torch"


def test_auto_uses_triton_on_cuda_when_importable(monkeypatch):
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    assert kernels.backend("cuda", "auto") == "triton"
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    assert kernels.backend("cuda", "auto") == "torch"


def test_forcing_triton_without_triton_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"triton cannot be imported.*minidiff\[triton\]"):
        kernels.backend("cpu", "triton")


def test_forcing_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernels.backend("cpu", "triton") == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        kernels.backend("cpu", "triton")
    with pytest.raises(RuntimeError, match="cannot run on a meta device"):
        kernels.backend("meta", "triton")


def test_mixed_devices_raise_value_error():
    with pytest.raises(ValueError, match="one device"):
        kernels.adam_step_(
            [torch.zeros(2)], [torch.zeros(2, device="meta")], [torch.zeros(2)], [torch.zeros(2)],
            lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, step=1,
        )  # fmt: skip


def test_importing_minidiff_and_kernels_never_imports_triton():
    code = "import sys, minidiff, minidiff.kernels, minidiff.optim.adamw8bit; print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

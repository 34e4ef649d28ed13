"""Comparison helpers shared by the kernel tests."""

from __future__ import annotations

import torch


def assert_same_up_to_bf16_rounding(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Exact, except that Triton's interpreter truncates float32 → bfloat16 where torch (and the GPU) round to
    nearest even: on CPU, bfloat16 results may differ by one bfloat16 step."""
    if actual.dtype == torch.bfloat16 and actual.device.type == "cpu":
        torch.testing.assert_close(actual.float(), expected.float(), rtol=2**-7, atol=0)
    else:
        assert torch.equal(actual, expected)

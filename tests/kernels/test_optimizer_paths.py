"""The 8-bit optimizers run their update through the kernels: the Triton path gives the torch path's trajectory."""

from __future__ import annotations

import pytest
import torch

from minidiff.optim import create


def trajectory(name: str, backend: str, device, monkeypatch, **hparams):
    monkeypatch.setenv("MINIDIFF_KERNELS", backend)
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.randn(70, 80, generator=gen).to(device).requires_grad_(),
        torch.randn(30, generator=gen).to(device).requires_grad_(),
    ]
    opt = create(name, params, block_size=256, **hparams)  # the 70×80 weight is 8-bit, the bias 32-bit
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(device)
        opt.step()
    return params, opt


@pytest.mark.triton
@pytest.mark.parametrize("name, hparams", [("adamw8bit", dict(lr=1e-2)), ("lion8bit", dict(lr=1e-3))])
def test_triton_and_torch_paths_agree(name, hparams, device, monkeypatch):
    ref, opt_ref = trajectory(name, "torch", device, monkeypatch, **hparams)
    ours, opt = trajectory(name, "triton", device, monkeypatch, **hparams)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert opt.state[ours[0]]["state1"].dtype == torch.uint8 and "exp_avg" in opt.state[ours[1]]

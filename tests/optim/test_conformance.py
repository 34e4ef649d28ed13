"""Conformance: every optimizer in ``minidiff.optim.available()`` behaves like a torch optimizer should.

Parametrized over the registry, so an optimizer added later is checked without editing this file. What an
optimizer module may declare (as attributes of its registered class or factory):

- ``param_kind``: ``"any"`` (default) or ``"matrix"``; matrix optimizers get 2-D parameters only, and must
  reject 1-D and 3-D ones with ``ValueError``.
- ``test_hparams``: hyperparameters used here in place of ``lr=1e-2`` (e.g. a smaller lr for Lion).
- ``nonfinite_policy``: ``"skip"`` (minidiff's policy: the parameter and its state stay untouched and
  ``state["nonfinite_skips"]`` counts the step) or ``"propagate"`` (default; torch's optimizers).

Tensors are tiny and runs are a few steps long, so the whole suite takes seconds.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from minidiff.optim import available, create, registry
from minidiff.optim._common import MinidiffOptimizer

NAMES = available()


# --------------------------------------------------------------------------- helpers
def entry(name: str):
    return registry.get(name)


def kind(name: str) -> str:
    return getattr(entry(name), "param_kind", "any")


def hparams(name: str, **overrides) -> dict:
    return {"lr": 1e-2, **getattr(entry(name), "test_hparams", {}), **overrides}


def is_ours(name: str) -> bool:
    return inspect.isclass(entry(name)) and issubclass(entry(name), MinidiffOptimizer)


def make_params(name: str, gen: torch.Generator, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """A 2-D weight and a second tensor: 1-D for ``"any"`` optimizers, 2-D for matrix optimizers."""
    second = (4, 6) if kind(name) == "matrix" else (6,)
    return [
        torch.randn(6, 5, generator=gen).to(dtype).requires_grad_(),
        torch.randn(*second, generator=gen).to(dtype).requires_grad_(),
    ]


def quadratic_targets(params: list[torch.Tensor], gen: torch.Generator):
    """f(θ) = Σ ½ h ⊙ (θ − θ*)², a diagonal quadratic with curvatures h in [0.5, 2]."""
    curvatures = [0.5 + 1.5 * torch.rand(p.shape, generator=gen) for p in params]
    optima = [torch.randn(p.shape, generator=gen) for p in params]
    return curvatures, optima


def quadratic_loss(params, curvatures, optima) -> torch.Tensor:
    return sum((0.5 * h * (p.float() - t) ** 2).sum() for p, h, t in zip(params, curvatures, optima))


def closure_for(opt, loss_fn):
    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


def run_quadratic(opt, params, curvatures, optima, steps: int) -> float:
    closure = closure_for(opt, lambda: quadratic_loss(params, curvatures, optima))
    for _ in range(steps):
        opt.step(closure)
    with torch.no_grad():
        return float(quadratic_loss(params, curvatures, optima))


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


# --------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_quadratic(name, gen):
    params = make_params(name, gen)
    curvatures, optima = quadratic_targets(params, gen)
    with torch.no_grad():
        initial = float(quadratic_loss(params, curvatures, optima))
    final = run_quadratic(create(name, params, **hparams(name)), params, curvatures, optima, steps=30)
    assert final < initial


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_tiny_mlp(name, gen):
    x, y = torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen)
    w1 = (0.5 * torch.randn(16, 4, generator=gen)).requires_grad_()
    w2 = (0.25 * torch.randn(1, 16, generator=gen)).requires_grad_()
    params = [w1, w2] if kind(name) == "matrix" else [w1, w2, torch.zeros(16, requires_grad=True)]
    bias = params[2] if len(params) == 3 else 0.0

    def loss_fn():
        return torch.nn.functional.mse_loss(torch.tanh(x @ w1.T + bias) @ w2.T, y)

    opt = create(name, params, **hparams(name))
    closure = closure_for(opt, loss_fn)
    initial = float(closure().detach())
    for _ in range(40):
        opt.step(closure)
    assert float(loss_fn().detach()) < initial


# --------------------------------------------------------------------------- torch optimizer contract
@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_closure_loss(name, gen):
    params = make_params(name, gen)
    opt = create(name, params, **hparams(name))
    sentinel = torch.tensor(3.25)

    def closure():
        set_grads(params, [torch.ones_like(p) for p in params])
        return sentinel

    assert opt.step(closure) is sentinel
    assert opt.step() is None


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_then_continuing_gives_bit_identical_params(name, gen):
    params = make_params(name, gen)
    curvatures, optima = quadratic_targets(params, gen)
    opt = create(name, params, **hparams(name))
    run_quadratic(opt, params, curvatures, optima, steps=3)
    saved_state = copy.deepcopy(opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    run_quadratic(opt, params, curvatures, optima, steps=4)

    resumed = [p.clone().requires_grad_() for p in saved_params]
    opt2 = create(name, resumed, **hparams(name))
    opt2.load_state_dict(saved_state)
    run_quadratic(opt2, resumed, curvatures, optima, steps=4)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_lr_scheduler_changes_the_step(name, gen):
    moved = {}
    for factor in (0.0, 1.0):
        params = make_params(name, gen)
        start = [p.detach().clone() for p in params]
        opt = create(name, params, **hparams(name))
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda _step, f=factor: f)
        for _ in range(2):
            set_grads(params, [torch.randn(p.shape, generator=gen) for p in params])
            opt.step()
            scheduler.step()
        moved[factor] = max(float((p.detach() - s).abs().max()) for p, s in zip(params, start))
    assert moved[0.0] == 0.0 and moved[1.0] > 0.0


@pytest.mark.parametrize("name", NAMES)
def test_two_param_groups_use_their_own_lr(name, gen):
    frozen, trained = make_params(name, gen)
    start_frozen, start_trained = frozen.detach().clone(), trained.detach().clone()
    base = hparams(name)
    opt = create(name, [{"params": [frozen], "lr": 0.0}, {"params": [trained]}], **base)
    assert [g["lr"] for g in opt.param_groups] == [0.0, base["lr"]]
    for _ in range(2):
        set_grads(
            [frozen, trained],
            [torch.randn(frozen.shape, generator=gen), torch.randn(trained.shape, generator=gen)],
        )
        opt.step()
    assert torch.equal(frozen.detach(), start_frozen)
    assert not torch.equal(trained.detach(), start_trained)


@pytest.mark.parametrize("name", NAMES)
def test_none_grads_are_skipped(name, gen):
    with_grad, without = make_params(name, gen)
    start = without.detach().clone()
    opt = create(name, [with_grad, without], **hparams(name))
    for _ in range(2):
        set_grads([with_grad, without], [torch.randn(with_grad.shape, generator=gen), None])
        opt.step()
    assert torch.equal(without.detach(), start)
    assert without not in opt.state or not opt.state[without]


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_run_and_stay_bfloat16(name, gen):
    params = make_params(name, gen, dtype=torch.bfloat16)
    start = [p.detach().clone() for p in params]
    opt = create(name, params, **hparams(name, lr=0.05))
    for _ in range(3):
        set_grads(params, [torch.randn(p.shape, generator=gen).bfloat16() for p in params])
        opt.step()
    for p in params:
        assert p.dtype == torch.bfloat16 and torch.isfinite(p).all()
    assert any(not torch.equal(p.detach(), s) for p, s in zip(params, start))
    if is_ours(name):  # minidiff keeps optimizer state in fp32 for low-precision params
        for state in opt.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    assert value.dtype == torch.float32


@pytest.mark.parametrize("name", [n for n in NAMES if is_ours(n)])
def test_bfloat16_state_dict_round_trip_keeps_fp32_state(name, gen):
    params = make_params(name, gen, dtype=torch.bfloat16)
    opt = create(name, params, **hparams(name))
    set_grads(params, [torch.randn(p.shape, generator=gen).bfloat16() for p in params])
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    opt2 = create(name, [p.detach().clone().requires_grad_() for p in params], **hparams(name))
    opt2.load_state_dict(saved)
    for state, state2 in zip(opt.state.values(), opt2.state.values()):
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                assert state2[key].dtype == value.dtype and torch.equal(state2[key], value)


# --------------------------------------------------------------------------- rejected inputs
BAD_VALUES = {
    "lr": (-1e-3, r"lr|learning rate"),
    "eps": (-1e-8, r"eps"),
    "weight_decay": (-0.1, r"weight_decay|weight decay"),
}


@pytest.mark.parametrize("argument", ["lr", "betas", "eps", "weight_decay"])
@pytest.mark.parametrize("name", NAMES)
def test_invalid_hyperparameter_raises_value_error_naming_it(name, argument, gen):
    signature = inspect.signature(entry(name))
    if argument not in signature.parameters:
        pytest.skip(f"{name} has no {argument} argument")
    if argument == "betas":
        default = signature.parameters["betas"].default
        value, pattern = (1.5, *default[1:]), r"beta"
    else:
        value, pattern = BAD_VALUES[argument]
    with pytest.raises(ValueError, match=pattern):
        create(name, make_params(name, gen), **hparams(name, **{argument: value}))


@pytest.mark.parametrize("name", NAMES)
def test_sparse_gradients_are_rejected(name, gen):
    params = make_params(name, gen)
    opt = create(name, params, **hparams(name))
    params[0].grad = torch.randn(params[0].shape, generator=gen).to_sparse()
    with pytest.raises((RuntimeError, ValueError), match="(?i)sparse"):
        opt.step()


@pytest.mark.parametrize("name", [n for n in NAMES if is_ours(n)])
def test_complex_params_are_rejected_with_a_clear_message(name):
    param = torch.zeros(4, 4, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(ValueError, match="complex"):
        create(name, [param], **hparams(name))


@pytest.mark.parametrize("name", NAMES)
def test_param_kind_is_declared_correctly(name):
    assert kind(name) in ("any", "matrix")


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4)])
@pytest.mark.parametrize("name", [n for n in NAMES if kind(n) == "matrix"])
def test_matrix_optimizer_rejects_non_matrix_params(name, shape, gen):
    param = torch.randn(*shape, generator=gen).requires_grad_()
    with pytest.raises(ValueError):
        opt = create(name, [param], **hparams(name))
        param.grad = torch.ones_like(param)
        opt.step()


# --------------------------------------------------------------------------- NaN / Inf gradients
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_gradient_follows_the_declared_policy(name, bad, gen):
    """ "skip": the poisoned parameter is left as if it had no gradient; "propagate": it becomes non-finite."""
    poisoned, healthy = make_params(name, gen)
    alone = healthy.detach().clone().requires_grad_()  # the same parameter in a run without the poisoned one
    start = poisoned.detach().clone()
    opt = create(name, [poisoned, healthy], **hparams(name))
    reference = create(name, [torch.zeros_like(poisoned, requires_grad=True), alone], **hparams(name))
    grad = torch.randn(poisoned.shape, generator=gen)
    grad[0, 0] = bad
    healthy_grads = [torch.randn(healthy.shape, generator=gen) for _ in range(2)]
    set_grads([poisoned, healthy], [grad, healthy_grads[0]])
    opt.step()
    set_grads([alone], [healthy_grads[0]])
    reference.step()
    policy = getattr(entry(name), "nonfinite_policy", "propagate")
    if policy == "skip":
        assert torch.equal(poisoned.detach(), start)
        assert opt.state[poisoned]["nonfinite_skips"] == 1 and opt.state[poisoned]["step"] == 0
        assert torch.equal(healthy.detach(), alone.detach())
        set_grads([poisoned, healthy], [torch.randn(poisoned.shape, generator=gen), healthy_grads[1]])
        for _ in range(2):  # finite gradients afterwards step normally (some optimizers only start at step 2)
            opt.step()
        assert torch.isfinite(poisoned).all() and not torch.equal(poisoned.detach(), start)
    else:
        assert policy == "propagate"
        assert not torch.isfinite(poisoned).all()

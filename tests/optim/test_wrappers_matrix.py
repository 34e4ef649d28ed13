"""Specifications of the MD-decoupling wrapper (O18) and the symmetry-compatible updates (O19)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from minidiff.nn.transformer import Transformer
from minidiff.optim import create
from minidiff.optim.wrappers.md import MagnitudeDirection, md_gradients
from minidiff.optim.wrappers.symmetry import SymmetryUpdates, symmetric_update, symmetry_compatible

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def permutation(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.eye(n, dtype=F64)[torch.randperm(n, generator=gen)]


def orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))[0]


# --------------------------------------------------------------------------- MD decoupling
def md_over(base_name: str, W: torch.Tensor, **kw) -> MagnitudeDirection:
    extra = {"ns_dtype": F64} if base_name == "muon" else {}
    return MagnitudeDirection(create(base_name, [W], lr=1e-2, weight_decay=0.0, **extra), **kw)


@pytest.mark.parametrize("sphere", ["row", "col", "flat"])
@pytest.mark.parametrize("base", ["muon", "adamw"])
def test_md_direction_stays_exactly_on_its_sphere_after_every_step(sphere, base, gen):
    W = torch.randn(12, 8, generator=gen, dtype=F64, requires_grad=True)
    md = md_over(base, W, sphere=sphere, gain_lr=1e-2)
    for _ in range(4):
        W.grad = torch.randn(12, 8, generator=gen, dtype=F64)
        md.step()
        W_hat = md.direction(W)
        if sphere == "row":
            assert (W_hat.norm(dim=1) - 1).abs().max() < 1e-12
        elif sphere == "col":
            assert (W_hat.norm(dim=0) - 1).abs().max() < 1e-12
        else:
            assert abs(float(W_hat.norm()) - 12**0.5) < 1e-12


@pytest.mark.parametrize("phi", ["identity", "softplus"])
def test_md_gradients_equal_autograd_of_the_explicit_factorised_module(phi, gen):
    m, n = 7, 5
    r = (torch.rand(m, generator=gen, dtype=F64) + 0.5).requires_grad_()
    c = (torch.rand(n, generator=gen, dtype=F64) + 0.5).requires_grad_()
    W_hat = torch.randn(m, n, generator=gen, dtype=F64).requires_grad_()
    x, y = torch.randn(9, n, generator=gen, dtype=F64), torch.randn(9, m, generator=gen, dtype=F64)
    act = (lambda t: t) if phi == "identity" else F.softplus

    W = act(r)[:, None] * W_hat * act(c)[None, :]  # the factorised module
    loss = ((x @ W.T - y) ** 2).sum() + (W**3).sum()
    grad_r, grad_c, grad_hat = torch.autograd.grad(loss, [r, c, W_hat], retain_graph=True)
    (G,) = torch.autograd.grad(loss, [W])  # what the model hands the optimizer: ∂L/∂W of the fused weight

    ours = md_gradients(G, W_hat.detach(), r.detach(), c.detach(), phi)
    for got, want in zip(ours, (grad_r, grad_c, grad_hat)):
        assert (got - want).abs().max() < 1e-8


def test_md_wrapping_keeps_the_weight_the_model_sees(gen):
    start = torch.randn(10, 6, generator=gen, dtype=F64)
    W = start.clone().requires_grad_()
    md = md_over("adamw", W, sphere="row", gains="row_col")
    assert torch.allclose(W.detach(), start, atol=1e-14)
    row, col = md.gains(W)
    assert torch.allclose(row, start.norm(dim=1), atol=1e-14) and torch.equal(col, torch.ones(6, dtype=F64))


def test_md_state_dict_round_trip_continues_bit_identically(gen):
    W = torch.randn(10, 6, generator=gen, dtype=F64, requires_grad=True)
    md = md_over("muon", W, gain_lr=1e-2)
    grads = [torch.randn(10, 6, generator=gen, dtype=F64) for _ in range(5)]
    for g in grads[:2]:
        W.grad = g.clone()
        md.step()
    saved, W_saved = copy.deepcopy(md.state_dict()), W.detach().clone()
    W2 = W_saved.clone().requires_grad_()
    md2 = md_over("muon", W2, gain_lr=1e-2)
    md2.load_state_dict(saved)
    W2.data.copy_(W_saved)
    for g in grads[2:]:
        W.grad, W2.grad = g.clone(), g.clone()
        md.step()
        md2.step()
    assert torch.equal(W, W2)


def test_md_gain_learning_rate_follows_the_schedule(gen):
    W = torch.randn(10, 6, generator=gen, dtype=F64, requires_grad=True)
    md = md_over("adamw", W, gain_lr=1e-1)
    torch.optim.lr_scheduler.LambdaLR(md, lambda step: 0.0)
    row_before = md.gains(W)[0].clone()
    W.grad = torch.randn(10, 6, generator=gen, dtype=F64)
    md.step()
    assert torch.equal(md.gains(W)[0], row_before)


def test_md_rejects_bad_arguments_by_name(gen):
    W = torch.randn(4, 3, requires_grad=True)
    for kw, name in [
        ({"sphere": "cube"}, "sphere"),
        ({"gains": "all"}, "gains"),
        ({"gain_lr": -1.0}, "gain_lr"),
    ]:
        with pytest.raises(ValueError, match=name):
            MagnitudeDirection(torch.optim.SGD([W], lr=0.1), **kw)


# --------------------------------------------------------------------------- symmetry-compatible maps
def test_row_norm_update_is_row_permutation_and_right_orthogonal_equivariant(gen):
    M = torch.randn(9, 5, generator=gen, dtype=F64)
    P, O = permutation(9, gen), orthogonal(5, gen)
    U = symmetric_update(M, "row")
    assert torch.allclose(symmetric_update(P @ M, "row"), P @ U, atol=1e-12)
    assert torch.allclose(symmetric_update(M @ O, "row"), U @ O, atol=1e-12)
    assert torch.allclose(U.norm(dim=1), torch.ones(9, dtype=F64), atol=1e-7)


def test_centered_row_update_has_zero_column_sums_and_the_same_equivariances(gen):
    M = torch.randn(9, 5, generator=gen, dtype=F64)
    P, O = permutation(9, gen), orthogonal(5, gen)
    U = symmetric_update(M, "centered_row")
    assert U.sum(dim=0).abs().max() < 1e-12
    assert torch.allclose(symmetric_update(P @ M, "centered_row"), P @ U, atol=1e-12)
    assert torch.allclose(symmetric_update(M @ O, "centered_row"), U @ O, atol=1e-12)
    shifted = M + torch.randn(
        1, 5, generator=gen, dtype=F64
    )  # a shared logit shift leaves the update unchanged
    assert torch.allclose(symmetric_update(shifted, "centered_row"), U, atol=1e-12)


@pytest.mark.parametrize(("rule", "shape"), [("right", (12, 5)), ("left", (5, 12)), ("hybrid", (12, 5))])
def test_one_sided_spectral_updates_are_equivariant(rule, shape, gen):
    M = torch.randn(*shape, generator=gen, dtype=F64)
    left = permutation(shape[0], gen) if rule == "hybrid" else orthogonal(shape[0], gen)
    right = orthogonal(shape[1], gen)
    U = symmetric_update(M, rule)
    assert torch.allclose(
        symmetric_update(left @ M @ right, rule), left @ U @ right, atol=1e-9 * U.abs().max()
    )


def test_right_spectral_update_is_the_nuclear_scaled_polar_factor(gen):
    M = torch.randn(12, 5, generator=gen, dtype=F64)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    expected = S.sum() * (U @ Vh)
    assert torch.allclose(symmetric_update(M, "right", eps=0.0), expected, atol=1e-10)
    assert torch.allclose(symmetric_update(M, "right", alpha=0.0, eps=0.0), U @ Vh, atol=1e-12)


def test_gate_up_pairs_are_normalised_together_and_permute_with_their_neuron(gen):
    d_ff, d = 6, 4
    M = torch.randn(2 * d_ff, d, generator=gen, dtype=F64)
    U = symmetric_update(M, "row", orientation="gate_up_pair")
    pair_norms = (U[:d_ff].square().sum(1) + U[d_ff:].square().sum(1)).sqrt()
    assert torch.allclose(pair_norms, torch.ones(d_ff, dtype=F64), atol=1e-7)
    perm = torch.randperm(d_ff, generator=gen)
    both = torch.cat(
        [perm, perm + d_ff]
    )  # a SwiGLU neuron permutation moves gate row i and up row i together
    assert torch.allclose(symmetric_update(M[both], "row", orientation="gate_up_pair"), U[both], atol=1e-12)


def test_column_aware_down_projection_normalises_neuron_columns(gen):
    M = torch.randn(4, 6, generator=gen, dtype=F64)  # [d, d_ff]
    U = symmetric_update(M, "row", orientation="col")
    perm = torch.randperm(6, generator=gen)
    assert torch.allclose(U.norm(dim=0), torch.ones(6, dtype=F64), atol=1e-7)
    assert torch.allclose(symmetric_update(M[:, perm], "row", orientation="col"), U[:, perm], atol=1e-12)


def test_symmetry_updates_optimizer_applies_its_rule_to_the_momentum(gen):
    W = torch.zeros(6, 4, dtype=F64, requires_grad=True)
    G = torch.randn(6, 4, generator=gen, dtype=F64)
    W.grad = G
    SymmetryUpdates([W], lr=0.1, rule="row", beta=0.9).step()
    assert torch.allclose(W.detach(), -0.1 * symmetric_update(0.1 * G, "row"), atol=1e-12)


def test_symmetry_compatible_routes_every_transformer_parameter_once_and_trains():
    torch.manual_seed(0)
    model = Transformer(vocab_size=16, d_model=16, n_layers=1, n_heads=2, max_len=8)
    opt = symmetry_compatible(model, routes={"mlp_gate_up": "row", "mlp_down": "row"}, lr=0.01)
    routed = [p for g in opt.param_groups for p in g["params"]]
    assert len(routed) == len({id(p) for p in routed}) == len(list(model.parameters()))
    rules = {g["role"]: (g["rule"], g["orientation"]) for g in opt.children["symmetry"].param_groups}
    assert rules == {
        "embedding": ("row", "row"),
        "lm_head": ("centered_row", "row"),
        "mlp_gate_up": ("row", "gate_up_pair"),
        "mlp_down": ("row", "col"),
    }
    assert [g["role"] for g in opt.children["matrix"].param_groups] == ["attention"]
    x = torch.randint(0, 16, (8, 8), generator=torch.Generator().manual_seed(0))

    def loss():
        return F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())

    start = loss().item()
    for _ in range(10):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < start
    opt2 = symmetry_compatible(model, routes={"mlp_gate_up": "row", "mlp_down": "row"}, lr=0.01)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    p = model.embed.weight
    assert torch.equal(opt2.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])


def test_symmetry_routes_and_rules_are_validated_by_name():
    model = Transformer(vocab_size=16, d_model=16, n_layers=1, n_heads=2, max_len=8)
    with pytest.raises(ValueError, match="routes"):
        symmetry_compatible(model, routes={"embedding": "diagonal"})
    with pytest.raises(ValueError, match="rule"):
        symmetric_update(torch.randn(3, 2), "diagonal")
    with pytest.raises(ValueError, match="needs 2-D"):
        symmetry_compatible(model, routes={"norm": "row"})

"""Specifications of the matrix optimizers: update rules, peer cross-checks and pinned convention differences.

Peers: torch.optim.Muon, pytorch_optimizer.{NorMuon, Conda, SOAP, Shampoo}. Where a peer follows another
convention the difference is pinned by a test that says why.
"""

from __future__ import annotations

import functools
import io
import math

import pytest
import torch

from minidiff.optim import create
from minidiff.optim.dion import dion_power_step
from minidiff.optim.linalg import newton_schulz, nuclear_norm, polar_svd
from minidiff.optim.sinkgd import sinkhorn_normalize
from minidiff.optim.swan import grad_norm

F64 = torch.float64
MATRIX_OPTIMIZERS = ["muon", "normuon", "polargrad", "conda", "shampoo", "soap", "dion", "sinkgd", "swan"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and a busy 2-core machine makes thread hand-offs slow."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def twin_run(ours, peer, shape, steps, gen, dtype=torch.float32):
    """Run two optimizer factories on copies of one weight with the same gradients; return (ours, peer, start)."""
    W0 = torch.randn(*shape, generator=gen, dtype=dtype)
    a, b = W0.clone().requires_grad_(), W0.clone().requires_grad_()
    opt_a, opt_b = ours([a]), peer([b])
    for _ in range(steps):
        G = torch.randn(*shape, generator=gen, dtype=dtype)
        a.grad, b.grad = G.clone(), G.clone()  # peers may modify grads in place
        opt_a.step()
        opt_b.step()
    return a.detach(), b.detach(), W0


def rel(a, b, start):
    return float((a - b).norm() / (b - start).norm())


# --------------------------------------------------------------------------- Muon
def test_muon_is_bit_identical_to_torch_optim_muon_in_bf16(gen):
    ours, peer, _ = twin_run(
        lambda p: create("muon", p, lr=0.02),
        lambda p: torch.optim.Muon(p, lr=0.02, weight_decay=0.0),
        (64, 32),
        5,
        gen,
    )
    assert torch.equal(ours, peer)


def test_muon_matches_torch_optim_muon_exactly_with_float64_newton_schulz(gen, monkeypatch):
    muon_module = pytest.importorskip("torch.optim._muon")
    if not hasattr(muon_module, "_zeropower_via_newtonschulz"):
        pytest.skip("torch.optim._muon changed its internals")

    def zeropower_float64(
        grad, ns_coefficients, ns_steps, eps
    ):  # torch's iteration with .bfloat16() → .double()
        a, b, c = ns_coefficients
        X = grad.double()
        if grad.size(0) > grad.size(1):
            X = X.T
        X = X / X.norm().clamp(min=eps)
        for _ in range(ns_steps):
            A = X @ X.T
            X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)
        return X.T if grad.size(0) > grad.size(1) else X

    monkeypatch.setattr(muon_module, "_zeropower_via_newtonschulz", zeropower_float64)
    for shape in [(64, 32), (32, 64)]:
        ours, peer, _ = twin_run(
            lambda p: create("muon", p, lr=0.02, weight_decay=0.1, ns_dtype=F64, eps=0.0),
            lambda p: torch.optim.Muon(p, lr=0.02, weight_decay=0.1, eps=1e-300),
            shape,
            5,
            gen,
            dtype=F64,
        )
        assert (ours - peer).abs().max() < 1e-13


def test_muon_first_step_is_scaled_newton_schulz_of_the_gradient(gen):
    for scale, factor in [("kj", math.sqrt(64 / 32)), ("moonlight", 0.2 * math.sqrt(64)), ("none", 1.0)]:
        W = torch.zeros(64, 32, dtype=F64, requires_grad=True)
        G = torch.randn(64, 32, generator=gen, dtype=F64)
        W.grad = G
        create("muon", [W], lr=0.1, scale=scale, nesterov=False, ns_dtype=F64).step()
        # M = (1 − β)G and NS normalises by the Frobenius norm, so the scale of G drops out
        assert torch.allclose(W.detach(), -0.1 * factor * newton_schulz(G, dtype=F64), atol=1e-6)


def test_muon_does_not_modify_the_gradient(gen):
    W = torch.randn(8, 4, generator=gen, requires_grad=True)
    G = torch.randn(8, 4, generator=gen)
    W.grad = G.clone()
    create("muon", [W]).step()
    assert torch.equal(W.grad, G)


# --------------------------------------------------------------------------- NorMuon
@pytest.mark.parametrize("update_scale", ["match_rms", "preserve_norm"])
def test_normuon_matches_pytorch_optimizer_in_float64(update_scale, gen, monkeypatch):
    po_normuon = pytest.importorskip("pytorch_optimizer.optimizer.muon.normuon")
    from pytorch_optimizer import NorMuon as PeerNorMuon

    ns = po_normuon.zero_power_via_newton_schulz_5
    monkeypatch.setattr(
        po_normuon, "zero_power_via_newton_schulz_5", functools.partial(ns, dtype=F64, eps=0.0)
    )
    ours, peer, _ = twin_run(
        lambda p: create(
            "normuon",
            p,
            lr=0.02,
            nesterov=True,
            weight_decay=0.1,
            update_scale=update_scale,
            ns_dtype=F64,
            ns_eps=0.0,
        ),
        lambda p: PeerNorMuon(
            [{"params": p, "use_muon": True}],
            lr=0.02,
            weight_decay=0.1,
            update_scale=update_scale,
            foreach=False,
        ),
        (64, 32),
        5,
        gen,
        dtype=F64,
    )
    assert (ours - peer).abs().max() < 1e-12


@pytest.mark.parametrize("update_scale", ["match_rms", "preserve_norm"])
def test_normuon_is_bit_identical_to_pytorch_optimizer_in_bf16(update_scale, gen):
    from pytorch_optimizer import NorMuon as PeerNorMuon

    ours, peer, _ = twin_run(
        lambda p: create("normuon", p, lr=0.02, nesterov=True, update_scale=update_scale),
        lambda p: PeerNorMuon(
            [{"params": p, "use_muon": True}], lr=0.02, update_scale=update_scale, foreach=False
        ),
        (64, 32),
        5,
        gen,
    )
    assert torch.equal(ours, peer)


def test_normuon_with_beta2_zero_gives_rows_of_equal_norm(gen):
    W = torch.zeros(48, 32, requires_grad=True)
    W.grad = torch.randn(48, 32, generator=gen)
    create("normuon", [W], lr=1.0, beta2=0.0).step()
    norms = W.detach().norm(dim=1)
    assert float(norms.max() / norms.min()) == pytest.approx(1.0, abs=1e-3)
    assert float(W.detach().square().mean().sqrt()) == pytest.approx(0.2, rel=1e-4)  # match_rms: RMS 0.2·lr


# --------------------------------------------------------------------------- PolarGrad
def test_polargrad_nuclear_norm_is_the_inner_product_with_its_polar_factor(gen):
    M = torch.randn(40, 24, generator=gen, dtype=F64)
    from minidiff.optim.polargrad import PolarGrad

    U, nuclear = PolarGrad._polar(M, {"polar_method": "qdwh", "polar_steps": 6})
    assert float(nuclear) == pytest.approx(float(torch.linalg.svdvals(M).sum()), rel=1e-10)


@pytest.mark.parametrize("order", ["momentum_first", "polar_first"])
def test_polargrad_one_step_is_nuclear_norm_times_polar_factor(order, gen):
    G = torch.randn(40, 24, generator=gen, dtype=F64)
    W = torch.zeros(40, 24, dtype=F64, requires_grad=True)
    W.grad = G
    create("polargrad", [W], lr=1.0, momentum=0.9, order=order).step()
    if order == "momentum_first":  # M = 0.1 G, update ‖M‖_* polar(M)
        expected = -nuclear_norm(0.1 * G) * polar_svd(G)
    else:  # M = 0.1 polar(G), update ‖G‖_* M
        expected = -nuclear_norm(G) * 0.1 * polar_svd(G)
    assert torch.allclose(W.detach(), expected, atol=1e-10)


def test_polargrad_without_nuclear_scaling_steps_by_the_polar_factor(gen):
    W = torch.zeros(20, 30, dtype=F64, requires_grad=True)
    W.grad = torch.randn(20, 30, generator=gen, dtype=F64)
    create("polargrad", [W], lr=0.5, nuclear_scaling=False, polar_method="svd").step()
    assert torch.allclose(W.detach(), -0.5 * polar_svd(W.grad), atol=1e-12)


# --------------------------------------------------------------------------- Conda
def test_conda_matches_pytorch_optimizer_when_the_svd_refreshes_every_step(gen):
    from pytorch_optimizer import Conda as PeerConda

    for shape in [(48, 32), (32, 48)]:
        ours, peer, start = twin_run(
            lambda p: create("conda", p, lr=1e-2, update_proj_gap=1, weight_decay=0.1),
            lambda p: PeerConda(p, lr=1e-2, update_proj_gap=1, weight_decay=0.1, foreach=False),
            shape,
            5,
            gen,
        )
        assert rel(ours, peer, start) < 1e-4


def test_conda_refresh_steps_differ_from_pytorch_optimizer_when_the_gap_is_two(gen):
    """Official Conda refreshes the SVD at steps 1, T+1, 2T+1, ...; pytorch-optimizer at 1, T, 2T, ... For T = 2
    the bases differ from step 2 on (the notes measured 77 % over 5 steps); for T beyond the run they agree."""
    from pytorch_optimizer import Conda as PeerConda

    differ = twin_run(
        lambda p: create("conda", p, lr=1e-2, update_proj_gap=2),
        lambda p: PeerConda(p, lr=1e-2, update_proj_gap=2, foreach=False),
        (48, 32),
        5,
        gen,
    )
    agree = twin_run(
        lambda p: create("conda", p, lr=1e-2, update_proj_gap=100),
        lambda p: PeerConda(p, lr=1e-2, update_proj_gap=100, foreach=False),
        (48, 32),
        5,
        gen,
    )
    assert rel(*differ) > 0.1
    assert rel(*agree) < 1e-4


def test_conda_projected_momentum_has_orthogonal_columns_right_after_a_refresh(gen):
    W = torch.randn(48, 32, generator=gen, dtype=F64, requires_grad=True)
    opt = create("conda", [W], betas=(0.0, 0.999), update_proj_gap=1)
    W.grad = torch.randn(48, 32, generator=gen, dtype=F64)
    opt.step()
    state = opt.state[W]
    M_proj = state["exp_avg"] @ state["projector"]  # = U Σ: σ-scaled singular directions
    gram = M_proj.T @ M_proj
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 1e-10 * gram.abs().max()


# --------------------------------------------------------------------------- SOAP and Shampoo
def test_soap_leaves_the_weights_unchanged_on_the_first_step(gen):
    params = [
        torch.randn(12, 8, generator=gen, requires_grad=True),
        torch.randn(8, generator=gen, requires_grad=True),
    ]
    start = [p.detach().clone() for p in params]
    opt = create("soap", params)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    opt.step()
    assert all(torch.equal(p.detach(), s) for p, s in zip(params, start))
    assert "Q_0" in opt.state[params[0]] and "Q_0" not in opt.state[params[1]]  # 1-D: unrotated Adam


def test_soap_matches_pytorch_optimizer_on_matrices_vectors_and_3d_tensors(gen):
    from pytorch_optimizer import SOAP as PeerSOAP

    shapes = [(24, 16), (16,), (8, 4, 3), (30, 6)]
    start = [torch.randn(*s, generator=gen) for s in shapes]
    ours = [s.clone().requires_grad_() for s in start]
    peer = [s.clone().requires_grad_() for s in start]
    opt = create("soap", ours, lr=1e-2, precondition_frequency=3, max_precond_dim=20)
    opt_peer = PeerSOAP(peer, lr=1e-2, precondition_frequency=3, max_precondition_dim=20)
    for _ in range(12):
        for a, b in zip(ours, peer):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        opt_peer.step()
    for a, b, s in zip(ours, peer, start):
        assert rel(a.detach(), b.detach(), s) < 1e-4


def test_soap_dimensions_above_max_precond_dim_are_left_unrotated(gen):
    W = torch.randn(40, 6, generator=gen, requires_grad=True)
    opt = create("soap", [W], max_precond_dim=20)
    W.grad = torch.randn(40, 6, generator=gen)
    opt.step()
    assert "Q_0" not in opt.state[W] and opt.state[W]["Q_1"].shape == (6, 6)


def test_shampoo_matches_pytorch_optimizer_in_float64(gen):
    from pytorch_optimizer import Shampoo as PeerShampoo

    for shape in [(24, 16), (16, 16)]:
        ours, peer, start = twin_run(
            lambda p: create("shampoo", p, lr=1e-2),
            lambda p: PeerShampoo(p, lr=1e-2),
            shape,
            5,
            gen,
            dtype=F64,
        )
        assert rel(ours, peer, start) < 1e-10


def test_shampoo_first_step_with_vanishing_ridge_is_the_polar_factor(gen):
    G = torch.randn(24, 16, generator=gen, dtype=F64)
    W = torch.zeros(24, 16, dtype=F64, requires_grad=True)
    W.grad = G
    create("shampoo", [W], lr=1.0, eps=1e-12).step()
    assert (W.detach() + polar_svd(G)).abs().max() < 1e-8


# --------------------------------------------------------------------------- Dion
def test_dion_power_step_returns_orthonormal_p(gen):
    M = torch.randn(32, 16, generator=gen, dtype=F64)
    Q = torch.randn(16, 4, generator=gen, dtype=F64)
    P, Q_new = dion_power_step(M, Q, mu=0.95)
    assert torch.allclose(P.T @ P, torch.eye(4, dtype=F64), atol=1e-12)
    assert torch.allclose(Q_new.norm(dim=0), torch.ones(4, dtype=F64), atol=1e-7)


def test_dion_full_rank_converges_to_the_polar_factor_of_a_constant_gradient(gen):
    G = torch.randn(32, 16, generator=gen, dtype=F64)
    W = torch.zeros(32, 16, dtype=F64, requires_grad=True)
    opt = create("dion", [W], lr=1.0, weight_decay=0.0)
    errors, before = [], W.detach().clone()
    for _ in range(60):
        W.grad = G.clone()
        opt.step()
        update = (before - W.detach()) / math.sqrt(32 / 16)
        errors.append(float((update - polar_svd(G)).norm() / polar_svd(G).norm()))
        before = W.detach().clone()
    assert errors[4] < errors[0] and errors[19] < errors[4] and errors[-1] < 1e-2


def test_dion_rank_fraction_sets_the_right_factor_and_seed_makes_it_reproducible(gen):
    a = torch.randn(32, 16, generator=gen, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    opt_a, opt_b = (
        create("dion", [a], rank_fraction=0.25, seed=3),
        create("dion", [b], rank_fraction=0.25, seed=3),
    )
    a.grad = torch.randn(32, 16, generator=gen)
    b.grad = a.grad.clone()
    opt_a.step()
    opt_b.step()
    assert opt_a.state[a]["Q"].shape == (16, 4) and torch.equal(a, b)


def test_dion_survives_a_zero_gradient(gen):
    W = torch.randn(8, 4, generator=gen, requires_grad=True)
    opt = create("dion", [W])
    W.grad = torch.zeros(8, 4)
    opt.step()
    W.grad = torch.randn(8, 4, generator=gen)
    opt.step()
    assert torch.isfinite(W).all() and torch.allclose(opt.state[W]["Q"].norm(dim=0), torch.ones(4), atol=1e-5)


# --------------------------------------------------------------------------- SinkGD and SWAN
def test_sinkhorn_fixed_point_has_row_norms_sqrt_n_and_column_norms_sqrt_m(gen):
    X = sinkhorn_normalize(torch.randn(64, 32, generator=gen, dtype=F64), iters=50)
    assert (X.norm(dim=1) - math.sqrt(32)).abs().max() < 1e-4
    assert (X.norm(dim=0) - math.sqrt(64)).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["sinkgd", "swan"])
def test_stateless_optimizers_give_identical_updates_and_keep_no_tensors(name, gen):
    start = torch.randn(16, 8, generator=gen)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt_a, opt_b = create(name, [a]), create(name, [b])
    for _ in range(3):  # a's optimizer has history, b's is fresh every time
        a.grad = torch.randn(16, 8, generator=gen)
        opt_a.step()
    b.detach().copy_(a.detach())
    a.grad = torch.randn(16, 8, generator=gen)
    b.grad = a.grad.clone()
    opt_a.step()
    create(name, [b]).step()
    assert torch.equal(a, b)
    assert not any(isinstance(v, torch.Tensor) for v in opt_a.state[a].values())
    del opt_b


def test_swan_update_is_the_rescaled_polar_factor_of_the_normalised_gradient(gen):
    G = torch.randn(12, 20, generator=gen, dtype=F64)
    W = torch.zeros(12, 20, dtype=F64, requires_grad=True)
    W.grad = G
    create("swan", [W], lr=1.0, eps=0.0, ns_coefficients="polar_express", ns_steps=10, ns_dtype=F64).step()
    G_tilde = grad_norm(G, eps=0.0)
    assert torch.allclose(G_tilde.mean(dim=1), torch.zeros(12, dtype=F64), atol=1e-12)
    expected = (
        -polar_svd(G_tilde) * math.sqrt(12 * 20) / math.sqrt(12)
    )  # ‖G̃‖_F = √(mn), ‖polar‖_F = √min(m, n)
    assert (W.detach() - expected).abs().max() < 1e-6


# --------------------------------------------------------------------------- shared contract
def test_every_matrix_optimizer_state_round_trips_through_a_weights_only_file(gen):
    for name in MATRIX_OPTIMIZERS:
        W = torch.randn(12, 8, generator=gen, requires_grad=True)
        opt = create(name, [W])
        grads = [torch.randn(12, 8, generator=gen) for _ in range(6)]
        for g in grads[:3]:
            W.grad = g.clone()
            opt.step()
        buffer = io.BytesIO()
        torch.save({"opt": opt.state_dict(), "W": W.detach().clone()}, buffer)
        for key, value in opt.state[W].items():  # tensors and plain numbers only: no Python objects
            assert isinstance(value, (torch.Tensor, int, float)), (name, key)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        W2 = saved["W"].clone().requires_grad_()
        opt2 = create(name, [W2])
        opt2.load_state_dict(saved["opt"])
        for g in grads[3:]:
            W.grad, W2.grad = g.clone(), g.clone()
            opt.step()
            opt2.step()
        assert torch.equal(W, W2), name


@pytest.mark.parametrize("name", [n for n in MATRIX_OPTIMIZERS if n != "soap"])
def test_non_matrix_params_are_rejected_with_a_pointer_to_groups(name):
    with pytest.raises(ValueError, match=r"shape \(6,\).*minidiff\.optim\.groups"):
        create(name, [torch.zeros(6, requires_grad=True)])


@pytest.mark.parametrize(
    ("name", "argument", "value"),
    [
        ("muon", "scale", "huge"),
        ("muon", "ns_coefficients", "nope"),
        ("muon", "ns_dtype", torch.int64),
        ("muon", "momentum", 1.0),
        ("normuon", "update_scale", "rms"),
        ("polargrad", "polar_method", "magic"),
        ("polargrad", "order", "sideways"),
        ("conda", "update_proj_gap", 0),
        ("shampoo", "root", 0.0),
        ("soap", "shampoo_beta", 1.5),
        ("dion", "rank_fraction", 0.0),
        ("dion", "scale", "spectral_norm"),
        ("sinkgd", "sinkhorn_iters", 0),
        ("swan", "rescale", "yes"),
    ],
)
def test_invalid_hyperparameters_raise_value_errors_naming_the_argument(name, argument, value):
    with pytest.raises(ValueError, match=argument):
        create(name, [torch.zeros(4, 3, requires_grad=True)], **{argument: value})


def test_a_bad_param_group_override_is_rejected_and_not_kept():
    W, V = torch.zeros(4, 3, requires_grad=True), torch.zeros(5, 3, requires_grad=True)
    opt = create("muon", [W])
    with pytest.raises(ValueError, match="scale"):
        opt.add_param_group({"params": [V], "scale": "nope"})
    assert len(opt.param_groups) == 1

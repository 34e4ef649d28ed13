"""The Adam family against its peers and against hand computation.

Peers run on the same gradient sequences as ours. Where a trajectory matches, the test says how closely (bit
for bit, or within rounding of a different operation order). Where it cannot match, a test pins the
difference and its docstring names the equation we follow.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
lion_pytorch = pytest.importorskip("lion_pytorch")

from minidiff.optim import create  # noqa: E402
from minidiff.optim.adamhd import huber_prox_  # noqa: E402
from minidiff.optim.ademamix import alpha_schedule, beta3_schedule  # noqa: E402
from minidiff.optim.spam import warmup_factor  # noqa: E402
from minidiff.optim.stable_spam import cosine_factor  # noqa: E402
from minidiff.optim.wrappers import CoordinateClip, LBWGuard  # noqa: E402
from minidiff.optim.wrappers.lbw_guard import GuardRules, guard_control  # noqa: E402

SHAPES = [(16, 32), (32,)]
# Same update, different float32 operation order: differences of a few ulp of |θ| ≲ 4, accumulated over 30 steps.
ROUNDING = 1e-5


def gradients(gen, steps=30, shapes=SHAPES, scale=1.0):
    return [[scale * torch.randn(s, generator=gen) for s in shapes] for _ in range(steps)]


def start_params(gen, shapes=SHAPES):
    return [torch.randn(s, generator=gen) for s in shapes]


def trajectory(make, start, grads):
    """Final parameters after stepping ``make(params)`` through ``grads``; gradients are fresh copies."""
    params = [p.clone().requires_grad_() for p in start]
    opt = make(params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params]


def max_diff(a, b) -> float:
    return max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a, b))


def one_step(name, theta0, grad, **hp):
    p = torch.tensor(theta0, dtype=torch.float32).requires_grad_()
    opt = create(name, [p], **hp)
    p.grad = torch.tensor(grad, dtype=torch.float32)
    opt.step()
    return p.detach(), opt.state[p]


# --------------------------------------------------------------------------- AdamW (torch's, registered)
def test_adamw_first_step_matches_hand_computation():
    theta, _ = one_step("adamw", [1.0], [0.5], lr=1e-3, weight_decay=0.1)
    assert theta.item() == pytest.approx(0.9989, abs=1e-7)  # 1·(1 − 1e-4) − 1e-3·m̂/√v̂ = 0.9999 − 0.001


# --------------------------------------------------------------------------- Lion
def test_lion_first_step_matches_hand_computation():
    eta, lam, beta2 = 1e-2, 0.5, 0.99
    theta0, g = [1.0, -2.0, 3.0], [0.5, 0.25, -4.0]
    theta, state = one_step("lion", theta0, g, lr=eta, weight_decay=lam, betas=(0.9, beta2))
    expected = torch.tensor(theta0) * (1 - eta * lam) - eta * torch.tensor(g).sign()
    assert torch.allclose(theta, expected, atol=3e-7, rtol=0)  # 1 ulp at |θ| ~ 1 is 1.2e-7
    assert torch.allclose(state["exp_avg"], (1 - beta2) * torch.tensor(g), atol=1e-8, rtol=0)


def test_lion_moves_every_coordinate_by_exactly_lr_where_c_is_nonzero(gen):
    p = torch.randn(64, generator=gen).requires_grad_()
    opt = create("lion", [p], lr=1e-2)
    for step in range(5):
        g = torch.randn(64, generator=gen)
        g[:8] = 0.0 if step == 0 else g[:8]  # c = 0 at step 1 for these coordinates: sign(0) = 0
        before = p.detach().clone()
        p.grad = g
        opt.step()
        moved = (p.detach() - before).abs()
        if step == 0:
            assert torch.all(moved[:8] == 0)
            moved = moved[8:]
        assert torch.allclose(moved, torch.full_like(moved, 1e-2), atol=1e-7, rtol=0)


def test_lion_matches_pytorch_optimizer_lion_bit_for_bit(gen):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("lion", ps, lr=1e-2, weight_decay=0.1), start, grads)
    for foreach in (True, False):
        theirs = trajectory(
            lambda ps, f=foreach: pytorch_optimizer.Lion(ps, lr=1e-2, weight_decay=0.1, foreach=f),
            start,
            grads,
        )
        assert max_diff(ours, theirs) == 0.0


def test_lion_matches_lion_pytorch(gen):
    """lion-pytorch computes c with mul/add instead of lerp; only sign(c) for c ≈ 0 could differ."""
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("lion", ps, lr=1e-2, weight_decay=0.1), start, grads)
    theirs = trajectory(lambda ps: lion_pytorch.Lion(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, theirs) <= 1e-6


# --------------------------------------------------------------------------- AdEMAMix
def test_ademamix_first_step_matches_hand_computation():
    """Without schedulers: Δθ = −η(1 + α(1 − β3))·g/(|g| + ε) − ηλθ0 (m2 is not bias-corrected)."""
    eta, lam, alpha, beta3 = 1e-2, 0.1, 2.0, 0.9999
    theta, _ = one_step("ademamix", [1.0, -1.0], [0.5, 3.0], lr=eta, weight_decay=lam, alpha=alpha)
    g = torch.tensor([0.5, 3.0])
    expected = torch.tensor([1.0, -1.0]) * (1 - eta * lam) - eta * (1 + alpha * (1 - beta3)) * g / (
        g.abs() + 1e-8
    )
    assert torch.allclose(theta, expected, atol=3e-7, rtol=0)  # 1 ulp at |θ| ~ 1 is 1.2e-7


def test_ademamix_schedulers_start_at_beta1_and_zero_and_end_at_their_targets():
    assert beta3_schedule(0, 0.9, 0.9999, 100) == pytest.approx(0.9)
    assert beta3_schedule(100, 0.9, 0.9999, 100) == pytest.approx(0.9999)
    assert beta3_schedule(500, 0.9, 0.9999, 100) == 0.9999
    assert alpha_schedule(0, 8.0, 100) == 0.0 and alpha_schedule(50, 8.0, 100) == 4.0
    assert alpha_schedule(200, 8.0, 100) == 8.0 and alpha_schedule(3, 8.0, None) == 8.0


def test_ademamix_beta3_schedule_is_linear_in_half_life():
    half_life = lambda beta: math.log(0.5) / math.log(beta) - 1
    for t in (10, 37, 90):
        expected = (1 - t / 100) * half_life(0.9) + t / 100 * half_life(0.9999)
        assert half_life(beta3_schedule(t, 0.9, 0.9999, 100)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("warmup", [None, 20])
def test_ademamix_matches_pytorch_optimizer_with_decoupled_decay(gen, warmup):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(
        lambda ps: create(
            "ademamix", ps, lr=1e-2, weight_decay=0.1, alpha=5.0, alpha_warmup=warmup, beta3_warmup=warmup
        ),
        start,
        grads,
    )
    theirs = trajectory(
        lambda ps: pytorch_optimizer.AdEMAMix(
            ps, lr=1e-2, weight_decay=0.1, weight_decouple=True, alpha=5.0, t_alpha_beta3=warmup
        ),
        start,
        grads,
    )
    assert max_diff(ours, theirs) < ROUNDING


def test_ademamix_differs_from_pytorch_optimizer_defaults_which_couple_the_decay(gen):
    """We follow the paper's θ ← θ − η[... + λθ] (decoupled); pytorch_optimizer's default adds λθ to g."""
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("ademamix", ps, lr=1e-2, weight_decay=0.1, alpha=5.0), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.AdEMAMix(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, theirs) > 1e-3


def test_ademamix_with_beta1_zero_keeps_no_fast_ema():
    theta, state = one_step("ademamix", [1.0], [0.5], lr=1e-2, betas=(0.0, 0.999, 0.9999))
    assert "exp_avg" not in state and set(state) >= {"exp_avg_slow", "exp_avg_sq"}
    assert theta.item() == pytest.approx(1.0 - 1e-2 * (1 + 2 * 1e-4), abs=1e-7)


# --------------------------------------------------------------------------- AdamP / SGDP
def _row_orthogonal(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    w_hat = w / w.norm(dim=1, keepdim=True)
    return g - w_hat * (g * w_hat).sum(dim=1, keepdim=True)


def _orthogonal_trajectory(make, start, grads):
    params = [p.clone().requires_grad_() for p in start]
    opt = make(params)
    for step_grads in grads:
        params[0].grad = _row_orthogonal(step_grads[0], params[0].detach())
        params[1].grad = step_grads[1].clone()
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("orthogonal", [False, True])
def test_adamp_matches_pytorch_optimizer_for_unit_scale_gradients(gen, orthogonal):
    start, grads = start_params(gen), gradients(gen)
    run = _orthogonal_trajectory if orthogonal else trajectory  # orthogonal: the projection fires every step
    ours = run(lambda ps: create("adamp", ps, lr=1e-2, weight_decay=0.1), start, grads)
    theirs = run(lambda ps: pytorch_optimizer.AdamP(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


def test_adamp_eps_placement_differs_from_pytorch_optimizer_for_tiny_gradients(gen):
    """We follow clovaai/AdamP: p = m / (√v/√(1 − β2^t) + ε); pytorch_optimizer uses √(1 − β2^t)/(√v + ε).

    With |g| ~ 1e-6 the ε terms dominate and the trajectories part visibly; our first step equals the
    reference formula by hand.
    """
    start, grads = start_params(gen), gradients(gen, scale=1e-6)
    ours = trajectory(lambda ps: create("adamp", ps, lr=1e-2), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.AdamP(ps, lr=1e-2), start, grads)
    assert max_diff(ours, theirs) > 1e-3
    theta, _ = one_step("adamp", [1.0], [2e-8], lr=1e-2)  # 1-D: never projected
    m_hat, v_hat = 2e-8, (2e-8) ** 2
    assert theta.item() == pytest.approx(1.0 - 1e-2 * m_hat / (math.sqrt(v_hat) + 1e-8), abs=1e-7)


def test_adamp_projection_removes_the_radial_part_row_by_row(gen):
    w0 = torch.randn(8, 16, generator=gen)
    g = _row_orthogonal(torch.randn(8, 16, generator=gen), w0)
    radial = {}
    for name in ("adamp", "adamw"):
        w = w0.clone().requires_grad_()
        opt = create(name, [w], lr=1e-2, weight_decay=0.0)
        w.grad = g.clone()
        opt.step()
        radial[name] = float(((w.detach() - w0) * w0).sum(dim=1).abs().max())
    assert radial["adamp"] < 1e-5 and radial["adamw"] > 1e-2


def test_adamp_applies_wd_ratio_only_when_the_projection_fires(gen):
    w0 = torch.randn(8, 16, generator=gen)
    g_random = torch.randn(8, 16, generator=gen)
    for g, expected_ratio in (
        (_row_orthogonal(g_random, w0), 0.1),
        (w0.clone(), 1.0),
    ):  # g ∥ w: no projection
        ends = []
        for lam in (0.0, 0.5):
            w = w0.clone().requires_grad_()
            opt = create("adamp", [w], lr=1e-2, weight_decay=lam, wd_ratio=0.1)
            w.grad = g.clone()
            opt.step()
            ends.append(w.detach())
        assert torch.allclose(ends[0] - ends[1], w0 * 1e-2 * 0.5 * expected_ratio, atol=1e-6)


def test_adamp_leaves_vectors_to_plain_adamw(gen):
    start, grads = [torch.randn(32, generator=gen)], gradients(gen, shapes=[(32,)])
    ours = trajectory(lambda ps: create("adamp", ps, lr=1e-2, weight_decay=0.1), start, grads)
    adamw = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, adamw) < 1e-6


@pytest.mark.parametrize("orthogonal", [False, True])
def test_sgdp_matches_pytorch_optimizer(gen, orthogonal):
    start, grads = start_params(gen), gradients(gen)
    run = _orthogonal_trajectory if orthogonal else trajectory
    hp = dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    ours = run(lambda ps: create("sgdp", ps, **hp), start, grads)
    theirs = run(lambda ps: pytorch_optimizer.SGDP(ps, **hp), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


def test_sgdp_decay_is_divided_by_one_minus_momentum():
    """clovaai/AdamP sgdp.py: w ← w(1 − ηλr/(1 − μ)); with g = 0 the step is the decay alone."""
    theta, state = one_step("sgdp", [2.0], [0.0], lr=0.1, momentum=0.9, weight_decay=0.01)
    assert theta.item() == pytest.approx(2.0 * (1 - 0.1 * 0.01 / 0.1), abs=1e-7)
    assert state["momentum_buffer"].item() == 0.0


# --------------------------------------------------------------------------- EXAdam
@pytest.mark.parametrize(("dynamic", "ratio"), [(False, 15.95), (True, 11.06)])
def test_exadam_first_step_magnitude_matches_hand_computation(dynamic, ratio):
    """|Δθ1|/lr = (1 + β2)(1 + 1/(1 − β1))/√(1 + β1) for v2; ×ln 2 (= ln(√2·√2)) for v1's dynamic step."""
    theta, _ = one_step("exadam", [0.0, 0.0], [0.5, -3.0], lr=1e-3, dynamic_step=dynamic)
    exact = 1.999 * 11 / math.sqrt(1.9) * (math.log(2.0) if dynamic else 1.0)
    assert exact == pytest.approx(ratio, abs=5e-3)
    assert torch.allclose(theta.abs() / 1e-3, torch.full((2,), exact), rtol=1e-4)  # ε/v terms: ~4e-5


def test_exadam_matches_pytorch_optimizer_exadam(gen):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("exadam", ps, lr=1e-2, weight_decay=0.1), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.EXAdam(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


# --------------------------------------------------------------------------- DualAdam / InvAdam
def test_dualadam_first_step_matches_hand_computation():
    """g = 0.5, s = 0.01: γ1 = 0.99, m̂ = 0.5, √v̂ = 0.5 → |Δθ|/η = 0.5·(0.01/0.5 + 0.99·0.5) = 0.2575."""
    theta, _ = one_step("dualadam", [0.0], [0.5], lr=1e-3, switch_rate=0.01)
    assert -theta.item() / 1e-3 == pytest.approx(0.2575, abs=1e-6)


@pytest.mark.parametrize("switch_rate", [0.01, 0.1])
def test_dualadam_matches_pytorch_optimizer_with_decoupled_decay(gen, switch_rate):
    start, grads = start_params(gen), gradients(gen)
    hp = dict(lr=1e-2, weight_decay=0.1, switch_rate=switch_rate)
    ours = trajectory(lambda ps: create("dualadam", ps, **hp), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.DualAdam(ps, weight_decouple=True, **hp), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


def test_dualadam_differs_from_pytorch_optimizer_default_coupled_decay(gen):
    """We decay θ ← θ(1 − ηλ) (AdamW); pytorch_optimizer's default adds λθ to the gradient (L2)."""
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("dualadam", ps, lr=1e-2, weight_decay=0.1), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.DualAdam(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, theirs) > 1e-4


def test_dualadam_is_torch_adamw_bit_for_bit_once_switched(gen):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(
        lambda ps: create("dualadam", ps, lr=1e-2, weight_decay=0.1, switch_rate=1.0), start, grads
    )
    adamw = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1), start, grads)
    assert max_diff(ours, adamw) == 0.0


def test_dualadam_steps_equal_adam_steps_after_the_switch(gen):
    """s = 0.5: γ1 = 0.5 mixes, γ2 = 0 < s, so from step 2 on each displacement is Adam's (same moments)."""
    start, grads = start_params(gen), gradients(gen, steps=4)
    moves = {}
    for name, make in (
        ("dual", lambda ps: create("dualadam", ps, lr=1e-2, switch_rate=0.5)),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    ):
        params = [p.clone().requires_grad_() for p in start]
        opt, moves[name] = make(params), []
        for step_grads in grads:
            before = [p.detach().clone() for p in params]
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
            moves[name].append([p.detach() - b for p, b in zip(params, before)])
    assert max_diff(moves["dual"][0], moves["adam"][0]) > 1e-3
    for dual, adam in zip(moves["dual"][1:], moves["adam"][1:]):
        assert max_diff(dual, adam) < 1e-6  # one ulp of θ ~ 1


def test_invadam_first_step_multiplies_by_the_preconditioner():
    """Δθ = −η m̂ ⊙ (√v̂ + ε) = −η g (|g| + ε) at step 1."""
    theta, _ = one_step("invadam", [0.0, 0.0], [0.5, -3.0], lr=1e-3)
    assert torch.allclose(theta, -1e-3 * torch.tensor([0.5 * 0.5, -3.0 * 3.0]), atol=1e-8, rtol=1e-6)


def test_invadam_equals_pytorch_optimizer_dualadam_with_zero_switch_rate(gen):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("invadam", ps, lr=1e-3), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.DualAdam(ps, lr=1e-3, switch_rate=0.0), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


# --------------------------------------------------------------------------- AdamHD
def test_adamhd_huber_prox_matches_hand_computation():
    """θ̃ = [0.01, 1], δ = 0.1, τ = 0.1: [0.01/1.1, 1 − 0.1·0.1] = [0.0090909, 0.99]."""
    theta = [torch.tensor([0.01, 1.0, -1.0])]
    huber_prox_(theta, 0.1, [0.1])
    assert torch.allclose(theta[0], torch.tensor([0.0090909, 0.99, -0.99]), atol=1e-7)


def test_adamhd_huber_prox_is_continuous_and_large_weights_lose_exactly_tau_delta():
    tau, delta = 0.2, 0.5
    knee = (1 + tau) * delta
    theta = [torch.tensor([knee - 1e-6, knee, knee + 1e-6, 3.0, -7.0])]
    huber_prox_(theta, tau, [delta])
    below, at, above, big, neg = theta[0].tolist()
    assert below == pytest.approx(at, abs=1e-5) and above == pytest.approx(at, abs=1e-5)
    assert big == pytest.approx(3.0 - tau * delta) and neg == pytest.approx(-7.0 + tau * delta)


def test_adamhd_without_decay_is_torch_adam_bit_for_bit(gen):
    start, grads = start_params(gen), gradients(gen)
    ours = trajectory(lambda ps: create("adamhd", ps, lr=1e-2, weight_decay=0.0), start, grads)
    adam = trajectory(lambda ps: torch.optim.Adam(ps, lr=1e-2), start, grads)
    assert max_diff(ours, adam) == 0.0


def test_adamhd_with_huge_delta_is_the_l2_prox_not_adamws_explicit_decay(gen):
    """δ → ∞ gives θ = θ̃/(1 + τ) (prox of L2); AdamW gives θ(1 − τ) − u: equal to first order in τ only."""
    tau = 1e-2 * 0.5
    start, grads = start_params(gen), gradients(gen, steps=1)
    ours = trajectory(lambda ps: create("adamhd", ps, lr=1e-2, weight_decay=0.5, delta=1e9), start, grads)
    adam = trajectory(lambda ps: torch.optim.Adam(ps, lr=1e-2), start, grads)
    adamw = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.5), start, grads)
    assert max_diff(ours, [a / (1 + tau) for a in adam]) < 1e-6
    assert 1e-6 < max_diff(ours, adamw) < 10 * tau**2 * max(float(s.abs().max()) for s in start)


def test_adamhd_adaptive_delta_is_the_layers_rms_magnitude_at_step_one(gen):
    w0 = torch.randn(64, generator=gen)
    w = w0.clone().requires_grad_()
    opt = create("adamhd", [w], lr=1e-2, weight_decay=0.5)  # delta=None: δ1 = RMS(θ0)
    w.grad = torch.randn(64, generator=gen)
    opt.step()
    adam = w0.clone().requires_grad_()
    ref = torch.optim.Adam([adam], lr=1e-2)
    adam.grad = w.grad.clone()
    ref.step()
    expected = [adam.detach().clone()]
    huber_prox_(expected, 1e-2 * 0.5, [float(w0.square().mean().sqrt())])
    assert torch.allclose(w.detach(), expected[0], atol=1e-7)
    assert 0.0 < opt.huber_fraction() < 1.0


# --------------------------------------------------------------------------- SPAM
def test_spam_clips_a_spike_to_sqrt_threshold_times_v():
    """After 5 steps of g = 1 (β2 = 0.999) v = 0.0049900; a 1e6 spike becomes √(5000 v) = 4.9950, v → 0.02993."""
    p = torch.zeros(1, requires_grad=True)
    opt = create("spam", [p], lr=0.0, grad_accu_steps=2)
    for _ in range(5):
        p.grad = torch.ones(1)
        opt.step()
    assert opt.state[p]["exp_avg_sq"].item() == pytest.approx(0.0049900, abs=1e-7)
    p.grad = torch.tensor([1e6])
    opt.step()
    assert p.grad.item() == 1e6  # clipping works on a copy
    assert opt.state[p]["exp_avg_sq"].item() == pytest.approx(0.999 * 0.0049900 + 0.001 * 4.9950**2, abs=1e-6)
    assert opt.state[p]["exp_avg_sq"].item() == pytest.approx(0.02993, abs=1e-5)


def test_spam_matches_pytorch_optimizer_until_the_first_reset(gen):
    start, grads = start_params(gen), gradients(gen, steps=40)
    grads[25] = [100 * g for g in grads[25]]  # a spike, clipped by both
    hp = dict(lr=1e-2, weight_decay=0.1, grad_accu_steps=3)
    ours = trajectory(lambda ps: create("spam", ps, reset_interval=500, **hp), start, grads)
    theirs = trajectory(lambda ps: pytorch_optimizer.SPAM(ps, update_proj_gap=500, **hp), start, grads)
    assert max_diff(ours, theirs) < ROUNDING


def test_spam_rewarms_from_one_percent_after_a_reset_unlike_pytorch_optimizer(gen):
    """The reference's CosineDecay is evaluated in closed form: s_0 = 1 − 0.99 = 0.01 at the reset step.

    pytorch_optimizer steps a CosineAnnealingLR recursively and starts at s ≈ 0.076, so the trajectories part
    after the first reset.
    """
    assert warmup_factor(10, 10, 5) == pytest.approx(0.01)
    assert warmup_factor(9, 10, 5) == 1.0 and warmup_factor(15, 10, 5) == 1.0
    assert warmup_factor(12, 10, 5) == pytest.approx(1 - 0.99 * (1 + math.cos(math.pi * 2 / 6)) / 2)
    start, grads = start_params(gen), gradients(gen, steps=12)
    hp = dict(lr=1e-2, grad_accu_steps=3)
    ours = trajectory(lambda ps: create("spam", ps, reset_interval=10, warmup_steps=5, **hp), start, grads)
    theirs = trajectory(
        lambda ps: pytorch_optimizer.SPAM(ps, update_proj_gap=10, warmup_epoch=5, **hp), start, grads
    )
    assert max_diff(ours, theirs) > 1e-4


def test_spam_reset_zeroes_the_moments_before_the_step():
    p = torch.zeros(1, requires_grad=True)
    opt = create("spam", [p], lr=1e-3, reset_interval=4, grad_accu_steps=2)
    for _ in range(4):
        p.grad = torch.tensor([2.0])
        opt.step()
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.1 * 2.0)  # m = (1 − β1) g right after the reset
    assert opt.state[p]["exp_avg_sq"].item() == pytest.approx(0.001 * 4.0)


def test_spam_rejects_grad_accu_steps_below_two():
    with pytest.raises(ValueError, match="grad_accu_steps"):
        create("spam", [torch.zeros(2, requires_grad=True)], grad_accu_steps=1)


# --------------------------------------------------------------------------- Stable-SPAM
@pytest.mark.parametrize("reset_interval", [1000, 10])
def test_stable_spam_matches_pytorch_optimizer_across_resets(gen, reset_interval):
    start, grads = start_params(gen), gradients(gen, steps=40)
    grads[25] = [1000 * g for g in grads[25]]
    hp = dict(lr=1e-2, weight_decay=0.1)
    ours = trajectory(lambda ps: create("stable_spam", ps, reset_interval=reset_interval, **hp), start, grads)
    theirs = trajectory(
        lambda ps: pytorch_optimizer.StableSPAM(ps, update_proj_gap=reset_interval, **hp), start, grads
    )
    assert max_diff(ours, theirs) < ROUNDING


def test_stable_spam_first_step_clips_nothing_and_normalizes_the_gradient():
    """M̂_1 = max|g_1|, so AdaClip leaves g alone; AdaGN gives g/n · μ̂/√ν̂ = g/n (μ̂ = n, ν̂ = n² at step 1)."""
    p = torch.zeros(4, requires_grad=True)
    opt = create("stable_spam", [p], lr=1e-3, betas=(0.0, 0.999))  # β1 = 0: m = the stabilized gradient
    p.grad = torch.tensor([1.0, -20.0, 3.0, 0.5])
    opt.step()
    assert torch.allclose(opt.state[p]["exp_avg"], p.grad / p.grad.norm(), rtol=1e-6)


def test_stable_spam_adagn_shrinks_a_hundredfold_norm_spike_to_about_the_steady_norm(gen):
    """Steady gradients come out with norm μ̂/√ν̂ ≈ 1; a 100× spike with (0.7 + 30)/√(0.9 + 1000) ≈ 0.97."""
    p = torch.zeros(32, requires_grad=True)
    opt = create("stable_spam", [p], lr=0.0, betas=(0.0, 0.999), theta=0.0)  # θ = 0: AdaClip never fires
    for _ in range(200):
        g = torch.randn(32, generator=gen)
        p.grad = g / g.norm()
        opt.step()
    g = torch.randn(32, generator=gen)
    p.grad = 100 * g / g.norm()
    opt.step()
    expected = (0.7 + 30.0) / math.sqrt(0.9 + 1000.0)
    assert float(opt.state[p]["exp_avg"].norm()) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(0.97, abs=5e-3)


def test_stable_spam_cosine_factor_falls_from_one_to_eta_min_and_stays():
    assert cosine_factor(0, 100, 0.5) == 1.0 and cosine_factor(5, None, 0.5) == 1.0
    assert cosine_factor(101, 100, 0.5) == pytest.approx(0.5) and cosine_factor(
        10_000, 100, 0.5
    ) == pytest.approx(0.5)
    values = [cosine_factor(t, 100, 0.5) for t in range(0, 102, 10)]
    assert values == sorted(values, reverse=True)


def test_stable_spam_never_modifies_the_gradient(gen):
    p = torch.zeros(8, requires_grad=True)
    opt = create("stable_spam", [p], lr=1e-2)
    for scale in (1.0, 1.0, 1e4):
        g = scale * torch.randn(8, generator=gen)
        p.grad = g.clone()
        opt.step()
        assert torch.equal(p.grad, g)


# --------------------------------------------------------------------------- coordinate clipping
def test_sgd_clip_clips_the_top_fraction_to_the_next_magnitude():
    """g = [5, −4, 3, 0.1], c = 0.25: k = 1, τ = 4 (the 2nd largest), ĝ = [4, −4, 3, 0.1]."""
    theta, state = one_step(
        "sgd_clip", [0.0, 0.0, 0.0, 0.0], [5.0, -4.0, 3.0, 0.1], lr=1.0, clip_fraction=0.25
    )
    assert torch.allclose(theta, -torch.tensor([4.0, -4.0, 3.0, 0.1]))
    assert state["clip_threshold"] == 4.0


def test_sgd_clip_threshold_is_shared_by_the_tensors_of_a_group():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = create("sgd_clip", [a, b], lr=1.0, clip_fraction=0.25)
    a.grad, b.grad = torch.tensor([5.0, -4.0]), torch.tensor([3.0, 0.1])
    opt.step()
    assert torch.equal(a.detach(), torch.tensor([-4.0, 4.0])) and torch.allclose(
        b.detach(), torch.tensor([-3.0, -0.1])
    )


def test_sgd_clip_bounds_every_coordinate_and_clips_exactly_k(gen):
    g = torch.randn(1000, generator=gen)
    theta, state = one_step("sgd_clip", [0.0] * 1000, g.tolist(), lr=1.0, clip_fraction=0.05)
    tau = state["clip_threshold"]
    assert float(theta.abs().max()) <= tau
    assert int((theta.abs() < g.abs()).sum()) == 50  # ⌊0.05·1000⌋ coordinates cut, the rest untouched


def test_sgd_clip_with_full_fraction_zeroes_the_gradient():
    theta, _ = one_step("sgd_clip", [1.0, 2.0], [3.0, -1.0], lr=0.1, clip_fraction=1.0)
    assert torch.equal(theta, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_clip_without_clipping_is_torch_sgd_bit_for_bit(gen, nesterov):
    start, grads = start_params(gen), gradients(gen)
    hp = dict(lr=1e-2, momentum=0.9, nesterov=nesterov)
    ours = trajectory(lambda ps: create("sgd_clip", ps, clip_fraction=0.0, **hp), start, grads)
    sgd = trajectory(lambda ps: torch.optim.SGD(ps, **hp), start, grads)
    assert max_diff(ours, sgd) == 0.0


def test_coordinate_clip_wrapper_feeds_the_base_optimizer_clipped_gradients(gen):
    start, grads = start_params(gen), gradients(gen, steps=5)
    wrapped = trajectory(
        lambda ps: CoordinateClip(torch.optim.AdamW(ps, lr=1e-2), fraction=0.1), start, grads
    )
    clipped = []
    for step_grads in grads:
        flat = torch.cat([g.reshape(-1) for g in step_grads]).abs()
        tau = torch.kthvalue(flat, flat.numel() - math.floor(0.1 * flat.numel())).values
        clipped.append([g.clamp(-tau, tau) for g in step_grads])
    manual = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2), start, clipped)
    assert max_diff(wrapped, manual) == 0.0


def test_coordinate_clip_wrapper_restores_the_gradients_and_reports_tau(gen):
    p = torch.zeros(4, requires_grad=True)
    opt = CoordinateClip(torch.optim.SGD([p], lr=1.0), fraction=0.25)
    g = torch.tensor([5.0, -4.0, 3.0, 0.1])
    p.grad = g.clone()
    opt.step()
    assert torch.equal(p.grad, g) and opt.thresholds == [4.0]
    assert torch.allclose(p.detach(), -torch.tensor([4.0, -4.0, 3.0, 0.1]))


def test_coordinate_clip_wrapper_works_with_schedulers_and_state_dicts(gen):
    p = torch.randn(8, generator=gen).requires_grad_()
    opt = CoordinateClip(torch.optim.AdamW([p], lr=1e-2), fraction=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = torch.randn(8, generator=gen)
    opt.step()
    scheduler.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    restored = CoordinateClip(torch.optim.AdamW([p], lr=1e-2), fraction=0.5)
    restored.load_state_dict(opt.state_dict())
    assert restored.fraction == 0.1 and restored.optimizer.state[p]["step"] == opt.optimizer.state[p]["step"]
    with pytest.raises(ValueError, match="fraction"):
        CoordinateClip(torch.optim.AdamW([p]), fraction=1.5)


# --------------------------------------------------------------------------- LBW-Guard
def test_lbw_guard_controller_follows_the_documented_rules():
    """Calm keeps κ at the ceiling; ratio 1.6 → ×0.7; ratio 1.2 → ×0.85: 1 → 1 → 0.7 → 0.595."""
    scale = guard_control(1.0, 1.0, False)
    assert scale == 1.0
    scale = guard_control(scale, 1.6, False)
    assert scale == pytest.approx(0.7)
    scale = guard_control(scale, 1.2, False)
    assert scale == pytest.approx(0.595)
    assert guard_control(0.5, 1.0, True) == pytest.approx(0.425)  # a sign flip counts as drift
    assert guard_control(0.5, 1.0, False) == pytest.approx(0.51)  # calm recovers by +0.01


def test_lbw_guard_outputs_stay_within_their_bounds(gen):
    rules = GuardRules()
    scale = 1.0
    for ratio, flip in zip(
        (3 * torch.rand(500, generator=gen)).tolist(), (torch.rand(500, generator=gen) < 0.5).tolist()
    ):
        scale = guard_control(scale, ratio, flip, rules)
        assert rules.scale_min <= scale <= rules.scale_max
    for _ in range(100):
        scale = guard_control(scale, 10.0, False, rules)
    assert scale == rules.scale_min == 0.1


def test_lbw_guard_scales_the_lr_only_during_the_step_and_never_above_schedule(gen):
    p = torch.randn(16, generator=gen).requires_grad_()
    base = torch.optim.AdamW([p], lr=1e-2)
    seen = []
    base.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    guard = LBWGuard(base, interval=1)
    for step in range(30):
        p.grad = torch.randn(16, generator=gen) * (50.0 if step % 7 == 6 else 1.0)  # recurring spikes
        guard.step()
        assert base.param_groups[0]["lr"] == 1e-2  # the scheduled lr is restored
    assert all(0.1 * 1e-2 - 1e-12 <= lr <= 1e-2 for lr in seen)
    assert min(seen) < 1e-2  # the spikes did lower it
    telemetry = guard.telemetry
    assert {"grad_stat", "grad_norm", "ratio", "sign_flip", "scale", "update_ratio", "loss"} <= set(telemetry)


def test_lbw_guard_disabled_is_the_base_optimizer_bit_for_bit(gen):
    start, grads = start_params(gen), gradients(gen)
    guarded = trajectory(lambda ps: LBWGuard(torch.optim.AdamW(ps, lr=1e-2), enabled=False), start, grads)
    plain = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2), start, grads)
    assert max_diff(guarded, plain) == 0.0


def test_lbw_guard_collects_at_step_one_and_every_interval(gen):
    p = torch.randn(4, generator=gen).requires_grad_()
    guard = LBWGuard(torch.optim.SGD([p], lr=0.1), interval=5)
    collected = []
    for _ in range(12):
        p.grad = torch.randn(4, generator=gen)
        guard.step(loss=1.5)
        collected.append(guard.telemetry["step"])
    assert sorted(set(collected)) == [1, 5, 10] and guard.telemetry["loss"] == 1.5


def test_lbw_guard_state_dict_round_trip_continues_identically(gen):
    start, grads = start_params(gen), gradients(gen, steps=24)
    params = [p.clone().requires_grad_() for p in start]
    guard = LBWGuard(torch.optim.AdamW(params, lr=1e-2), interval=3)

    def run(opt, ps, chunk):
        for step_grads in chunk:
            for p, g in zip(ps, step_grads):
                p.grad = g.clone()
            opt.step()

    run(guard, params, grads[:12])
    saved, snapshot = copy.deepcopy(guard.state_dict()), [p.detach().clone() for p in params]
    run(guard, params, grads[12:])
    resumed = [s.clone().requires_grad_() for s in snapshot]
    guard2 = LBWGuard(torch.optim.AdamW(resumed, lr=1e-2), interval=3)
    guard2.load_state_dict(saved)
    run(guard2, resumed, grads[12:])
    assert max_diff(params, resumed) == 0.0 and guard2.scale == guard.scale


def test_lbw_guard_holds_its_scale_on_a_nonfinite_gradient(gen):
    p = torch.randn(8, generator=gen).requires_grad_()
    guard = LBWGuard(create("lion", [p], lr=1e-2), interval=1)
    for _ in range(3):
        p.grad = torch.randn(8, generator=gen)
        guard.step()
    scale = guard.scale
    p.grad = torch.full((8,), float("nan"))
    guard.step()  # the sensor reads NaN: κ is held and the base optimizer's skip policy leaves p alone
    assert guard.scale == scale and torch.isfinite(p).all()

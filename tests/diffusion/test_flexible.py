"""FlexMDM: the joint interpolant, the insertion loss, the network, the sampler and the retrofit."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from minidiff.diffusion import schedules
from minidiff.diffusion.flexible import FlexibleDiffusion, FlexMDM, FlexOutput, poisson_bregman
from minidiff.diffusion.sampling.flexible import FLEX_METHODS, sample_flexible
from minidiff.nn import Transformer
from minidiff.train import fit

PAD, MASK, V = 0, 3, 9  # ids 4..8 are tokens


def process(max_length: int = 16, **kw) -> FlexibleDiffusion:
    return FlexibleDiffusion(V, MASK, PAD, max_length=max_length, **kw)


def rows(n: int, length: int = 12, seed: int = 0) -> torch.Tensor:
    """``n`` rows of random tokens 4..8 with random lengths 1..length (PAD tail)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (n, length), generator=g)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    return torch.where(torch.arange(length)[None, :] < lengths[:, None], x, PAD)


def flexmdm(max_length: int = 16, head: str = "expected", seed: int = 0) -> FlexMDM:
    torch.manual_seed(seed)
    backbone = Transformer(
        vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=max_length + 1, time_conditioning=True
    )
    return FlexMDM(backbone, max_length, pad_id=PAD, head=head)


class StubFlex:
    """Random token logits and a constant expected gap count."""

    def __init__(self, gap: float = 1.0, seed: int = 0) -> None:
        self.gap, self.g = gap, torch.Generator().manual_seed(seed)

    def __call__(self, x, t, *, lengths):
        b, n = x.shape
        return FlexOutput(torch.randn(b, n, V, generator=self.g), torch.full((b, n + 1), self.gap))


class LengthOracle:
    """The exact FlexMDM for sequences of one repeated ``symbol`` whose length N follows ``mixture`` ({N: prob}).

    Each token is present at time t with probability p = β-present(t) (``insertion_schedule.alpha(t)``),
    independently, so the current length L ~ Binomial(N, p) and by Bayes P(N | L, t) ∝ π(N) C(N, L) p^L (1 - p)^(N-L).
    The present tokens are a uniformly random subset, so the L + 1 gaps are exchangeable and each holds
    E[N - L | L, t] / (L + 1) missing tokens in expectation: the minimiser of the insertion loss. (Mask states carry
    no information on N, so L is a sufficient statistic.) Token logits put all mass on ``symbol``.
    """

    def __init__(self, proc: FlexibleDiffusion, mixture: dict, symbol: int = 4, scale: float = 1.0) -> None:
        total = sum(mixture.values())
        self.proc, self.mixture, self.symbol, self.scale = (
            proc,
            {n: w / total for n, w in mixture.items()},
            symbol,
            scale,
        )

    def expected_missing(self, t: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        p = self.proc.insertion_schedule.alpha(t.double()).clamp(0.0, 1.0)
        L = lengths.double()
        num, den = torch.zeros_like(L), torch.zeros_like(L)
        for n, w in self.mixture.items():
            ok = L <= n
            log_binom = math.lgamma(n + 1) - torch.lgamma(L + 1) - torch.lgamma((n - L).clamp_min(0) + 1)
            pmf = torch.exp(log_binom + torch.xlogy(L, p) + torch.xlogy(n - L, 1 - p)) * ok
            num, den = num + w * pmf * (n - L), den + w * pmf
        return num / den.clamp_min(1e-300)

    def __call__(self, x, t, *, lengths):
        b, n = x.shape
        per_gap = self.scale * self.expected_missing(t, lengths) / (lengths.double() + 1)
        logits = torch.full((b, n, V), -30.0)
        logits[..., self.symbol] = 0.0
        return FlexOutput(logits, per_gap[:, None].expand(b, n + 1).float().contiguous())


def repeated(mixture: dict, n: int, seed: int = 0, symbol: int = 4) -> torch.Tensor:
    """``n`` rows of ``symbol`` with lengths drawn from ``mixture`` (PAD tail)."""
    sizes, probs = torch.tensor(list(mixture)), torch.tensor(list(mixture.values()), dtype=torch.float)
    lengths = sizes[
        torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    ]
    return torch.where(torch.arange(int(sizes.max()))[None, :] < lengths[:, None], symbol, PAD)


# ---------------------------------------------------------------- the interpolant
@pytest.mark.parametrize("pair", [(None, "linear"), ("linear", "linear"), ("linear", "cosine")])
@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_interpolant_marginals_match_the_schedules(pair, t):
    insertion, unmask = pair
    proc = process(insertion_schedule=insertion, unmask_schedule=unmask)
    x0 = torch.randint(4, V, (4000, 16))
    state = proc.corrupt(x0, t, generator=torch.Generator().manual_seed(0))
    present = state.lengths.sum().item() / x0.numel()
    clean = (state.z[state.z != PAD] != MASK).float().mean().item()
    want_present, want_clean = proc.marginals(t)
    assert present == pytest.approx(want_present.item(), abs=0.01)
    assert clean == pytest.approx(want_clean.item(), abs=0.01)


def test_marginals_match_the_closed_form_for_linear_schedules():
    """β(τ) = α(τ) = τ: P(clean | present) = E[(τ - s)/(1 - s) | s < τ] = 1 + (1 - τ) log(1 - τ) / τ."""
    proc = process(insertion_schedule="linear", unmask_schedule="linear")
    t = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64)
    present, clean = proc.marginals(t)
    tau = 1 - t
    torch.testing.assert_close(present, tau)
    torch.testing.assert_close(clean, 1 + (1 - tau) * torch.log(1 - tau) / tau, atol=1e-6, rtol=0)


def test_default_schedules_are_the_papers_sin_insertion_and_linear_unmasking():
    proc = process()
    tau = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(proc.insertion_schedule.alpha(1 - tau), torch.sin(math.pi * tau / 2))
    torch.testing.assert_close(proc.unmask_schedule.alpha(1 - tau), tau)


def test_gap_targets_sum_to_the_deleted_tokens_and_sit_between_the_right_survivors():
    x0 = rows(300)
    state = process().corrupt(x0, torch.rand(300, generator=torch.Generator().manual_seed(1)))
    valid = (x0 != PAD).sum(1)
    assert torch.equal(state.gaps.sum(1), valid - state.lengths)
    for b in range(300):
        n = int(state.lengths[b])
        kept = [-1, *state.source[b, :n].tolist(), int(valid[b])]
        assert state.gaps[b, : n + 1].tolist() == [hi - lo - 1 for lo, hi in zip(kept, kept[1:])]
        assert state.gaps[b, n + 1 :].sum() == 0


def test_packing_preserves_order_and_values():
    x0 = rows(300, seed=2)
    state = process().corrupt(x0, 0.5, generator=torch.Generator().manual_seed(2))
    for b in range(300):
        n = int(state.lengths[b])
        src = state.source[b, :n]
        assert bool((src[1:] > src[:-1]).all())
        assert torch.equal(state.targets[b, :n], x0[b, src])
        z = state.z[b, :n]
        assert torch.equal(z[z != MASK], x0[b, src][z != MASK])
        assert bool((state.z[b, n:] == PAD).all()) and bool((state.source[b, n:] == -1).all())


@pytest.mark.parametrize("t", [0.3, 0.9, 1.0])
def test_anchored_prompt_tokens_stay_in_order_and_are_never_deleted_or_masked(t):
    x0 = rows(200, seed=3)
    anchors = (torch.rand(x0.shape, generator=torch.Generator().manual_seed(3)) < 0.3) & (x0 != PAD)
    state = process().corrupt(x0, t, anchors=anchors, generator=torch.Generator().manual_seed(4))
    assert torch.equal(state.anchors.sum(1), anchors.sum(1))
    for b in range(200):
        kept = state.z[b][state.anchors[b]]
        assert torch.equal(kept, x0[b][anchors[b]])  # present, clean and in order
    if t == 1.0:  # fully noised: only the anchors are left
        assert torch.equal(state.lengths, anchors.sum(1))


def test_hitting_times_unmask_no_later_than_they_insert():
    delete, mask = process().hitting_times((2000,), generator=torch.Generator().manual_seed(0))
    assert bool((mask <= delete).all()) and bool(((delete >= 0) & (delete <= 1)).all())


# ---------------------------------------------------------------- the loss
def test_poisson_bregman_is_zero_exactly_at_the_target_and_positive_elsewhere():
    g = torch.tensor([0.0, 1.0, 3.0, 7.0])
    assert torch.equal(poisson_bregman(g, g.clone()), torch.zeros(4))
    for shift in (0.5, 2.0):
        assert bool((poisson_bregman(g, g * shift + 0.1) > 0).all())


def test_poisson_bregman_matches_hand_computed_values():
    got = poisson_bregman(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 0.5, 2.0]))
    want = torch.tensor([2 * math.log(2) - 1, 0.5, 1 - math.log(2)])
    torch.testing.assert_close(got, want)


def test_negative_counts_raise():
    with pytest.raises(ValueError, match="target gap counts must be non-negative"):
        poisson_bregman(torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="predicted gap counts must be non-negative"):
        poisson_bregman(torch.tensor([1.0]), torch.tensor([-0.5]))


def test_loss_at_t_one_is_the_hand_computed_insertion_term():
    """At t = 1 everything is deleted: one gap holding all L tokens, weight -β'/(1 - β) = π/2 (sin schedule)."""
    x0 = torch.tensor([[5, 6, 7, PAD]])
    loss, metrics = process().loss(StubFlex(gap=1.0), x0, t=1.0)
    want = (math.pi / 2) * (1 - 3 + 3 * math.log(3)) / 3
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert metrics["unmask"] == 0.0 and metrics["tokens"] == 3.0


def test_loss_is_the_sum_of_weighted_terms_on_the_drawn_state():
    proc, model, x0 = process(), StubFlex(gap=0.7), rows(8, seed=5)
    t = torch.full((8,), 0.4)
    loss, metrics = proc.loss(model, x0, t=t, generator=torch.Generator().manual_seed(7))
    state = proc.corrupt(x0, t, generator=torch.Generator().manual_seed(7))
    n = int(state.lengths.max())
    logits = StubFlex(gap=0.7).__call__(state.z[:, :n], t, lengths=state.lengths).logits
    logp = proc.log_probs(logits)
    ce = -logp.gather(-1, state.targets[:, :n, None]).squeeze(-1)
    masked = state.z[:, :n] == MASK
    unmask = (ce[masked] * proc.unmask_schedule.weight(0.4)).sum()
    open_gap = torch.arange(n + 1)[None, :] <= state.lengths[:, None]
    insert = (poisson_bregman(state.gaps[:, : n + 1].float(), torch.full((8, n + 1), 0.7))[open_gap]).sum()
    insert = insert * proc.insertion_schedule.weight(0.4)
    total = (x0 != PAD).sum()
    assert loss.item() == pytest.approx(((unmask + insert) / total).item(), rel=1e-5)
    assert metrics["unmask"] + metrics["insert"] == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("head", ["expected", "categorical"])
def test_loss_trains_with_fit_and_backpropagates_into_both_heads(head):
    model, proc = flexmdm(head=head), process()
    data = rows(64, seed=6)
    before = proc.loss(model, data, t=0.5, generator=torch.Generator().manual_seed(0))[0].item()
    fit(model, proc.loss, data, steps=30, batch_size=32, lr=3e-3, progress=False)
    after = proc.loss(model, data, t=0.5, generator=torch.Generator().manual_seed(0))[0].item()
    assert after < before
    grads = [p.grad is not None for p in model.insertion_head.parameters()]
    assert any(grads)


def test_categorical_head_loss_vanishes_when_it_predicts_the_targets():
    x0 = torch.tensor([[5, 6, 7, PAD]])

    class Certain:
        def __call__(self, x, t, *, lengths):
            b, n = x.shape
            logits = torch.full((b, n + 1, 17), -1e4)
            logits[:, 0, 3] = logits[:, 1:, 0] = 1e4  # all three tokens are in gap 0 at t = 1
            return FlexOutput(torch.zeros(b, n, V), torch.full((b, n + 1), 3.0), logits)

    assert process().loss(Certain(), x0, t=1.0)[0].item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- the network
def test_flexmdm_outputs_token_logits_and_one_gap_per_slot_plus_one():
    model = flexmdm()
    x = rows(3, length=10)
    out = model(x, torch.rand(3))
    assert out.logits.shape == (3, 10, V) and out.gap_counts.shape == (3, 11)
    assert bool((out.gap_counts >= 0).all())
    out = flexmdm(head="categorical")(x, torch.rand(3))
    assert out.gap_logits.shape == (3, 11, 17)


def test_flexmdm_ignores_the_pad_tail():
    model, t = flexmdm(), torch.tensor([0.3])
    x = torch.tensor([[5, MASK, 7]])
    wide = torch.tensor([[5, MASK, 7, PAD, PAD, PAD]])
    a, b = model(x, t), model(wide, t)
    torch.testing.assert_close(a.logits, b.logits[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.gap_counts, b.gap_counts[:, :4], atol=1e-5, rtol=1e-5)


def test_flexmdm_needs_a_time_conditioned_full_attention_backbone_long_enough():
    plain = Transformer(vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=17)
    with pytest.raises(ValueError, match="time-conditioned"):
        FlexMDM(plain, 16, pad_id=PAD)
    causal = Transformer(
        vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=17, time_conditioning=True, mask="causal"
    )
    with pytest.raises(ValueError, match="full attention"):
        FlexMDM(causal, 16, pad_id=PAD)
    short = Transformer(vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=16, time_conditioning=True)
    with pytest.raises(ValueError, match="max_length \\+ 1"):
        FlexMDM(short, 16, pad_id=PAD)
    with pytest.raises(ValueError, match="head must be one of"):
        FlexMDM(short, 8, pad_id=PAD, head="poisson")


def test_retrofit_keeps_the_trained_function_and_adds_the_heads():
    torch.manual_seed(0)
    mdm = Transformer(vocab_size=V, d_model=32, n_layers=2, n_heads=2, max_len=16)
    x = torch.randint(4, V, (2, 16))
    flex = FlexMDM.from_masked(mdm, 16, pad_id=PAD)
    assert not mdm.cfg.time_conditioning  # the original is copied, not changed
    assert flex.cfg.time_conditioning and flex.cfg.max_len == 17
    torch.testing.assert_close(flex.backbone(x, t=torch.rand(2)), mdm(x))
    assert flex(x, torch.rand(2)).gap_counts.shape == (2, 17)


def test_length_embedding_starts_as_the_plain_model_and_then_reads_the_length():
    plain = flexmdm()
    torch.manual_seed(0)
    backbone = Transformer(
        vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=17, time_conditioning=True
    )
    backbone.load_state_dict(plain.backbone.state_dict())
    with_len = FlexMDM(backbone, 16, pad_id=PAD, length_embedding=True)
    with_len.insertion_head.load_state_dict(plain.insertion_head.state_dict())
    x, t = rows(3, length=10), torch.rand(3)
    a, b = plain(x, t), with_len(x, t)  # zero-initialised: the same function
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.gap_counts, b.gap_counts)
    with torch.no_grad():
        with_len.length_embed.weight.normal_()
    lengths = (x != PAD).sum(1)
    moved = with_len(x, t, lengths=lengths)
    assert not torch.allclose(moved.gap_counts, a.gap_counts)
    # the embedding row used is the one of each row's length: zeroing it gives back the plain output
    with torch.no_grad():
        with_len.length_embed.weight[lengths] = 0.0
    torch.testing.assert_close(with_len(x, t, lengths=lengths).gap_counts, a.gap_counts)
    # and it is part of the checkpoint
    state = with_len.state_dict()
    assert "length_embed.weight" in state and "length_embed.weight" not in plain.state_dict()
    clone = FlexMDM(copy.deepcopy(backbone), 16, pad_id=PAD, length_embedding=True)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone(x, t).gap_counts, with_len(x, t).gap_counts)


def test_length_embedding_argument_is_checked_and_survives_the_retrofit():
    mdm = Transformer(vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=16)
    with pytest.raises(TypeError, match="length_embedding must be True or False"):
        FlexMDM.from_masked(mdm, 16, pad_id=PAD, length_embedding="yes")
    flex = FlexMDM.from_masked(mdm, 16, pad_id=PAD, length_embedding=True)
    x = torch.randint(4, V, (2, 16))
    torch.testing.assert_close(flex.backbone(x, t=torch.rand(2)), mdm(x))
    with pytest.raises(ValueError, match="lengths must lie in"):
        flex(x, torch.rand(2), lengths=torch.tensor([3, 17]))


# ---------------------------------------------------------------- the sampler
@pytest.mark.parametrize("method", FLEX_METHODS)
def test_sampler_never_exceeds_max_length_nor_leaves_masks(method):
    proc = process(max_length=12)
    tokens, trace = sample_flexible(
        StubFlex(gap=50.0),
        proc,
        batch_size=6,
        steps=8,
        method=method,
        generator=torch.Generator().manual_seed(0),
    )
    assert tokens.shape == (6, 12) and not bool((tokens == MASK).any())
    assert bool((trace.lengths <= 12).all()) and bool((trace.lengths[-1] == 12).all())
    assert not bool((trace.states[-1] == MASK).any())


@pytest.mark.parametrize("method", FLEX_METHODS)
def test_sampler_keeps_anchored_prompts_intact_wherever_they_sit(method):
    proc = process(max_length=20)
    prompt = torch.tensor([[5, 6, 7, PAD], [8, PAD, PAD, PAD], [4, 4, 5, 6]])
    tokens, trace = sample_flexible(
        StubFlex(gap=1.0), proc, prompt, steps=10, method=method, generator=torch.Generator().manual_seed(1)
    )
    for b in range(3):
        given = prompt[b][prompt[b] != PAD]
        assert torch.equal(tokens[b][trace.fixed[b]], given)
        for k in range(trace.n_steps + 1):  # at every step, in order
            assert torch.equal(trace.states[k, b][trace.anchor_states[k, b]], given)
    assert bool((trace.lengths[-1] > trace.lengths[0]).all())


def test_sampler_trace_records_the_growth():
    proc = process(max_length=16)
    tokens, trace = sample_flexible(StubFlex(gap=0.5), proc, batch_size=4, steps=12, method="tau_leaping",
                                    generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert torch.equal(trace.states[-1], tokens) and trace.nfe == 12
    assert torch.equal(trace.lengths[1:] - trace.lengths[:-1], trace.inserted_per_step())
    assert bool((trace.lengths[0] == 0).all())
    final = tokens != PAD
    assert bool((trace.insert_step[final] >= 0).all()) and bool(
        (trace.commit_step[final] >= trace.insert_step[final]).all()
    )
    assert trace.unmasked_per_step().sum() == final.sum()
    assert [len(s) for s in trace.sequences()] == trace.lengths[-1].tolist()
    assert bool((trace.masked_fraction()[-1] == 0).all())


def test_sampler_without_insertions_fills_given_masks_only():
    proc = process(max_length=8)
    prompt = (torch.tensor([[5, MASK, MASK, 6]]), torch.tensor([[True, False, False, True]]))
    tokens, trace = sample_flexible(
        StubFlex(gap=0.0), proc, prompt, steps=4, generator=torch.Generator().manual_seed(0)
    )
    assert trace.lengths[-1].item() == 4 and tokens[0, 0] == 5 and tokens[0, 3] == 6
    assert not bool((tokens[0, :4] == MASK).any()) and bool((tokens[0, 4:] == PAD).all())


# ---------------------------------------------------------------- bad input
def test_a_prompt_longer_than_max_length_raises():
    with pytest.raises(ValueError, match="longer than max_length=4"):
        sample_flexible(StubFlex(), process(max_length=4), torch.tensor([[5, 6, 7, 8, 5]]), steps=2)


def test_schedules_outside_the_unit_interval_raise():
    class Overshoot(schedules.Schedule):
        def _alpha(self, t):
            return 1.5 - t

        def _alpha_prime(self, t):
            return -torch.ones_like(t)

        def _t_of_alpha(self, a):
            return 1.5 - a

    with pytest.raises(ValueError, match=r"insertion_schedule must map \[0, 1\] into \[0, 1\]"):
        process(insertion_schedule=Overshoot())
    with pytest.raises(ValueError, match=r"unmask_schedule must map \[0, 1\] into \[0, 1\]"):
        process(unmask_schedule=Overshoot())
    with pytest.raises(ValueError, match="insertion_schedule must go from"):
        process(insertion_schedule=schedules.Cosine(eps=0.2))  # never empties: α(1) = 0.2
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        process().corrupt(rows(2), 1.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive int"),
        ({"method": "rk4"}, "method must be one of"),
        ({"temperature": -1}, "temperature must be"),
        ({"window": (5, 32)}, "window must be None"),
        ({}, "batch_size must be a positive int"),
    ],
)
def test_bad_sampler_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_flexible(StubFlex(), process(), **kwargs)


def test_bad_data_raises():
    proc = process(max_length=4)
    with pytest.raises(ValueError, match="exceed max_length=4"):
        proc.loss(StubFlex(), torch.full((1, 5), 5))
    with pytest.raises(ValueError, match="must not contain the mask token"):
        proc.loss(StubFlex(), torch.tensor([[5, MASK]]))
    with pytest.raises(ValueError, match="mask_id and pad_id must differ"):
        FlexibleDiffusion(V, MASK, MASK, max_length=4)


# ---------------------------------------------------------------- sampler variants, retrofit fine-tuning
def test_confidence_variant_unmasks_the_largest_margins_inside_the_window():
    from minidiff.diffusion.sampling.flexible import _confidence_pick

    probs = torch.full((1, 8, 4), 0.25)
    for i, top in enumerate([0.3, 0.9, 0.4, 0.95, 0.99, 0.5, 0.6, 0.97]):
        probs[0, i] = torch.tensor([top, (1 - top) / 3, (1 - top) / 3, (1 - top) / 3])
    masked = torch.ones(1, 8, dtype=torch.bool)
    masked[0, 3] = False  # not masked: never picked even though its margin is large
    g = torch.Generator().manual_seed(0)
    picks = [_confidence_pick(probs.log(), masked, 0.25, None, g) for _ in range(200)]
    for fire in picks:
        k = int(fire.sum())
        chosen = set(fire[0].nonzero().flatten().tolist())
        best = sorted([0, 1, 2, 4, 5, 6, 7], key=lambda i: -probs[0, i, 0])
        assert chosen == set(best[:k]) and 3 not in chosen
    counts = torch.tensor([float(p.sum()) for p in picks])
    assert counts.mean().item() == pytest.approx(7 * 0.25, abs=0.35)  # k ~ Poisson(n_masked · rate · dt)
    # window (factor 2, cap 2): for k <= 2 only the two leftmost masks compete -> 1 (0.9) beats 0 (0.3)
    windowed = [_confidence_pick(probs.log(), masked, 0.15, (2.0, 2), g) for _ in range(300)]
    assert any(int(fire.sum()) == 1 for fire in windowed)
    for fire in windowed:
        if int(fire.sum()) <= 2:
            assert set(fire[0].nonzero().flatten().tolist()) <= {0, 1}
        if int(fire.sum()) == 1:
            assert bool(fire[0, 1])


def test_euler_inserts_at_most_one_mask_per_gap_and_step():
    proc = process(max_length=64)
    _, trace = sample_flexible(StubFlex(gap=40.0), proc, torch.tensor([[5, 6]]), steps=6, method="euler",
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
    for k in range(trace.n_steps - 1):
        before = int(trace.lengths[k, 0])
        assert int(trace.inserted_per_step()[k, 0]) <= before + 1  # one per gap, before + 1 gaps


def test_insertion_rate_follows_the_predicted_gap_counts():
    """With a constant ĝ per gap and no cap, the expected final length grows with ĝ (Poisson insertions)."""
    proc = process(max_length=200)
    means = []
    for gap in (0.2, 1.0):
        _, trace = sample_flexible(StubFlex(gap=gap), proc, torch.full((40, 1), 5), steps=20,
                                   method="tau_leaping", generator=torch.Generator().manual_seed(0))  # fmt: skip
        means.append(trace.lengths[-1].float().mean().item())
    assert 1.0 < means[0] < means[1]


def test_retrofit_fine_tunes_a_trained_masked_model_into_a_flexible_one():
    from minidiff.diffusion import MaskedDiffusion

    torch.manual_seed(0)
    mdm = Transformer(vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=16)
    data = rows(64, seed=8)
    fit(mdm, MaskedDiffusion(V, MASK).loss, torch.where(data == PAD, 4, data), steps=20, batch_size=32,
        lr=3e-3, progress=False)  # fmt: skip
    flex, proc = FlexMDM.from_masked(mdm, 16, pad_id=PAD), process()
    embed = flex.backbone.embed.weight.detach().clone()
    torch.testing.assert_close(embed, mdm.embed.weight)  # starts from the trained weights
    g = torch.Generator().manual_seed(0)
    before = proc.loss(flex, data, t=torch.full((64,), 0.5), generator=g)[1]["insert"]
    fit(flex, proc.loss, data, steps=40, batch_size=32, lr=3e-3, progress=False)
    g = torch.Generator().manual_seed(0)
    after = proc.loss(flex, data, t=torch.full((64,), 0.5), generator=g)[1]["insert"]
    assert after < before
    tokens, trace = sample_flexible(flex, proc, batch_size=4, steps=8, generator=g)
    assert not bool((tokens == MASK).any()) and bool((trace.lengths[-1] <= 16).all())


# ---------------------------------------------------------------- sampler and loss against the exact model
MIXTURES = [{1: 0.5, 4: 0.5}, {2: 0.3, 6: 0.7}]


@pytest.mark.parametrize("mixture", MIXTURES, ids=["1-4", "2-6"])
@pytest.mark.parametrize("method", FLEX_METHODS)
def test_sampler_with_the_exact_model_reproduces_the_length_distribution(method, mixture):
    """Isolates the sampler from training: driven by the Bayes-exact ĝ (LengthOracle), the generated lengths
    follow the data's mixture (TV < 0.05 at 200 steps; discretisation error is first order in 1/steps). A wrong
    time direction, a missing schedule factor or a per-gap/total mix-up in the rate breaks this."""
    proc = process(max_length=max(mixture) + 2)
    _, trace = sample_flexible(LengthOracle(proc, mixture), proc, batch_size=1500, steps=200, method=method,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
    final = trace.lengths[-1]
    got = {int(n): float((final == n).float().mean()) for n in final.unique()}
    tv = 0.5 * sum(abs(got.get(n, 0.0) - mixture.get(n, 0.0)) for n in set(got) | set(mixture))
    assert tv < 0.05, got
    assert all(seq == [4] * len(seq) for seq in trace.sequences()[:50])


def test_sampler_with_a_mis_scaled_model_gets_the_lengths_wrong():
    """The check above can fail: the same oracle with ĝ doubled (or halved) moves the length distribution."""
    mixture = MIXTURES[0]
    proc = process(max_length=12)
    for scale in (0.5, 2.0):
        _, trace = sample_flexible(LengthOracle(proc, mixture, scale=scale), proc, batch_size=800, steps=100,
                                   method="tau_leaping", generator=torch.Generator().manual_seed(0))  # fmt: skip
        final = trace.lengths[-1]
        tv = 0.5 * sum(abs(float((final == n).float().mean()) - mixture.get(n, 0.0)) for n in range(13))
        assert tv > 0.15


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_gap_targets_average_to_the_bayes_expected_count(t):
    """Monte Carlo on the interpolant: given the current length L, the mean target of every gap is
    E[N - L | L, t] / (L + 1), the value LengthOracle predicts (so the Bregman loss's minimiser is the oracle)."""
    mixture = {2: 0.3, 6: 0.7}
    proc = process(max_length=8)
    state = proc.corrupt(repeated(mixture, 20000, seed=1), t, generator=torch.Generator().manual_seed(2))
    oracle = LengthOracle(proc, mixture)
    for length in range(7):
        rows_l = state.lengths == length
        if int(rows_l.sum()) < 400:
            continue
        want = oracle.expected_missing(torch.tensor([t]), torch.tensor([length])).item() / (length + 1)
        got = state.gaps[rows_l][:, : length + 1].float().mean(0)  # one mean per gap
        se = state.gaps[rows_l][:, : length + 1].float().std(0) / math.sqrt(int(rows_l.sum()))
        assert torch.all((got - want).abs() < 4 * se + 0.02), (length, got, want)


def test_insertion_loss_is_minimised_by_the_bayes_expected_count():
    """The full loss (random times, weights, gap indexing) with the exact model scaled by c is smallest at c = 1:
    loss(1) < loss(0.9) and loss(1.1) iff Σ w g / Σ w ĝ lies in (0.95, 1.05) (same interpolant draws for all c)."""
    mixture = {1: 0.5, 4: 0.5}
    proc, x0 = process(max_length=8), repeated(mixture, 8000, seed=3)
    losses = {}
    for scale in (0.9, 1.0, 1.1):
        g = torch.Generator().manual_seed(4)
        loss, metrics = proc.loss(LengthOracle(proc, mixture, scale=scale), x0, generator=g)
        assert metrics["unmask"] == pytest.approx(0.0, abs=1e-6)  # the token is certain
        losses[scale] = loss.item()
    assert losses[1.0] < losses[0.9] and losses[1.0] < losses[1.1], losses

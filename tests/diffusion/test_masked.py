import math

import pytest
import torch

from minidiff.data import Example, Vocab, to_batch
from minidiff.diffusion import MaskedDiffusion, MaskedOracle, schedules
from minidiff.nn import Transformer

from .conftest import MASK, all_mask_patterns, gauss_legendre


class PatternModel:
    """Logits that depend only on which positions of the row are masked: table[pattern, position, vocab]."""

    def __init__(self, seed: int = 0) -> None:
        self.table = torch.randn(4, 2, 4, generator=torch.Generator().manual_seed(seed))

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        pattern = (z[:, 0] == MASK).long() + 2 * (z[:, 1] == MASK).long()
        return self.table[pattern]


def exact_nelbo(process, model, x0: torch.Tensor, *, steps=None, low: float = 0.0) -> float:
    """NELBO of one sequence (nats, summed over positions): every mask pattern enumerated, t integrated exactly
    (Gauss-Legendre) or summed over the T-step grid."""
    patterns = all_mask_patterns(x0.numel())
    if steps is None:
        t, w = gauss_legendre(low, 1.0)
    else:
        t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        w = torch.full_like(t, 1.0 / steps)
    tt, mm = t.repeat_interleave(len(patterns)), patterns.repeat(len(t), 1)
    z = torch.where(mm, MASK, x0.expand_as(mm))
    per_token = (
        process.per_token_nelbo(model(z), x0.expand_as(z), z, tt.float(), steps=steps).double().sum(-1)
    )
    alpha = process.schedule.alpha(tt)[:, None]
    prob = torch.where(mm, 1 - alpha, alpha).prod(-1)
    return float((w.repeat_interleave(len(patterns)) * prob * per_token).sum())


def test_nelbo_matches_hand_computed_case():
    """V = 3, L = 2, α(t) = 1 - t: the masks {1}, {2} and {1, 2} each weigh 1/2 after integrating over t."""
    model, mdm = PatternModel(), MaskedDiffusion(4, MASK, "linear")
    x0 = torch.tensor([2, 0])
    logp = model.table.clone()
    logp[..., MASK] = -math.inf
    c = -logp.log_softmax(-1)  # c[pattern, i, v]
    by_hand = 0.5 * (c[1, 0, 2] + c[2, 1, 0]) + 0.5 * (c[3, 0, 2] + c[3, 1, 0])
    assert exact_nelbo(mdm, model, x0) == pytest.approx(float(by_hand), rel=1e-6)


def test_loss_is_an_unbiased_monte_carlo_estimate_of_the_nelbo():
    model, mdm = PatternModel(), MaskedDiffusion(4, MASK, "linear")  # t_eps = 1e-3: times on [1e-3, 1]
    x0 = torch.tensor([2, 0])
    expected = exact_nelbo(mdm, model, x0, low=1e-3) / (1 - 1e-3) / 2  # per token
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([mdm.loss(model, x0.expand(20000, 2), generator=gen)[0].item() for _ in range(8)])
    se = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - expected) < 4 * se + 1e-4


@pytest.mark.parametrize("name", ["linear", "square", "sqrt", "cosine", "loglinear", "geometric"])
def test_continuous_nelbo_does_not_depend_on_the_schedule(name):
    kwargs = {"eps": 0.0} if name in ("cosine", "loglinear") else {}
    if name == "geometric":  # α(0) = e^{-1e-10}, α(1) = e^{-40}: end points 1 and 0 to 1e-9
        kwargs = {"sigma_min": 1e-10, "sigma_max": 40.0}
    model, x0 = PatternModel(1), torch.tensor([1, 1])
    reference = exact_nelbo(MaskedDiffusion(4, MASK, "linear"), model, x0)
    value = exact_nelbo(MaskedDiffusion(4, MASK, schedules.get(name, **kwargs)), model, x0)
    assert value == pytest.approx(reference, rel=2e-4 if name == "geometric" else 1e-5)


def test_oracle_nelbo_equals_the_data_negative_log_likelihood(joint):
    oracle, mdm = MaskedOracle(joint, mask_id=MASK), MaskedDiffusion(4, MASK, "linear")
    for x, p in oracle.distribution().items():
        assert exact_nelbo(mdm, oracle, torch.tensor(x)) == pytest.approx(-math.log(p), rel=1e-5)


def test_discrete_time_nelbo_is_above_and_decreases_toward_the_continuous_one(joint):
    """Averaged over the data, with the oracle: L_1 (all tokens at once) ≥ L_2 ≥ ... → L_∞ = the data entropy."""
    oracle, mdm = MaskedOracle(joint, mask_id=MASK), MaskedDiffusion(4, MASK, "linear")
    data = oracle.distribution()

    def expected(steps):
        return sum(p * exact_nelbo(mdm, oracle, torch.tensor(x), steps=steps) for x, p in data.items())

    entropy = -sum(p * math.log(p) for p in data.values())
    assert expected(None) == pytest.approx(entropy, rel=1e-6)
    discrete = [expected(steps) for steps in (1, 2, 4, 16, 64, 256)]
    independent = -sum(p * math.log(joint[x[0]].sum() * joint[:, x[1]].sum()) for x, p in data.items())
    assert discrete[0] == pytest.approx(independent, rel=1e-5)  # one step: both tokens drawn independently
    assert all(a > b for a, b in zip(discrete, discrete[1:])) and discrete[-1] > entropy
    assert discrete[-1] - entropy < 0.01 * (discrete[0] - entropy)


def test_bound_matches_the_exact_nelbo_within_its_standard_error(joint):
    oracle, mdm = MaskedOracle(joint, mask_id=MASK), MaskedDiffusion(4, MASK, "linear")
    counts = {
        x: round(400 * p) for x, p in oracle.distribution().items()
    }  # a held-out set shaped like the data
    data = torch.tensor([x for x, n in counts.items() for _ in range(n)])

    def exact(**kw):
        return (
            sum(n * exact_nelbo(mdm, oracle, torch.tensor(x), **kw) for x, n in counts.items())
            / len(data)
            / 2
        )

    mean, se = mdm.bound(
        oracle, data, n_samples=6, batch_size=200, generator=torch.Generator().manual_seed(0)
    )
    assert se > 0 and abs(mean - exact(low=1e-3) / (1 - 1e-3)) < 4 * se + 1e-4
    mean4, se4 = mdm.bound(
        oracle, data, n_samples=6, steps=4, batch_size=200, generator=torch.Generator().manual_seed(1)
    )
    assert abs(mean4 - exact(steps=4)) < 4 * se4 + 1e-4 and exact(steps=4) > exact()


def test_subs_removes_the_mask_and_carries_unmasked_tokens_over():
    mdm = MaskedDiffusion(5, 4)
    z = torch.tensor([[4, 2, 4]])
    logp = mdm.log_probs(torch.randn(1, 3, 5), z)
    assert torch.isneginf(logp[..., 4]).all()
    assert logp[0, 1].exp().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    torch.testing.assert_close(logp[0, [0, 2]].exp().sum(-1), torch.ones(2))


def test_loss_ignores_logits_at_unmasked_positions_and_the_mask_logit():
    mdm, base = MaskedDiffusion(4, MASK), PatternModel(2)

    def perturbed(z):
        logits = base(z).clone()
        noise = 50 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(9))
        logits = torch.where((z != MASK)[..., None], noise, logits)  # anything at unmasked positions
        logits[..., MASK] += 7.0  # the mask logit is removed by SUBS
        return logits + torch.randn(*z.shape, 1)  # a constant per position cancels in the softmax

    x0 = torch.randint(0, 3, (64, 2), generator=torch.Generator().manual_seed(1))
    a = mdm.loss(base, x0, generator=torch.Generator().manual_seed(5))[0]
    b = mdm.loss(perturbed, x0, generator=torch.Generator().manual_seed(5))[0]
    torch.testing.assert_close(a, b)


def test_corrupt_masks_at_rate_one_minus_alpha_and_never_touches_fixed_positions(gen):
    mdm = MaskedDiffusion(10, 3, "cosine")
    x0 = torch.full((4000, 8), 5)
    fixed = torch.zeros_like(x0, dtype=torch.bool)
    fixed[:, :2] = True
    z = mdm.corrupt(x0, 0.6, fixed=fixed, generator=gen)
    assert bool((z[:, :2] == 5).all())
    rate = (z[:, 2:] == 3).double().mean().item()
    assert rate == pytest.approx(1 - mdm.schedule.alpha(0.6), abs=0.01)
    assert bool(((z == 3) | (z == 5)).all())


def _task_batch() -> tuple:
    vocab = Vocab(["a", "b", "c"])
    examples = [Example([4, 5], [6, 6, 4]), Example([5], [4]), Example([6, 6, 6], [5, 5])]
    return vocab, to_batch(examples, vocab, length=9)


def test_loss_on_a_batch_scores_answer_eos_and_pad_but_never_the_prompt(tiny_model):
    vocab, batch = _task_batch()
    mdm = MaskedDiffusion(12, vocab.mask_id)
    loss, metrics = mdm.loss(tiny_model, batch, t=1.0)  # t = 1: everything not fixed is masked
    assert metrics["tokens"] == float((~batch.prompt_mask).sum()) and metrics["noised_frac"] > 0.99
    loss, metrics = MaskedDiffusion(12, vocab.mask_id, include_pad=False).loss(tiny_model, batch, t=1.0)
    assert metrics["tokens"] == float(batch.answer_mask.sum())
    assert torch.isfinite(loss)


def test_a_prompt_mask_on_a_plain_tensor_acts_like_a_batch_prompt(tiny_model):
    vocab, batch = _task_batch()
    mdm = MaskedDiffusion(12, vocab.mask_id)
    a = mdm.loss(tiny_model, batch, generator=torch.Generator().manual_seed(0))
    b = mdm.loss(
        tiny_model, batch.tokens, prompt_mask=batch.prompt_mask, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(a[0], b[0])
    assert a[1] == b[1]
    with pytest.raises(ValueError, match="carries its own"):
        mdm.loss(tiny_model, batch, prompt_mask=batch.prompt_mask)


def test_loss_works_as_fit_loss_function(tiny_model):
    from minidiff.train import fit

    vocab, batch = _task_batch()
    mdm = MaskedDiffusion(12, vocab.mask_id)
    history = fit(tiny_model, mdm.loss, batch, steps=3, batch_size=4, lr=1e-3, progress=False)
    assert len(history) == 3 and all(math.isfinite(v) for v in history.loss)
    assert "noised_frac" in history.extra and history.tokens[-1] > 0


def test_time_conditioned_models_receive_the_sampled_times():
    seen = []
    model = Transformer(vocab_size=8, d_model=32, n_layers=1, n_heads=2, max_len=16, time_conditioning=True)
    inner = model.forward
    model.forward = lambda x, t=None: seen.append(t) or inner(x, t=t)
    mdm = MaskedDiffusion(8, 3)
    t = torch.tensor([0.2, 0.7])
    loss, _ = mdm.loss(model, torch.randint(4, 8, (2, 6)), t=t)
    assert torch.isfinite(loss) and torch.equal(seen[0], t)


def test_t_per_position_is_accepted(tiny_model, gen):
    mdm = MaskedDiffusion(12, 3)
    t = torch.linspace(0.05, 1.0, 6).expand(5, 6)
    z = mdm.corrupt(torch.full((5, 6), 7), t, generator=gen)
    assert bool((z[:, -1] == 3).all())
    loss, _ = mdm.loss(tiny_model, torch.full((5, 6), 7), t=t)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("bad_t", [1.5, -0.2, [0.5, 2.0]])
def test_times_outside_the_unit_interval_are_rejected(tiny_model, bad_t):
    mdm = MaskedDiffusion(12, 3)
    x0 = torch.full((2, 4), 5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        mdm.loss(tiny_model, x0, t=bad_t)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        mdm.corrupt(x0, bad_t)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (lambda z: torch.zeros(z.shape[0], z.shape[1]), r"\[B, L, V\]"),
        (lambda z: torch.zeros(z.shape[0], z.shape[1], 7), r"\[2, 4, 12\]"),
        (lambda z: torch.zeros(z.shape[0], z.shape[1] + 1, 12), r"got \(2, 5, 12\)"),
    ],
)
def test_a_model_returning_the_wrong_shape_is_rejected(model, match):
    with pytest.raises(ValueError, match=match):
        MaskedDiffusion(12, 3).loss(model, torch.full((2, 4), 5))


def test_other_bad_inputs_give_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="mask_id"):
        MaskedDiffusion(4, 4)
    with pytest.raises(ValueError, match="unknown schedule"):
        MaskedDiffusion(4, 3, "cosin")
    with pytest.raises(ValueError, match="must not contain the mask token"):
        MaskedDiffusion(12, 3).loss(tiny_model, torch.full((2, 4), 3))
    with pytest.raises(ValueError, match="integer tensor"):
        MaskedDiffusion(12, 3).loss(tiny_model, torch.zeros(2, 4))
    with pytest.raises(TypeError, match="Batch"):
        MaskedDiffusion(12, 3).loss(tiny_model, [[1, 2]])
    with pytest.raises(ValueError, match="n_samples"):
        MaskedDiffusion(12, 3).bound(tiny_model, torch.full((2, 4), 5), n_samples=1)

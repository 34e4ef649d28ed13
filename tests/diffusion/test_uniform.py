import itertools
import math

import pytest
import torch

from minidiff.diffusion import UniformDiffusion, UniformOracle, denoise

from .conftest import gauss_legendre


def exact_uniform_nelbo(process, model, x0: torch.Tensor, *, steps=None, nodes: int = 200) -> float:
    """NELBO of one sequence (nats, summed over positions): every noisy z enumerated, t integrated by quadrature
    (or summed over the T-step grid)."""
    zs = torch.tensor(list(itertools.product(process.states.tolist(), repeat=x0.numel())))  # [M, L]
    if steps is None:
        t, w = gauss_legendre(0.0, 1.0, nodes)
    else:
        t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        w = torch.full_like(t, 1.0 / steps)
    tt, zz = t.repeat_interleave(len(zs)), zs.repeat(len(t), 1)
    xx = x0.expand_as(zz)
    logits = denoise(model, zz, tt.float())
    per_token = process.per_token_nelbo(logits, xx, zz, tt.float(), steps=steps).double().sum(-1)
    alpha = process.schedule.alpha(tt)[:, None]
    prob = (alpha * (zz == xx) + (1 - alpha) / process.n_states).prod(-1)
    return float((w.repeat_interleave(len(zs)) * prob * per_token).sum())


class FixedModel:
    """Logits that depend on the noisy tokens but not on t: table[z^i] at every position."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        self.table = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed))

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.table[z]


def test_corrupt_keeps_with_alpha_and_redraws_uniformly_without_the_mask(gen):
    process = UniformDiffusion(10, "linear", mask_id=3)  # K = 9 states
    z = process.corrupt(torch.full((60000, 1), 5), 0.4, generator=gen).flatten()
    freq = torch.bincount(z, minlength=10).double() / z.numel()
    assert freq[3] == 0
    assert freq[5].item() == pytest.approx(0.6 + 0.4 / 9, abs=0.01)
    assert freq[[0, 1, 2, 4, 6, 7, 8, 9]].tolist() == pytest.approx([0.4 / 9] * 8, abs=0.006)


def test_posterior_is_bayes_rule_for_clean_tokens_and_normalised_for_probabilities():
    process, k = UniformDiffusion(4), 4
    alpha_t, alpha_s = 0.3, 0.7
    r = alpha_t / alpha_s
    for x, z in itertools.product(range(k), repeat=2):
        q_t_given_s = torch.tensor([r * (z == j) + (1 - r) / k for j in range(k)], dtype=torch.float64)
        q_s_given_x = torch.tensor(
            [alpha_s * (x == j) + (1 - alpha_s) / k for j in range(k)], dtype=torch.float64
        )
        bayes = q_t_given_s * q_s_given_x / (q_t_given_s * q_s_given_x).sum()
        onehot = torch.nn.functional.one_hot(torch.tensor([[x]]), k).double()
        torch.testing.assert_close(
            process.posterior(onehot, torch.tensor([[z]]), alpha_t, alpha_s)[0, 0], bayes
        )
    probs = torch.softmax(torch.randn(2, 3, k, dtype=torch.float64), -1)
    q = process.posterior(
        probs, torch.randint(0, k, (2, 3)), torch.tensor([0.2, 0.5]), torch.tensor([0.6, 1.0])
    )
    torch.testing.assert_close(q.sum(-1), torch.ones(2, 3, dtype=torch.float64))


def test_closed_form_nelbo_is_the_score_entropy_written_out():
    """Duo's expanded formula against (β/K)[K/f_θ(z) - K/f*(z) + Σ_y (f*_y/f*_z) log(f*_y f_θ,z / (f*_z f_θ,y))]."""
    k, process = 5, UniformDiffusion(5, "cosine")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, k, generator=gen)
    x0, z = torch.randint(0, k, (4, 6), generator=gen), torch.randint(0, k, (4, 6), generator=gen)
    z[:, :3] = x0[:, :3]  # both cases: z_t = x and z_t ≠ x
    t = torch.tensor([0.1, 0.4, 0.7, 0.95])
    alpha = process.schedule.alpha(t.double())[:, None, None]
    beta = (-process.schedule.alpha_prime(t.double()) / process.schedule.alpha(t.double()))[:, None]
    f_star = k * alpha * torch.nn.functional.one_hot(x0, k) + (1 - alpha)
    f_theta = k * alpha * logits.double().softmax(-1) + (1 - alpha)
    fz_star, fz_theta = f_star.gather(-1, z[..., None]), f_theta.gather(-1, z[..., None])
    ratio = f_star / fz_star
    direct = (beta / k) * (
        k / fz_theta.squeeze(-1)
        - k / fz_star.squeeze(-1)
        + (ratio * (ratio * fz_theta / f_theta).log()).sum(-1)
    )
    torch.testing.assert_close(
        process.per_token_nelbo(logits, x0, z, t).double(), direct, rtol=1e-5, atol=1e-6
    )


def test_closed_form_nelbo_is_the_limit_of_the_discrete_time_elbo():
    """V = 3, L = 1: the T-step sum of posterior KLs converges to the closed-form continuous NELBO."""
    process, model = UniformDiffusion(3, "linear"), FixedModel(3)
    for x in range(3):
        continuous = exact_uniform_nelbo(process, model, torch.tensor([x]))
        coarse = exact_uniform_nelbo(process, model, torch.tensor([x]), steps=100)
        fine = exact_uniform_nelbo(process, model, torch.tensor([x]), steps=2000)
        assert abs(fine - continuous) < 0.2 * abs(coarse - continuous) + 1e-6
        assert fine == pytest.approx(continuous, rel=2e-3)


def test_oracle_nelbo_equals_the_data_entropy(joint):
    """V = 3, L = 2: with the exact denoiser the continuous-time bound is tight (up to the dropped prior term)."""
    process = UniformDiffusion(3)  # log-linear, α(1) = 1e-3
    oracle = UniformOracle(joint, process)
    data = oracle.distribution()
    expected = sum(p * exact_uniform_nelbo(process, oracle, torch.tensor(x)) for x, p in data.items())
    entropy = -sum(p * math.log(p) for p in data.values())
    assert expected == pytest.approx(entropy, abs=3e-3)
    # a model that ignores the other position is strictly worse
    wrong = sum(p * exact_uniform_nelbo(process, FixedModel(3), torch.tensor(x)) for x, p in data.items())
    assert wrong > entropy + 0.05


def test_uniform_loss_and_bound_run_on_a_transformer(tiny_model):
    process = UniformDiffusion(12, mask_id=3)
    x0 = torch.randint(4, 12, (8, 10), generator=torch.Generator().manual_seed(0))
    loss, metrics = process.loss(tiny_model, x0)
    assert torch.isfinite(loss) and loss > 0 and metrics["tokens"] == 80
    loss.backward()
    mean, se = process.bound(tiny_model, x0, n_samples=3, steps=16)
    assert math.isfinite(mean) and se >= 0


def test_uniform_bad_inputs_give_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="excluded mask_id=3"):
        UniformDiffusion(12, mask_id=3).loss(tiny_model, torch.full((2, 4), 3))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        UniformDiffusion(12).corrupt(torch.full((2, 4), 5), 1.01)
    with pytest.raises(ValueError, match="mask_id"):
        UniformDiffusion(12, mask_id=12)

import math

import numpy as np
import pytest
import torch

from minidiff.diffusion import schedules
from minidiff.diffusion.schedules import sample_times, times_for_mask_rates

NAMES = schedules.available()


def test_registry_has_the_six_schedules():
    assert set(NAMES) >= {"loglinear", "linear", "cosine", "square", "sqrt", "geometric"}


@pytest.mark.parametrize("name", NAMES)
def test_alpha_runs_from_one_to_zero_and_decreases(name):
    s = schedules.get(name)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    alpha = s.alpha(t)
    assert alpha[0] == pytest.approx(1.0, abs=2e-4) and alpha[-1] == pytest.approx(0.0, abs=2e-3)
    assert bool((alpha[1:] <= alpha[:-1]).all())


@pytest.mark.parametrize("name", NAMES)
def test_alpha_prime_matches_finite_differences(name):
    s = schedules.get(name)
    t = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
    h = 1e-6
    numeric = (s.alpha(t + h) - s.alpha(t - h)) / (2 * h)
    torch.testing.assert_close(s.alpha_prime(t), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_weight_is_minus_alpha_prime_over_one_minus_alpha(name):
    s = schedules.get(name)
    t = torch.linspace(0.01, 1.0, 100, dtype=torch.float64)
    torch.testing.assert_close(s.weight(t), -s.alpha_prime(t) / (1 - s.alpha(t)), rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_t_of_alpha_inverts_alpha(name):
    s = schedules.get(name)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(s.t_of_alpha(s.alpha(t)), t, rtol=1e-6, atol=1e-9)


def test_loglinear_is_mdlm_default_with_weight_one_over_t():
    s = schedules.get("loglinear")
    assert s.eps == 1e-3
    assert s.alpha(1.0) == pytest.approx(1e-3)
    assert s.weight(0.25) == pytest.approx(4.0)


def test_schedules_accept_floats_numpy_and_tensors_and_keep_their_kind():
    s = schedules.get("cosine")
    assert isinstance(s.alpha(0.3), float)
    grid = np.linspace(0, 1, 5)
    assert isinstance(s.alpha(grid), np.ndarray) and s.alpha(grid).shape == (5,)
    t32 = torch.rand(3, 4)
    assert s.alpha(t32).dtype == torch.float32 and s.alpha(t32).shape == (3, 4)
    assert s(0.3) == s.alpha(0.3)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_t_outside_unit_interval_is_rejected(bad):
    s = schedules.get("loglinear")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        s.alpha(bad)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        s.weight(torch.tensor([0.5, bad]))


def test_unknown_schedule_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'.*loglinear"):
        schedules.get("cosin")


def test_register_extends_the_registry_and_refuses_duplicates():
    schedules.register("test-quartic", lambda **kw: schedules.Polynomial(4.0, **kw))
    try:
        assert schedules.get("test-quartic").alpha(0.5) == pytest.approx(1 - 0.5**4)
        with pytest.raises(ValueError, match="already registered"):
            schedules.register("test-quartic", schedules.LogLinear)
    finally:
        schedules._REGISTRY.pop("test-quartic")


def test_schedule_keyword_arguments_reach_the_constructor():
    assert schedules.get("loglinear", eps=0.0).alpha(1.0) == 0.0
    with pytest.raises(ValueError, match="eps"):
        schedules.get("cosine", eps=1.5)


def test_antithetic_times_put_one_draw_in_each_stratum(gen):
    t = sample_times(16, generator=gen, eps=0.0)
    strata = torch.floor(t.sort().values * 16)
    assert strata.tolist() == list(range(16))


def test_times_respect_clipped_range_and_eps(gen):
    t = sample_times((8, 4), generator=gen, low=0.3, high=0.8)
    assert t.shape == (8, 4) and bool(((t >= 0.3) & (t <= 0.8)).all())
    t = sample_times(1000, generator=gen, antithetic=False)
    assert float(t.min()) >= 1e-3


def test_beta_times_have_the_beta_mean_and_follow_the_generator():
    draw = lambda: sample_times(20000, generator=torch.Generator().manual_seed(3), beta=(2.0, 6.0), eps=0.0)
    t = draw()
    assert float(t.mean()) == pytest.approx(0.25, abs=0.01)
    assert torch.equal(t, draw())


def test_mask_rate_range_becomes_a_time_range():
    low, high = times_for_mask_rates("linear", 0.3, 0.8)
    assert (low, high) == (pytest.approx(0.3), pytest.approx(0.8))
    low, high = times_for_mask_rates("square", 0.25, 0.81)
    assert (low, high) == (pytest.approx(0.5), pytest.approx(0.9))


@pytest.mark.parametrize(
    "kwargs", [{"low": 0.9, "high": 0.2}, {"high": 1.5}, {"eps": 1.0}, {"beta": (0.0, 1.0)}, {"beta": (1.0,)}]
)
def test_bad_time_sampling_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        sample_times(4, **kwargs)

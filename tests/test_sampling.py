import math

import pytest
import torch

from minidiff.sampling import filter_logits, gumbel_noise, sample_categorical


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.81))
    assert kept.tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).sum() == 1


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[False, True, True, False]]


def test_gumbel_max_samples_follow_softmax():
    probs = torch.tensor([0.6, 0.3, 0.1])
    gen = torch.Generator().manual_seed(0)
    draws = sample_categorical(probs.log().expand(20000, 3), generator=gen)
    freq = torch.bincount(draws, minlength=3).double() / 20000
    # chi-square with 2 dof; 13.8 is the 0.999 quantile
    chi2 = (20000 * (freq - probs.double()) ** 2 / probs.double()).sum()
    assert chi2 < 13.8


def test_temperature_zero_is_argmax_and_gumbel_is_float64():
    logits = torch.randn(5, 7)
    assert torch.equal(sample_categorical(logits, temperature=0), logits.argmax(-1))
    g = gumbel_noise((1000,), generator=torch.Generator().manual_seed(1))
    assert g.dtype == torch.float64
    assert abs(g.mean().item() - 0.5772) < 0.1  # Euler-Mascheroni constant
    assert math.isfinite(g.max().item())


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"top_p": 0.0}, "top_p"), ({"top_k": 0}, "top_k"), ({"temperature": -1}, "temperature")],
)
def test_bad_arguments_are_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        sample_categorical(torch.zeros(2, 3), **kw)

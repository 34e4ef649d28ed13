"""Specifications of minidiff.analysis.spectra."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from minidiff.analysis.spectra import (
    SpectrumRecorder,
    UpdateProbe,
    bucket_ranks,
    covariance_eigenvalues,
    fit_rank_exponent,
    frequency_buckets,
    hard_rank,
    momentum_spectrum,
    singular_values,
    soft_rank,
    spectral_ranks,
    stable_rank,
)
from minidiff.nn.transformer import Transformer
from minidiff.optim import create
from minidiff.optim.groups import hybrid


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_stable_rank_of_known_matrices(gen):
    assert stable_rank(torch.eye(7)) == pytest.approx(7.0)
    u, v = torch.randn(9, 1, generator=gen), torch.randn(1, 4, generator=gen)
    assert stable_rank(u @ v) == pytest.approx(1.0, rel=1e-9)
    assert stable_rank(torch.diag(torch.tensor([2.0, 1.0, 1.0]))) == pytest.approx(1.5)
    assert stable_rank(torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(1.5)  # from singular values
    assert stable_rank(torch.zeros(3, 3)) == 0.0


def test_singular_values_are_descending_float64_and_flatten_conv_kernels(gen):
    s = singular_values(torch.randn(5, 3, 2, 2, generator=gen))
    assert s.dtype == torch.float64 and s.shape == (5,) and bool((s[:-1] >= s[1:]).all())


def test_soft_and_hard_rank_on_constructed_spectra():
    assert soft_rank([4, 1, 1, 1, 1]) == pytest.approx(4.0, abs=1e-3)
    assert hard_rank([4, 1, 1, 1, 1]) == pytest.approx(3.2)
    for k in (1, 3, 10):
        assert soft_rank([2.5] * k) == pytest.approx(k) and hard_rank([2.5] * k) == pytest.approx(k)


def test_ranks_of_sampled_representations_approach_the_population_values(gen):
    H = torch.randn(2000, 5, generator=gen) * torch.tensor(
        [2.0, 1, 1, 1, 1]
    )  # covariance diag(4, 1, 1, 1, 1)
    ranks = spectral_ranks(H)
    assert ranks["soft"] == pytest.approx(4.0, abs=0.2) and ranks["hard"] == pytest.approx(3.2, abs=0.2)
    assert covariance_eigenvalues(torch.zeros(10, 3)).min() == pytest.approx(1e-12)


def test_frequency_buckets_cut_at_a_third_and_two_thirds_of_the_occurrences():
    buckets = frequency_buckets([50, 20, 10, 8, 6, 4, 2])
    assert buckets["head"].tolist() == [0] and buckets["mid"].tolist() == [1]
    assert buckets["tail"].tolist() == [2, 3, 4, 5, 6]
    skewed = frequency_buckets([1, 97, 1, 1])  # one token holds everything: buckets still non-empty
    assert skewed["head"].tolist() == [1] and len(skewed["mid"]) == 1 and len(skewed["tail"]) == 2


def test_bucket_ranks_group_rows_by_their_input_token(gen):
    tokens = torch.tensor([0] * 50 + [1] * 50 + [2] * 50)
    H = torch.cat([torch.randn(50, 4, generator=gen) * s for s in (torch.tensor([1.0, 0, 0, 0]), 1.0, 1.0)])
    ranks = bucket_ranks(H, tokens, counts=[60, 30, 10])
    assert ranks["head"]["hard"] == pytest.approx(1.0, abs=1e-6) and ranks["head"]["n"] == 50
    assert ranks["tail"]["hard"] > 2.5
    assert math.isnan(bucket_ranks(H, tokens, counts=[60, 30, 10], min_samples=100)["mid"]["soft"])


def test_rank_exponent_fit_recovers_a_power_law():
    widths = [64, 128, 256, 512]
    beta, A = fit_rank_exponent(widths, [3 * w**0.8 for w in widths])
    assert beta == pytest.approx(0.8, abs=1e-9) and A == pytest.approx(3.0, rel=1e-9)


def test_update_probe_records_exactly_the_parameter_change(gen):
    W = torch.randn(8, 4, generator=gen, requires_grad=True)
    opt = create("muon", [W], lr=0.05)
    probe = UpdateProbe({"W": W})
    probe.attach(opt)
    before = W.detach().clone()
    W.grad = torch.randn(8, 4, generator=gen)
    opt.step()
    assert torch.equal(probe.updates["W"], W.detach() - before) and probe.steps == 1
    probe.detach()
    with probe:  # the context-manager form works around any step
        before = W.detach().clone()
        opt.step()
    assert torch.equal(probe.updates["W"], W.detach() - before) and probe.steps == 2


def test_momentum_spectrum_reads_the_buffer_by_key_through_a_composed_optimizer(gen):
    model = Transformer(vocab_size=8, d_model=16, n_layers=1, n_heads=2, max_len=4)
    opt = hybrid("muon", model)
    qkv = model.blocks[0].qkv.weight
    assert momentum_spectrum(opt, qkv) is None  # no state yet
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    opt.step()
    expected = singular_values(opt.children["matrix"].state[qkv]["momentum_buffer"])
    assert torch.equal(momentum_spectrum(opt, qkv), expected)
    assert momentum_spectrum(opt, model.embed.weight) is not None  # AdamW's exp_avg


def test_spectrum_recorder_during_fit_is_json_able_and_sees_muon_flat_updates():
    from minidiff.train import fit

    torch.manual_seed(0)
    model = Transformer(vocab_size=16, d_model=16, n_layers=1, n_heads=2, max_len=8, mask="causal")
    data = torch.randint(0, 16, (32, 8), generator=torch.Generator().manual_seed(1))
    recorder = SpectrumRecorder(model, kinds=("update", "gradient", "weight", "momentum"), every=2, top_k=4)

    def loss(m, x):
        return F.cross_entropy(m(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())

    fit(
        model,
        loss,
        data,
        steps=6,
        batch_size=8,
        clip=None,
        progress=False,
        optimizer=lambda params: recorder.attach(hybrid("muon", model, matrix_lr=0.02, adam_lr=3e-3)),
    )
    record = json.loads(json.dumps(recorder.to_dict()))
    assert record["steps"] == [2, 4, 6]
    assert record["layers"] == [
        "blocks.0.qkv.weight",
        "blocks.0.attn_out.weight",
        "blocks.0.gate_up.weight",
        "blocks.0.down.weight",
    ]
    series = record["singular_values"]["update"]["blocks.0.attn_out.weight"]
    assert len(series) == 3 and all(len(s) == 4 for s in series)
    # Muon with lr 0.02: every singular value of the update ≈ 0.02·σ(NS), inside the quintic's band
    assert all(0.02 * 0.6 < v < 0.02 * 1.2 for s in series for v in s)
    assert all(
        r > 8 for r in record["stable_rank"]["update"]["blocks.0.attn_out.weight"]
    )  # 16×16: flat spectrum
    assert record["singular_values"]["momentum"]["blocks.0.qkv.weight"][0] is not None


def test_recorder_and_probe_validate_their_arguments():
    model = Transformer(vocab_size=8, d_model=16, n_layers=1, n_heads=2, max_len=4)
    with pytest.raises(ValueError, match="kinds"):
        SpectrumRecorder(model, kinds=("curvature",))
    with pytest.raises(ValueError, match="unknown parameter names"):
        UpdateProbe(model, layers=["blocks.9.qkv.weight"])
    with pytest.raises(ValueError, match="spectra need matrices"):
        SpectrumRecorder(model, layers=["norm.weight"])

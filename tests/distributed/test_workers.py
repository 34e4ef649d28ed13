"""The run_workers worker functions: data-parallel character-LM training and distributed Muon's division of work."""

from __future__ import annotations

import pytest
import torch

from minidiff.distributed import run_workers
from minidiff.distributed.workers import CharLMSetup, muon_division, train_char_lm
from minidiff.optim import available, create

pytestmark = pytest.mark.distributed
available()  # import every optimizer module here, so forked workers inherit them

TINY = CharLMSetup(d_model=32, n_layers=1, n_heads=2, seq_len=16, batch_size=4, val_batches=1)


def test_onebit_adam_sends_less_than_a_float32_allreduce_and_ranks_agree():
    ranks = run_workers(train_char_lm, 2, "onebit_adam", 6, {"lr": 3e-3, "freeze_step": 2}, TINY)
    assert ranks[0]["history"].loss == ranks[1]["history"].loss  # the curve is the mean over ranks
    assert ranks[0]["val_loss"] == ranks[1]["val_loss"]  # replicas stay identical
    assert 0 < ranks[0]["bytes_sent"] < ranks[0]["bytes_uncompressed"]


def test_plain_optimizers_get_their_gradients_averaged_in_float32():
    ranks = run_workers(train_char_lm, 2, "adamw", 3, {"lr": 3e-3}, TINY)
    assert ranks[0]["bytes_sent"] == ranks[0]["bytes_uncompressed"] > 0
    assert ranks[0]["history"].step == [1, 2, 3] and ranks[0]["val_loss"] == ranks[1]["val_loss"]
    assert ranks[0]["history"].evals == [{"step": 3, "val_loss": ranks[0]["val_loss"]}]


def test_one_process_trains_without_communication():
    result = train_char_lm(0, 1, "adamw", 2, {"lr": 3e-3}, TINY)
    assert result["bytes_sent"] == 0 and len(result["history"]) == 2


def test_muon_division_deals_each_matrix_to_one_rank_and_equals_single_process_muon():
    setup = CharLMSetup(d_model=32, n_layers=3, n_heads=2, seq_len=16, batch_size=4)
    hparams = {"lr": 0.02}
    ranks = run_workers(muon_division, 2, 2, hparams, setup)
    names = ranks[0]["names"]
    assert sorted(ranks[0]["owned"] + ranks[1]["owned"]) == sorted(names)
    assert not set(ranks[0]["owned"]) & set(ranks[1]["owned"])
    assert (
        len(ranks[0]["owned"]) == 8 and len(ranks[1]["owned"]) == 4
    )  # shape groups of 3: rank 0 gets 2 of each
    params = [t.clone() for t in ranks[0]["initial"]]
    single = create("muon", params, **hparams)
    for grads in ranks[0]["grads"]:
        for p, g in zip(params, grads):
            p.grad = g
        single.step()
    for a, b, c in zip(params, ranks[0]["final"], ranks[1]["final"]):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_workers_reject_bad_arguments():
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        train_char_lm(0, 1, "adamw", 0)
    with pytest.raises(TypeError, match="setup must be a CharLMSetup"):
        muon_division(0, 1, 1, None, {"d_model": 32})

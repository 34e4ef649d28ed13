"""The optimizer benchmark: speedup arithmetic, cached and resumable runs, the sweep protocol, bad inputs."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch

from minidiff.train import bench_presets
from minidiff.train.bench import ModelSize, RunConfig, load_model, recipe, run_one
from minidiff.train.bench_report import cli, rank_flips, ranking_changes, speedup_table, text_table
from minidiff.train.bench_spectral import SpectralSetup, ffn_activations, spectral_scaling
from minidiff.train.bench_speedup import fit_power_law, monotone_losses, speedup, tokens_to_reach
from minidiff.train.bench_sweep import BenchResult, Preset, _LRSearch, get_preset, sweep

D = np.array([1.0, 2.0, 4.0, 8.0])
ADAMW = 0.4 * D**-0.5 + 3  # the notes' worked example: 3.4, 3.282843, 3.2, 3.141421
MICRO = ModelSize("d8", 8, n_layers=1, n_heads=2)


def micro_preset(**changes) -> Preset:
    """The CI preset reduced further: one one-layer model of 1k non-embedding parameters."""
    return dataclasses.replace(
        get_preset("tiny", fast=True), **{"name": "micro", "sizes": (MICRO,), **changes}
    )


def micro_config(**changes) -> RunConfig:
    base = dict(optimizer="adamw", size=MICRO, tokens=40 * 4 * 16, lr=1e-2, batch_size=4, seq_len=16)
    return RunConfig(**{**base, "eval_points": 4, "curve_windows": 8, "val_windows": 32, **changes})


# ------------------------------------------------------------------------------------------- speedup
def test_power_law_fit_recovers_the_worked_example():
    law = fit_power_law(D, ADAMW, d_ref=1.0)
    assert law.alpha == pytest.approx(0.4, abs=1e-6)
    assert law.exponent == pytest.approx(0.5, abs=1e-6)
    assert law.floor == pytest.approx(3.0, abs=1e-6)
    np.testing.assert_allclose(ADAMW, [3.4, 3.282843, 3.2, 3.141421], atol=1e-6)


def test_adamw_given_a_quarter_more_tokens_has_speedup_one_point_two_five_everywhere():
    faster = 0.4 * (1.25 * D) ** -0.5 + 3
    for d, loss in zip(D, faster):
        s = speedup(D, ADAMW, d, loss, method="fit")
        assert s.value == pytest.approx(1.25, abs=1e-6)
    assert speedup(D, ADAMW, 8.0, faster[-1], method="fit").flag == "extrapolated"  # D_eff = 10 > 8


@pytest.mark.parametrize("method", ["interp", "fit"])
def test_reaching_adamws_loss_at_twice_the_tokens_is_speedup_two(method):
    s = speedup(D, ADAMW, 2.0, ADAMW[2], method=method)  # AdamW's loss at D = 4, reached with D = 2
    assert (s.value, s.d_eff, s.flag) == (pytest.approx(2.0, abs=1e-6), pytest.approx(4.0, abs=1e-6), "ok")
    assert str(s) == "2.00"


def test_interpolation_is_linear_in_log_tokens():
    d_eff, flag = tokens_to_reach([1.0, 4.0], [3.0, 2.0], 2.5)
    assert (d_eff, flag) == (pytest.approx(2.0), "ok")


def test_a_noisy_adamw_curve_is_made_monotone_before_reading_it():
    np.testing.assert_allclose(monotone_losses([3.0, 2.9, 2.95, 2.8]), [3.0, 2.925, 2.925, 2.8])
    d_eff, _ = tokens_to_reach([1.0, 2.0, 4.0, 8.0], [3.0, 2.9, 2.95, 2.8], 2.925)
    assert d_eff == pytest.approx(2.0)  # the first budget reaching the pooled loss


def test_losses_outside_adamws_range_are_flagged_never_extrapolated():
    better = speedup(D, ADAMW, 4.0, 3.0)  # below every AdamW loss
    assert (better.flag, math.isnan(better.value), better.bound) == ("above", True, 2.0)
    assert str(better) == "> 2.00"
    worse = speedup(D, ADAMW, 2.0, 3.5)  # above AdamW's smallest-budget loss
    assert (worse.flag, math.isnan(worse.value), worse.bound) == ("below", True, 0.5)
    assert str(worse) == "< 0.50"
    at_floor = speedup(D, ADAMW, 4.0, 2.9, method="fit")  # at or below the fitted floor β = 3
    assert (at_floor.flag, at_floor.bound) == ("above", math.inf)
    diverged = speedup(D, ADAMW, 1.0, math.nan)
    assert diverged.flag == "below"


def test_speedup_rejects_bad_inputs():
    with pytest.raises(ValueError, match="method must be one of"):
        speedup(D, ADAMW, 1.0, 3.3, method="spline")
    with pytest.raises(ValueError, match="needs at least 3 budgets"):
        fit_power_law([1.0, 2.0], [3.4, 3.3])
    with pytest.raises(ValueError, match="at least 2 budgets"):
        speedup([1.0], [3.4], 1.0, 3.3)


# ------------------------------------------------------------------------------------------- configs, bad input
def test_config_key_is_stable_and_changes_with_any_setting():
    a = micro_config(hparams={"beta1": 0.9, "weight_decay": 0.1})
    b = micro_config(hparams={"weight_decay": 0.1, "beta1": 0.9})
    assert a.key == b.key and len(a.key) == 16
    assert micro_config(lr=2e-2).key != micro_config().key
    assert micro_config(seed=1).key != micro_config().key
    assert RunConfig.from_dict(a.to_dict()) == a


def test_chinchilla_budget_counts_non_embedding_parameters():
    size = ModelSize("d64", 64, n_layers=2, n_heads=2)  # d_ff = 192
    assert size.n_nonembedding == 2 * (3 * 64 * 192 + 4 * 64 * 64) == 106_496
    assert size.chinchilla_tokens(0.5) == 10 * 106_496


def test_budget_smaller_than_one_batch_is_an_error():
    with pytest.raises(ValueError, match=r"tokens must be at least one batch \(batch_size · seq_len = 512"):
        RunConfig("adamw", MICRO, tokens=100, lr=1e-3, batch_size=8, seq_len=64)
    with pytest.raises(ValueError, match="budget of size 'd8' at ratio 0.001 .* smaller than one batch"):
        micro_preset(ratios=(0.001, 0.5))


def test_unknown_optimizer_names_list_the_accepted_ones():
    with pytest.raises(ValueError, match="unknown optimizer 'adamz'.*adamw.*muon"):
        recipe("adamz")
    with pytest.raises(ValueError, match="unknown optimizer 'adamz'"):
        sweep(micro_preset(), ["adamw", "adamz"], "unused")


def test_empty_sweeps_are_errors(tmp_path):
    with pytest.raises(ValueError, match="optimizers must name at least one"):
        sweep(micro_preset(), [], tmp_path)
    for field in ("sizes", "ratios", "lr_factors", "seeds"):
        with pytest.raises(ValueError, match=f"{field} must not be empty"):
            micro_preset(**{field: ()})
    with pytest.raises(ValueError, match="baseline 'adamw' must be among the optimizers"):
        sweep(micro_preset(), ["muon"], tmp_path)
    with pytest.raises(ValueError, match="preset must be one of"):
        get_preset("huge")


def test_every_recipe_builds_and_steps():
    from minidiff.nn import Transformer

    model = Transformer(vocab_size=11, d_model=8, n_layers=1, n_heads=2, max_len=8, mask="causal")
    for name in ("adamw", "ademamix", "muon", "d-muon", "soap", "lion", "normuon", "sgd_clip"):
        r = recipe(name)
        opt = r.build(model, r.lr, dict(r.defaults), 10)
        model(torch.randint(11, (2, 8))).square().mean().backward()
        opt.step()
        opt.zero_grad()


def test_lr_search_grows_past_the_edge_holding_the_best_loss():
    search = _LRSearch(1e-2, (0.5, 1.0, 2.0), max_extend=2)
    for _ in range(4):
        for lr in search.pending():
            search.losses[lr] = -lr  # larger is always better
        if not search.extend():
            break
    assert search.lrs == [5e-3, 1e-2, 2e-2, 4e-2, 8e-2]  # two extensions, then it stops
    assert search.best == 8e-2


# ------------------------------------------------------------------------------------------- runs and cache
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    config = micro_config()
    whole = run_one(config, tmp_path / "a")
    assert run_one(config, tmp_path / "b", stop_after=15) is None
    assert (tmp_path / "b" / f"{config.key}.ckpt.pt").exists()
    resumed = run_one(config, tmp_path / "b")
    assert resumed["val_loss"] == whole["val_loss"]
    assert resumed["curve"] == whole["curve"]
    assert not (tmp_path / "b" / f"{config.key}.ckpt.pt").exists()


def test_a_cached_run_is_read_not_retrained(tmp_path):
    config = micro_config()
    first = run_one(config, tmp_path)
    path = tmp_path / f"{config.key}.json"
    stamp = path.stat().st_mtime_ns
    assert run_one(config, tmp_path) == first
    assert path.stat().st_mtime_ns == stamp
    assert json.loads(path.read_text())["config"] == config.to_dict()


def test_a_diverging_run_is_recorded_not_raised(tmp_path):
    result = run_one(micro_config(optimizer="lion", lr=1e6, clip=None), tmp_path)
    assert result["diverged"] in (
        True,
        False,
    )  # Lion's sign update cannot overflow: a huge LR may stay finite
    result = run_one(micro_config(optimizer="sgd_clip", lr=1e30, clip=None), tmp_path)
    assert result["diverged"] and math.isnan(result["val_loss"])


@pytest.fixture(scope="module")
def micro_sweep(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench")
    return sweep(micro_preset(), None, cache, progress=False), cache


def test_micro_preset_yields_a_well_formed_table(micro_sweep):
    result, _ = micro_sweep
    finals = result.finals()
    assert {(r["optimizer"], r["ratio"]) for r in finals} == {
        ("adamw", 0.125), ("adamw", 0.25), ("adamw", 0.5), ("adamw", 1.0), ("muon", 0.25), ("muon", 0.5)
    }  # fmt: skip
    assert all(math.isfinite(r["val_loss"]) for r in finals)
    summary = result.summary()
    assert len(summary) == 6 and {"loss_mean", "speedup_text", "lr"} <= set(summary[0])
    speedups = result.speedups()
    assert [(r["optimizer"], r["ratio"]) for r in speedups] == [("muon", 0.25), ("muon", 0.5)]
    assert all(r["paired"] and r["flag"] in ("ok", "above", "below") for r in speedups)
    assert set(result.headline()) == {"adamw", "muon"}
    assert "adamw" in text_table(summary) and "muon" in text_table(summary, "speedup")
    assert all(isinstance(c["changed"], bool) for c in ranking_changes(finals))
    assert all(f["score"] > 0 for f in rank_flips(result.runs))


def test_results_round_trip_through_json_and_csv(micro_sweep, tmp_path):
    result, _ = micro_sweep
    paths = result.save(tmp_path)
    assert sorted(p.name for p in paths) == ["results.json", "runs.csv", "speedups.csv", "summary.csv"]
    header = (tmp_path / "runs.csv").read_text().splitlines()[0].split(",")
    assert {"optimizer", "size", "ratio", "tokens", "seed", "lr", "val_loss", "final"} <= set(header)
    loaded = BenchResult.load(tmp_path / "results.json")
    assert loaded.summary() == result.summary()


def test_an_interrupted_sweep_continues_to_the_same_table(micro_sweep):
    result, cache = micro_sweep
    removed = sorted(cache.glob("*.json"))[::2]
    for path in removed:
        path.unlink()
    again = sweep(micro_preset(), None, cache, progress=False)
    assert again.trained == len(removed)
    assert again.summary() == result.summary()


def test_the_command_line_ends_with_one_json_line(micro_sweep, monkeypatch, capsys, tmp_path):
    _, cache = micro_sweep  # the same runs: read from the cache, not retrained
    monkeypatch.setattr(bench_presets, "_FAST_TINY", micro_preset())
    monkeypatch.setitem(bench_presets.PRESETS, "tiny", micro_preset())
    figures = cli(["--preset", "tiny", "--out", str(tmp_path), "--cache", str(cache), "--no-progress"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == figures
    assert set(figures["muon"]) >= {"speedup", "lr", "spread"}
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "plots.html").exists()


def test_the_speedup_table_has_a_line_per_cell_with_the_tuned_lr(micro_sweep):
    result, _ = micro_sweep
    summary = result.summary()
    lines = speedup_table(summary).splitlines()
    assert lines[0].split()[:4] == ["size", "ratio", "tokens", "optimizer"] and "tuned lr" in lines[0]
    body = [line.split() for line in lines[2:] if line]
    # AdamW's budgets that no other optimizer ran (0.125x, 1x) are left out; the others have both optimizers
    assert [(b[1], b[3]) for b in body] == [
        ("0.25x", "adamw"),
        ("0.25x", "muon"),
        ("0.5x", "adamw"),
        ("0.5x", "muon"),
    ]
    muon = {r["ratio"]: r for r in summary if r["optimizer"] == "muon"}[0.25]
    line = [x for x in lines if " muon " in x][0]
    assert body[0][7] == "baseline" and f" {muon['speedup_text']} " in line
    lr = f"{muon['lr']:.3g}" + (
        "*" if muon["lr_edge"] else ""
    )  # max_extend=0: the best LR may sit on an edge
    assert line.split()[-3:] == [lr, "momentum", f"{muon['second_value']}"]
    with pytest.raises(ValueError, match="baseline 'sgd' is not among"):
        speedup_table(summary, "sgd")


def test_the_command_line_rejects_bad_input_before_training(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli(["--help"])
    assert exit_info.value.code == 0 and "--preset" in capsys.readouterr().out
    bad = {
        "adamw,adamz": "unknown optimizer 'adamz'; the benchmark accepts: .*adamw",
        ",": "optimizers must name at least one",
        "muon": "baseline 'adamw' must be among",
    }
    for optimizers, message in bad.items():
        with pytest.raises(SystemExit) as exit_info:
            cli(["--optimizers", optimizers, "--out", str(tmp_path)])
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err)
    with pytest.raises(SystemExit):
        cli(["--workers", "0", "--out", str(tmp_path)])
    assert "--workers must be a positive int" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was trained or written


# ------------------------------------------------------------------------------------------- spectral
def test_ffn_activations_are_swiglus_post_activation():
    from minidiff.nn import Transformer

    model = Transformer(vocab_size=11, d_model=8, n_layers=2, n_heads=2, d_ff=24, max_len=8, mask="causal")
    windows = torch.randint(11, (5, 9), generator=torch.Generator().manual_seed(0))
    gate_up = []
    hook = model.blocks[1].gate_up.register_forward_hook(lambda m, args, out: gate_up.append(out))
    layers, tokens = ffn_activations(model, windows, chunk=2)
    hook.remove()
    assert [tuple(h.shape) for h in layers] == [(40, 24), (40, 24)]
    assert torch.equal(tokens, windows[:, :-1].flatten())
    gate, up = torch.cat(gate_up).flatten(0, 1).chunk(2, dim=-1)  # [40, 24] each
    torch.testing.assert_close(layers[1], torch.nn.functional.silu(gate) * up)


def test_spectral_scaling_fits_an_exponent_per_optimizer_and_bucket(tmp_path):
    setup = SpectralSetup(
        d_model=8, widths=(1, 2), tokens=2048, n_layers=1, seeds=(0,), samples=2048, batch_size=4, seq_len=16
    )
    result = spectral_scaling(setup, cache_dir=tmp_path, progress=False)
    assert {(r["optimizer"], r["d_ff"]) for r in result.rows} == {
        (o, w) for o in ("adamw", "muon") for w in (8, 16)
    }
    assert {(e["bucket"], e["kind"]) for e in result.exponents} == {
        (b, k) for b in ("all", "head", "mid", "tail") for k in ("soft", "hard")
    }
    assert all(math.isfinite(e["beta"]) for e in result.exponents)
    assert set(result.tail_hard_betas()) == {"adamw", "muon"}
    config = RunConfig("adamw", setup.size(2), 2048, recipe("adamw").lr, recipe("adamw").defaults,
                       batch_size=4, seq_len=16, val_windows=512)  # fmt: skip
    assert load_model(config, tmp_path).blocks[0].down.in_features == 16

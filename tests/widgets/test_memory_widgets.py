"""widgets.memory: block-wise quantisation explorer, 1-bit compression player, map and ownership figures."""

import json

import numpy as np
import pytest
import torch

from minidiff.optim.quantize import create_dynamic_map, dequantize_blockwise, quantize_blockwise
from widgets.memory import (
    CompressionPlayer,
    QuantizationExplorer,
    gram_tiles_figure,
    linear_map,
    newton_schulz_flops,
    ownership_figure,
    program_blocks_figure,
    quantization_map_figure,
)


def _state_like(n: int = 3000, seed: int = 0) -> torch.Tensor:
    """Positive values spread over ~8 decades, with a scale that grows along the tensor (like Adam's v)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.exp(2 * torch.randn(n, generator=gen)) * torch.logspace(-6, 0, n)


# --------------------------------------------------------------------------------------------- QuantizationExplorer
def test_explorer_starts_at_the_papers_block_size_with_the_dynamic_map():
    widget = QuantizationExplorer(_state_like(), block_sizes=[64, 256, 2048])
    assert widget.params == {"block_size": [64, 256, 2048], "map": ["dynamic", "linear"]}
    assert widget.defaults == {"block_size": 2048, "map": "dynamic"}
    assert widget.figure().layout.title.text.startswith("dynamic map, B = 2048")


def test_explorer_errors_are_those_of_the_library_quantiser():
    x = _state_like()
    widget = QuantizationExplorer(x, block_sizes=[256])
    code = create_dynamic_map(signed=False)
    q, absmax = quantize_blockwise(x, code, 256)
    x_tilde = dequantize_blockwise(q, absmax, code, 256).double()
    stats = widget.stats[(256, "dynamic")]
    expected = float((x_tilde - x.double()).norm() / x.double().norm())
    assert stats["rel_l2"] == pytest.approx(expected, rel=1e-6)
    assert len(stats["median"]) == len(stats["absmax"]) == 12  # ⌈3000 / 256⌉ blocks
    np.testing.assert_allclose(stats["floor"], absmax.double().numpy() * float(code[1]), rtol=1e-6)


def test_a_linear_map_flushes_small_values_that_the_dynamic_map_keeps():
    widget = QuantizationExplorer(_state_like(), block_sizes=[2048])
    dynamic, linear = widget.stats[(2048, "dynamic")], widget.stats[(2048, "linear")]
    assert dynamic["flushed"] < 0.05 < 0.5 < linear["flushed"]
    assert np.nanmedian(dynamic["median"]) < 0.1 < np.nanmedian(linear["median"])


def test_smaller_blocks_track_a_growing_scale_better():
    widget = QuantizationExplorer(_state_like(), block_sizes=[64, 2048])
    assert widget.stats[(64, "dynamic")]["flushed"] <= widget.stats[(2048, "dynamic")]["flushed"]
    assert np.nanmean(widget.stats[(64, "linear")]["median"]) < np.nanmean(
        widget.stats[(2048, "linear")]["median"]
    )


def test_signed_input_gets_signed_maps():
    x = torch.randn(500, generator=torch.Generator().manual_seed(1))
    widget = QuantizationExplorer(x, block_sizes=[128])
    assert float(widget.maps["dynamic"].min()) < 0 and float(widget.maps["linear"].min()) == -1.0


def test_explorer_static_face_is_small_json_with_a_slider_per_map():
    fig = QuantizationExplorer(_state_like(20_000), max_points=2000).static()
    assert len(fig.layout.sliders) == 2 and len(fig.layout.sliders[0].steps) == 7
    assert len(fig.to_json()) < 1_500_000
    json.loads(fig.to_json())


def test_explorer_live_slider_changes_the_title():
    box = QuantizationExplorer(_state_like(), block_sizes=[64, 2048]).live()
    box.controls["block_size"].value = 64
    assert "B = 64" in box.figure_widget.layout.title.text


def test_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="block_sizes must be positive ints"):
        QuantizationExplorer(_state_like(), block_sizes=[0])
    with pytest.raises(ValueError, match=r"maps\['tiny'\] must hold 256 values"):
        QuantizationExplorer(_state_like(), maps={"tiny": torch.linspace(0, 1, 16)})
    with pytest.raises(ValueError, match="x must be a non-empty array of finite numbers"):
        QuantizationExplorer(torch.tensor([1.0, float("nan")]))


# --------------------------------------------------------------------------------------------- CompressionPlayer
def _runs(T: int = 50, n: int = 6):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(T, n))
    sent = np.sign(signal) * np.sqrt((signal**2).mean(1, keepdims=True))
    return {
        "with feedback": {"signal": signal, "sent": sent, "distance": np.geomspace(1, 1e-2, T)},
        "without": {"signal": signal, "sent": 0.5 * sent, "distance": np.ones(T)},
    }


def test_player_owes_the_running_sum_of_what_was_not_sent():
    runs = _runs()
    player = CompressionPlayer(runs)
    owed = player.runs["without"]["error"]
    np.testing.assert_allclose(owed[9], (runs["without"]["signal"] - runs["without"]["sent"])[:10].sum(0))


def test_player_draws_the_chosen_step_and_run():
    runs = _runs()
    player = CompressionPlayer(runs, reference={"uncompressed": np.geomspace(1, 1e-3, 50)}, steps=[1, 10, 50])
    fig = player.figure(step=10, run="without")
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    np.testing.assert_allclose(bars["sent (RMS·sign)"].y, runs["without"]["sent"][9])
    curves = [t.name for t in fig.data if t.type == "scatter"]
    assert curves == ["with feedback", "without", "uncompressed"]
    assert fig.layout.title.text == "without · step 10"


def test_player_default_steps_are_log_spaced_within_the_run_and_static_face_has_a_slider_per_run():
    player = CompressionPlayer(_runs(T=300))
    steps = player.params["step"]
    assert steps[0] == 1 and steps[-1] == 300 and len(steps) <= 15
    fig = player.static()
    assert len(fig.layout.sliders) == 2 and [b.label for b in fig.layout.updatemenus[0].buttons] == [
        "with feedback",
        "without",
    ]


def test_player_rejects_bad_runs():
    with pytest.raises(ValueError, match="runs must be a non-empty mapping"):
        CompressionPlayer({})
    with pytest.raises(ValueError, match=r"runs\['a'\] lacks \['distance'\]"):
        CompressionPlayer({"a": {"signal": np.ones((2, 2)), "sent": np.ones((2, 2))}})
    with pytest.raises(ValueError, match="steps must lie in"):
        CompressionPlayer(_runs(T=10), steps=[0, 5])


# --------------------------------------------------------------------------------------------- plain figures
def test_map_figure_counts_the_dynamic_maps_values_per_decade():
    fig = quantization_map_figure({"dynamic": create_dynamic_map(signed=True), "linear": linear_map()})
    dynamic_bars = [t for t in fig.data if t.type == "bar" and t.name == "dynamic"][0]
    # 2^i midpoints per sign in decade 10^(i-7)..10^(i-6) for i = 0..6, then the value 1 (0 is not counted)
    assert list(dynamic_bars.y) == [0, 2, 4, 8, 16, 32, 64, 128, 1]
    assert sum(dynamic_bars.y) == 255


def test_ownership_figure_totals_each_ranks_newton_schulz_work():
    shapes = [(64, 192), (64, 64), (64, 192)]
    fig = ownership_figure(["a", "b", "c"], shapes, [0, 1, 0])
    totals = {t.x[0]: t.y[0] for t in fig.data if t.type == "bar" and t.orientation != "h"}
    assert totals["rank 0"] == pytest.approx(2 * newton_schulz_flops((64, 192)) / 1e6)
    assert totals["rank 1"] == pytest.approx(newton_schulz_flops((64, 64)) / 1e6)
    assert newton_schulz_flops((192, 64)) == 5 * (4 * 64 * 64 * 192 + 2 * 64**3)
    with pytest.raises(ValueError, match="names, shapes and owners must be non-empty and of one length"):
        ownership_figure(["a"], shapes, [0])


def test_program_blocks_figure_masks_exactly_the_lanes_past_the_end():
    fig = program_blocks_figure(1000, 256)
    (heatmap,) = fig.data
    active = np.asarray(heatmap.z)
    assert active.shape == (4, 256)
    assert active[:3].all() and active[3].sum() == 1000 - 3 * 256
    assert np.asarray(heatmap.customdata)[3, 231] == 999
    assert "24 lanes masked" in fig.layout.annotations[3].text
    with pytest.raises(ValueError, match="n and block must be positive ints"):
        program_blocks_figure(0, 256)


def test_gram_tiles_figure_computes_the_upper_triangle_of_tiles():
    fig = gram_tiles_figure(96, 32)
    kind = np.asarray(fig.data[0].z)
    assert kind.shape == (3, 3)
    assert (np.diag(kind) == 1).all() and (kind[np.triu_indices(3, 1)] == 2).all()
    assert (kind[np.tril_indices(3, -1)] == 0).all()
    assert "6 of 9 programs compute" in fig.layout.title.text
    labels = {(a.y, a.x): a.text for a in fig.layout.annotations}
    assert len(labels) == 9 and labels[(0, 2)] == "computes,<br>stores ᵀ at (2, 0)"
    assert labels[(2, 0)].startswith("returns at once") and labels[(1, 1)] == "computes"
    assert len(gram_tiles_figure(4096, 128).layout.annotations) == 0  # 32×32 tiles: too many to label

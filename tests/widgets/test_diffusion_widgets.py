"""widgets.schedules.ScheduleExplorer and widgets.sampling.SamplingOrderPlayer."""

import json
import math

import numpy as np
import pytest
import torch

from minidiff.diffusion import (
    MaskedDiffusion,
    MaskedOracle,
    sample_ancestral,
    sample_confidence,
    sample_remdm,
)
from minidiff.diffusion import schedules as registry
from minidiff.diffusion.sampling.trace import Trace
from widgets.sampling import SamplingOrderPlayer, written_steps
from widgets.schedules import ScheduleExplorer

MASK = 3
SEQUENCE = "to be or not to be"


# ---------------------------------------------------------------------------------------------- ScheduleExplorer
def _masked_cells(fig) -> np.ndarray:
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    return np.asarray(heat.z, dtype=float).ravel()


def test_explorer_grid_is_times_by_schedules_with_t_nearest_half_by_default():
    ex = ScheduleExplorer(SEQUENCE, schedules=["loglinear", "cosine"], times=[0.0, 0.3, 0.6, 1.0])
    assert ex.params == {"t": [0.0, 0.3, 0.6, 1.0], "schedule": ["loglinear", "cosine"]}
    assert ex.data_params == ["t", "schedule"] and ex.defaults["t"] == 0.6


def test_explorer_curves_are_the_library_schedules():
    ex = ScheduleExplorer(SEQUENCE, schedules=["loglinear", "geometric"])
    fig = ex.figure(t=0.3, schedule="geometric")
    geo = registry.get("geometric")
    alpha = [t for t in fig.data if t.name == "geometric" and t.yaxis == "y"][0]
    np.testing.assert_allclose(alpha.y, geo.alpha(np.asarray(alpha.x)), rtol=1e-6)
    weight = [t for t in fig.data if t.name == "loglinear" and t.yaxis == "y2"][0]
    np.testing.assert_allclose(weight.y, 1 / np.asarray(weight.x), rtol=1e-6)  # log-linear: w = 1/t
    dot = [t for t in fig.data if t.type == "scatter" and t.mode == "markers" and t.yaxis == "y"][0]
    assert dot.x[0] == 0.3 and math.isclose(dot.y[0], float(geo.alpha(0.3)), rel_tol=1e-6)
    assert "α(t) = " + f"{float(geo.alpha(0.3)):.3f}" in fig.layout.title.text


def test_explorer_masks_are_nested_in_t_and_the_count_matches_the_title():
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    ex = ScheduleExplorer(SEQUENCE, schedules=["loglinear", "cosine"], times=times)
    for schedule in ("loglinear", "cosine"):
        previous = None
        for t in times:
            fig = ex.figure(t=t, schedule=schedule)
            cells = _masked_cells(fig)
            masked = cells[~np.isnan(cells)] == 1
            assert f"{masked.sum()} of {len(SEQUENCE)} tokens masked" in fig.layout.title.text
            if previous is not None:
                assert (masked >= previous).all()  # once masked, masked at every later t
            previous = masked
        assert _masked_cells(ex.figure(t=0.0, schedule=schedule))[: len(SEQUENCE)].sum() == 0
    # the same uniforms for every schedule: equal α ⇒ equal masks; here loglinear masks more at t = 0.5
    low = _masked_cells(ex.figure(t=0.5, schedule="cosine"))
    high = _masked_cells(ex.figure(t=0.5, schedule="loglinear"))
    assert (np.nan_to_num(high) >= np.nan_to_num(low)).all()


def test_explorer_uniform_process_redraws_tokens_without_a_mask():
    ex = ScheduleExplorer(SEQUENCE, process="uniform", times=[0.0, 1.0])
    fig = ex.figure(t=1.0, schedule="loglinear")
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    shown = [s for row in heat.text for s in row if s]
    assert "·" not in shown and set(shown) <= {ex_s if ex_s != " " else "␣" for ex_s in SEQUENCE}
    assert "changed" in fig.layout.title.text
    k = len(
        set(SEQUENCE)
    )  # a redraw lands on the same symbol with probability 1/K: expected changes L(1-α)(1-1/K)
    mean = [t for t in fig.data if t.name == "loglinear" and t.yaxis == "y3"][0]
    expected = len(SEQUENCE) * registry.get("loglinear").mask_rate(np.asarray(mean.x)) * (1 - 1 / k)
    np.testing.assert_allclose(mean.y, expected, rtol=1e-6)


def test_explorer_static_face_has_a_slider_and_a_schedule_row_and_stays_small():
    ex = ScheduleExplorer(SEQUENCE, schedules=["loglinear", "cosine", "square"], times=[0.0, 0.5, 1.0])
    fig = ex.static()
    sliders = fig.layout.sliders  # one t slider per schedule button, the chosen one visible
    assert [len(s.steps) for s in sliders] == [3, 3, 3] and sum(s.visible is not False for s in sliders) == 1
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["loglinear", "cosine", "square"]
    assert len(fig.to_json()) < 1_500_000
    json.loads(fig.to_json())


def test_explorer_live_face_redraws_on_a_new_schedule():
    box = ScheduleExplorer(SEQUENCE, times=[0.0, 0.5, 1.0]).live()
    assert set(box.controls) == {"t", "schedule"}
    box.controls["schedule"].value = "cosine"
    assert box.figure_widget.layout.title.text.startswith("cosine")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedules": ["loglinear", "nope"]}, "schedules must be distinct names"),
        ({"times": [0.0, 1.5]}, r"times must be at least two increasing values in \[0, 1\]"),
        ({"process": "absorbing"}, "process must be 'masked' or 'uniform'"),
        ({"wrap": 2}, "wrap must be an int >= 4"),
        ({"alphabet": ["t", "o"]}, "alphabet must contain every symbol"),
    ],
)
def test_explorer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScheduleExplorer(SEQUENCE, **kwargs)


def test_explorer_rejects_a_sequence_too_long():
    with pytest.raises(ValueError, match="sequence must be a string or a list of 1 to 128 symbols"):
        ScheduleExplorer("x" * 129)


# ---------------------------------------------------------------------------------------------- SamplingOrderPlayer
def _oracle_and_process():
    joint = torch.rand(3, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    joint /= joint.sum()
    return MaskedOracle(joint, mask_id=MASK), MaskedDiffusion(4, MASK)


def _traces():
    oracle, process = _oracle_and_process()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    common = {"batch_size": 2, "length": 4}
    _, conf = sample_confidence(oracle, process, steps=4, generator=gen(), **common)
    _, anc = sample_ancestral(oracle, process, steps=8, generator=gen(), **common)
    _, rem = sample_remdm(oracle, process, steps=16, strategy="rescale", eta=0.5, generator=gen(), **common)
    return {"confidence": conf, "ancestral": anc, "remdm": rem}


def test_written_steps_follows_writes_and_remasks():
    m = MASK
    states = np.array([[9, m, m, m], [9, 1, m, m], [9, 1, m, 2], [9, m, 0, 2], [9, 2, 0, 2]])
    fixed = np.array([True, False, False, False])
    nan = np.nan
    expected = [[nan, 1, nan, nan], [nan, 1, nan, 2], [nan, nan, 3, 2], [nan, 4, 3, 2]]
    np.testing.assert_array_equal(written_steps(states, fixed, m), np.array(expected))
    # uniform diffusion (no mask): a token is coloured once the sampler has redrawn it
    np.testing.assert_array_equal(
        written_steps(np.array([[0, 1], [0, 2], [1, 2]]), np.array([False, False]), None),
        np.array([[nan, 1], [2, 1]]),
    )


def test_player_grid_spans_every_step_and_panels_follow_the_dict():
    traces = _traces()
    player = SamplingOrderPlayer(traces)
    assert list(player.panels) == ["confidence", "ancestral", "remdm"]
    assert player.params["step"] == list(range(17))  # 0 .. the longest trace's 16 steps
    few = SamplingOrderPlayer(traces, max_frames=5)
    assert few.params["step"] == [0, 4, 8, 12, 16]


def test_player_names_a_list_of_traces_by_sampler():
    traces = _traces()
    player = SamplingOrderPlayer([traces["confidence"], traces["confidence"], traces["ancestral"]])
    assert list(player.panels) == ["confidence", "confidence (1)", "ancestral"]


def test_player_order_picture_is_the_commit_step_of_a_sampler_without_remasking():
    trace = _traces()["confidence"]
    fig = SamplingOrderPlayer({"c": trace}, row=1).figure(step=2)
    order = [t for t in fig.data if t.type == "heatmap" and t.coloraxis == "coloraxis" and len(t.z) > 1][0]
    z = np.asarray(order.z, dtype=float)
    assert z.shape == (4, 4)  # steps x positions
    np.testing.assert_array_equal(z[-1], trace.commit_step[1].numpy() + 1)  # last row: every token, its step
    # max-probability order with one token per step: row j shows exactly j tokens
    assert [int((~np.isnan(row)).sum()) for row in z] == [1, 2, 3, 4]


def test_player_strip_shows_the_canvas_after_the_chosen_step():
    traces = _traces()
    trace = traces["ancestral"]
    player = SamplingOrderPlayer(traces, symbols=["a", "b", "c", "<mask>"])
    for step in (0, 3, 8, 16):
        fig = player.figure(step=step)
        strips = [t for t in fig.data if t.type == "heatmap" and t.texttemplate and t.yaxis == "y5"]
        assert len(strips) == 1
        state = trace.states[min(step, trace.n_steps), 0].tolist()
        expected = ["" if v == MASK else "abc"[v] for v in state]
        assert list(strips[0].text[0]) == expected
        fade = [t for t in fig.data if t.type == "scatter" and t.fill == "toself" and t.xaxis == "x2"]
        assert [f.y[0] for f in fade] == [min(step, 8) + 0.5]  # this panel stops at 8 steps of 16
    assert fig.layout.title.text.startswith("after 16 of 16 steps")


def test_player_shows_remasking_as_cells_that_empty_again():
    rem = _traces()["remdm"]
    z = written_steps(rem.states[:, 0].numpy(), rem.fixed[0].numpy(), MASK)
    filled = ~np.isnan(z)
    assert (filled[:-1] & ~filled[1:]).any() == bool(rem.remask_count[0].sum() > 0)


def test_player_static_face_stores_the_order_picture_once():
    traces = _traces()
    fig = SamplingOrderPlayer(traces).static()
    assert len(fig.layout.sliders) == 1 and len(fig.layout.sliders[0].steps) == 17
    orders = [t for t in fig.data if t.type == "heatmap" and t.coloraxis == "coloraxis" and len(t.z) > 1]
    assert len(orders) == 3  # one per panel, not one per slider position
    assert len(fig.to_json()) < 1_000_000
    json.loads(fig.to_json())


def test_player_live_face_has_a_play_button_linked_to_the_slider():
    box = SamplingOrderPlayer(_traces()).live()
    assert box.play.max == 16 and box.play in box.children[0].children
    box.controls["step"].value = 3
    assert box.figure_widget.layout.title.text.startswith("after 3 of 16 steps")


def test_player_rejects_bad_input():
    traces = _traces()
    with pytest.raises(ValueError, match="traces must be a Trace, a list of Traces or a dict"):
        SamplingOrderPlayer(42)
    with pytest.raises(ValueError, match=r"not a Trace: \['x'\]"):
        SamplingOrderPlayer({"x": "trace"})
    with pytest.raises(ValueError, match="traces must hold 1 to 4 traces"):
        SamplingOrderPlayer({str(i): traces["ancestral"] for i in range(5)})
    with pytest.raises(ValueError, match=r"row must be an int in \[0, 2\)"):
        SamplingOrderPlayer(traces, row=2)
    with pytest.raises(ValueError, match="max_frames must be an int >= 2"):
        SamplingOrderPlayer(traces, max_frames=1)
    with pytest.raises(ValueError, match="symbols must be None, a minidiff Vocab"):
        SamplingOrderPlayer(traces, symbols=[1, 2])
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        SamplingOrderPlayer(traces).figure(step=-1)
    empty = Trace(**{**traces["ancestral"].__dict__, "states": traces["ancestral"].states[:1]})
    with pytest.raises(ValueError, match="has no sampling step to show"):
        SamplingOrderPlayer({"e": empty})

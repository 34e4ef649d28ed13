"""widgets.history.HistoryViewer over minidiff.train.History."""

import math
import random

import numpy as np
import pytest

from minidiff.train.history import History
from widgets import HistoryViewer, trailing_mean


def _history(n: int = 300, seed: int = 0, scale: float = 1.0, evals: bool = True) -> History:
    rng, h = random.Random(seed), History()
    for step in range(n):
        loss = scale * (3 * math.exp(-step / (n / 4)) + 0.5) + 0.2 * rng.random()
        metrics = {"acc": 1 - loss / 4} if step % 2 == 0 else {}
        h.log(
            step,
            loss=loss,
            lr=1e-3 * min(1, step / 10),
            grad_norm=1 + rng.random(),
            tokens=32 * step,
            wall_time=0.01 * step,
            metrics=metrics,
        )
        if evals and step % 50 == 0:
            h.log_eval(step, {"val_loss": loss, "accuracy": 1 - loss / 4, "note": "text is ignored"})
    return h


def _y(trace) -> np.ndarray:
    return np.asarray(trace.y, dtype=np.float64)


@pytest.mark.parametrize("window", [1, 3, 10])
def test_trailing_mean_matches_history_smoothed_with_gaps(window):
    h = _history(60)
    np.testing.assert_allclose(trailing_mean(np.array(h.extra["acc"]), window), h.smoothed("acc", window))


def test_trailing_mean_rejects_bad_windows():
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        trailing_mean(np.ones(3), 0)


def test_accepts_a_history_its_dict_or_named_runs():
    h = _history()
    assert list(HistoryViewer(h).runs) == ["run"]
    assert list(HistoryViewer(h.to_dict()).runs) == ["run"]
    assert list(HistoryViewer({"AdamW": h, "Muon": h.to_dict()}).runs) == ["AdamW", "Muon"]


def test_rejects_what_is_not_a_history():
    with pytest.raises(TypeError, match="histories must be a History"):
        HistoryViewer([1, 2, 3])
    with pytest.raises(TypeError, match=r"histories\['a'\] must be a History"):
        HistoryViewer({"a": [1, 2]})
    with pytest.raises(ValueError, match="histories are all empty"):
        HistoryViewer(History())
    with pytest.raises(ValueError, match="metrics must be a non-empty subset"):
        HistoryViewer(_history(), metrics=["perplexity"])
    with pytest.raises(ValueError, match="x must be one of"):
        HistoryViewer(_history(), x="epoch")


def test_offers_every_logged_metric_with_loss_first():
    viewer = HistoryViewer(_history())
    assert viewer.params["metric"] == ["loss", "acc", "grad_norm", "lr", "eval accuracy", "eval val_loss"]
    assert viewer.layout_params == ("scale",)


def test_draws_each_run_raw_and_smoothed_in_one_colour():
    h = _history(200)
    fig = HistoryViewer({"a": h, "b": _history(200, seed=1)}).figure(smoothing=10, metric="loss")
    raw_a, smooth_a, raw_b, smooth_b = fig.data
    assert (raw_a.showlegend, smooth_a.name, smooth_b.name) == (False, "a", "b")
    assert raw_a.line.color == smooth_a.line.color != smooth_b.line.color
    np.testing.assert_allclose(_y(smooth_a), h.smoothed("loss", 10), rtol=1e-6)
    np.testing.assert_allclose(_y(raw_a), h.loss, rtol=1e-6)


def test_downsamples_long_runs_after_smoothing():
    h = _history(5000)
    viewer = HistoryViewer(h, max_points=100)
    raw, smooth = viewer.figure(smoothing=50, metric="loss").data
    assert len(smooth.x) == 100 and smooth.x[0] == 0 and smooth.x[-1] == 4999
    index = np.asarray(smooth.x)
    np.testing.assert_allclose(_y(smooth), np.asarray(h.smoothed("loss", 50))[index], rtol=1e-6)


def test_evaluations_and_the_learning_rate_are_not_smoothed():
    h = _history(200)
    viewer = HistoryViewer(h)
    (acc,) = viewer.figure(smoothing=20, metric="eval accuracy").data
    assert acc.mode == "lines+markers" and list(acc.x) == [0, 50, 100, 150]
    (lr,) = viewer.figure(smoothing=20, metric="lr").data
    np.testing.assert_allclose(_y(lr), h.lr, rtol=1e-6)


def test_default_smoothing_is_about_a_fiftieth_of_the_run_and_scale_log_for_positive_losses():
    viewer = HistoryViewer(_history(1000))
    assert viewer.defaults["smoothing"] == 20
    assert viewer.defaults["scale"] == "log"
    assert max(viewer.params["smoothing"]) <= 500


def test_relayout_agrees_with_the_figure():
    viewer = HistoryViewer(_history())
    for scale in ("log", "linear"):
        assert viewer.figure(scale=scale).layout.yaxis.type == viewer.relayout("scale", scale)["yaxis.type"]


def test_static_face_of_three_long_runs_stays_small():
    viewer = HistoryViewer({f"run {i}": _history(5000, seed=i) for i in range(3)})
    fig = viewer.static()
    assert len(fig.to_json()) < 2_000_000
    raw_traces = [t for t in fig.data if t.showlegend is False]
    assert len(raw_traces) == 3 * 3  # loss, acc and grad_norm have a raw twin per run; lr and evals do not


def test_live_face_slider_changes_the_smoothed_curve():
    h = _history(300)
    box = HistoryViewer(h).live()
    slider, fig_widget = box.controls["smoothing"], box.figure_widget
    slider.value = 1
    np.testing.assert_allclose(_y(fig_widget.data[1]), h.loss, rtol=1e-6)
    assert fig_widget.layout.title.text == "loss (raw)"


def test_many_runs_get_a_vertical_legend_beside_the_plot_a_few_a_row_above():
    few = HistoryViewer({f"run {k}": _history(50, seed=k) for k in range(3)}).figure()
    many = HistoryViewer({f"run {k}": _history(50, seed=k) for k in range(6)}).figure()
    assert few.layout.legend.orientation == "h"
    assert many.layout.legend.orientation == "v" and many.layout.legend.x > 1

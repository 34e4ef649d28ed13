"""widgets.spectra.SpectrumViewer over minidiff.analysis.spectra.SpectrumRecorder records."""

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from minidiff.analysis.spectra import SpectrumRecorder
from widgets import SpectrumViewer

LAYERS = {"a.weight": [4, 3], "b.weight": [6, 2]}


def _record(steps, scale=1.0, kinds=("update", "gradient", "weight")) -> dict:
    """A SpectrumRecorder.to_dict()-shaped record whose spectra are known: σ = scale·(step, step/2, 1, ...)."""

    def spectrum(step, k):
        return [scale * step, scale * step / 2] + [scale * 1.0] * (k - 2)

    singular, stable = {}, {}
    for kind in kinds:
        singular[kind] = {n: [spectrum(s, min(shape)) for s in steps] for n, shape in LAYERS.items()}
        stable[kind] = {n: [float(np.square(v).sum() / v[0] ** 2) for v in singular[kind][n]] for n in LAYERS}
    return {
        "layers": list(LAYERS),
        "shapes": dict(LAYERS),
        "kinds": list(kinds),
        "steps": list(steps),
        "every": steps[1] - steps[0] if len(steps) > 1 else 1,
        "top_k": None,
        "singular_values": singular,
        "stable_rank": stable,
    }


def _spectrum_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.xaxis in (None, "x")]


def _shown(fig: go.Figure, visible: list) -> list:
    return [t for t, v in zip(fig.data, visible) if v]


# --------------------------------------------------------------------------------------------- the figure
def test_figure_content_changes_with_the_step():
    viewer = SpectrumViewer({"AdamW": _record([10, 20, 30])}, layer="a.weight", kind="update")
    early = _spectrum_traces(viewer.figure(step=10, layer="a.weight", kind="update"))[0]
    late = _spectrum_traces(viewer.figure(step=30, layer="a.weight", kind="update"))[0]
    np.testing.assert_allclose(early.y, [1.0, 0.5, 1 / 10])  # σ / σ_1 = (10, 5, 1) / 10
    np.testing.assert_allclose(late.y, [1.0, 0.5, 1 / 30], rtol=1e-6)
    assert "step 10" in viewer.figure(step=10, layer="a.weight").layout.title.text


def test_normalize_false_draws_the_raw_singular_values():
    viewer = SpectrumViewer(_record([10, 20]), normalize=False, layer="a.weight")
    (trace,) = _spectrum_traces(viewer.figure(step=20, layer="a.weight", kind="update"))
    np.testing.assert_allclose(trace.y, [20.0, 10.0, 1.0])
    assert list(trace.x) == [1, 2, 3]


def test_runs_are_overlaid_one_colour_per_run_in_both_panels():
    viewer = SpectrumViewer({"AdamW": _record([10, 20]), "Muon": _record([10, 20], scale=3.0)})
    fig = viewer.figure(step=20, layer="a.weight", kind="update")
    spectra = _spectrum_traces(fig)
    assert [t.name for t in spectra] == ["AdamW", "Muon"]
    ranks = [t for t in fig.data if t.xaxis == "x2" and t.mode == "lines" and t.name in ("AdamW", "Muon")]
    assert [t.line.color for t in ranks] == [t.line.color for t in spectra]
    assert spectra[0].line.color != spectra[1].line.color


def test_stable_rank_panel_draws_the_whole_run_and_marks_the_chosen_step():
    record = _record([10, 20, 30])
    viewer = SpectrumViewer({"run": record}, layer="a.weight", kind="update")
    fig = viewer.figure(step=20, layer="a.weight", kind="update")
    line = next(t for t in fig.data if t.xaxis == "x2" and t.mode == "lines" and t.name == "run")
    assert list(line.x) == [10, 20, 30]
    np.testing.assert_allclose(line.y, record["stable_rank"]["update"]["a.weight"], rtol=1e-6)
    (marker,) = fig.layout.shapes
    assert (marker.xref, marker.x0, marker.x1) == ("x2", 20, 20)
    ceiling = next(t for t in fig.data if t.name == "min(m, n) = 3")
    assert list(ceiling.y) == [3, 3]


def test_a_run_shows_its_last_recorded_step_at_or_before_the_slider():
    viewer = SpectrumViewer({"every 10": _record([10, 20, 30]), "every 15": _record([15, 30])})
    assert viewer.params["step"] == [10, 15, 20, 30]
    fig = viewer.figure(step=10, layer="a.weight", kind="update")
    assert [t.name for t in _spectrum_traces(fig)] == ["every 10"]  # nothing recorded yet for "every 15"
    assert viewer.spectrum("every 15", "a.weight", "update", 20)[0] == 15


def test_missing_spectra_are_left_out():
    record = _record([10, 20])
    record["singular_values"]["gradient"]["a.weight"][0] = None
    record["stable_rank"]["gradient"]["a.weight"][0] = None
    viewer = SpectrumViewer(record, kind="gradient", layer="a.weight")
    assert _spectrum_traces(viewer.figure(step=10, layer="a.weight", kind="gradient")) == []
    steps, ranks = viewer.stable_ranks("run", "a.weight", "gradient")
    assert np.isnan(ranks[0]) and np.isfinite(ranks[1])


def test_slider_frames_are_downsampled_keeping_the_first_and_last_step():
    viewer = SpectrumViewer(_record(list(range(1, 101))), max_frames=10)
    steps = viewer.params["step"]
    assert len(steps) == 10 and steps[0] == 1 and steps[-1] == 100
    assert viewer.defaults["step"] == 100


# --------------------------------------------------------------------------------------------- static face
def test_static_face_has_the_step_slider_and_a_row_of_kind_buttons():
    viewer = SpectrumViewer(
        {"a": _record([10, 20, 30]), "b": _record([10, 20, 30])}, kind=["update", "weight"]
    )
    fig = viewer.static()
    assert len(fig.layout.sliders) == 2  # one slider per kind button
    assert [s.label for s in fig.layout.sliders[0].steps] == ["10", "20", "30"]
    assert fig.layout.sliders[0].currentvalue.prefix == "step: "
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["update ΔW", "weight W"]
    assert [b.label for b in fig.layout.updatemenus[1].buttons] == ["log y", "linear y"]
    json.loads(fig.to_json())


def test_each_slider_step_shows_that_steps_spectra():
    viewer = SpectrumViewer({"a": _record([10, 20, 30])}, layer="a.weight", kind="update")
    fig = viewer.static()
    for i, step in enumerate([10, 20, 30]):
        visible = fig.layout.sliders[0].steps[i].args[0]["visible"]
        (spectrum,) = [t for t in _shown(fig, visible) if t.xaxis in (None, "x")]
        np.testing.assert_allclose(spectrum.y, [1.0, 0.5, 1 / step], rtol=1e-6)


def test_a_layer_list_gives_layer_buttons():
    fig = SpectrumViewer(_record([10, 20]), layer=["a.weight", "b.weight"], kind="weight").static()
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["a.weight", "b.weight"]


def test_log_and_linear_buttons_only_relayout_the_spectrum_axis():
    fig = SpectrumViewer(_record([10, 20]), layer="a.weight", kind="update").static()
    (scale_row,) = fig.layout.updatemenus
    assert [b.method for b in scale_row.buttons] == ["relayout", "relayout"]
    assert scale_row.buttons[1].args[0] == {"yaxis.type": "linear"}
    assert fig.layout.yaxis.type == "log"


def test_to_html_writes_a_standalone_offline_file(tmp_path):
    path = SpectrumViewer(_record([10, 20])).to_html(tmp_path / "spectra.html")
    page = path.read_text()
    assert "<title>SpectrumViewer</title>" in page
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\bsrc=", page)  # no external script
    assert len(page) > 1_000_000  # plotly.js is inlined


def test_live_face_redraws_when_the_step_moves():
    pytest.importorskip("ipywidgets")
    box = SpectrumViewer(_record([10, 20, 30]), layer="a.weight", kind="update").live()
    box.controls["step"].value = 10
    assert "step 10" in box.figure_widget.layout.title.text
    np.testing.assert_allclose(box.figure_widget.data[0].y, [1.0, 0.5, 0.1], rtol=1e-6)


# --------------------------------------------------------------------------------------------- real records
def test_reads_what_a_spectrum_recorder_writes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 4, bias=False))
    recorder = SpectrumRecorder(model, every=2)
    opt = recorder.attach(torch.optim.AdamW(model.parameters(), lr=1e-2))
    for _ in range(6):
        opt.zero_grad()
        model(torch.randn(32, 8)).square().mean().backward()
        opt.step()
    record = json.loads(recorder.to_json())
    viewer = SpectrumViewer({"AdamW": record, "recorder": recorder}, layer="0.weight")
    assert viewer.params["step"] == [2, 4, 6] and viewer.params["kind"] == ["update"]
    (first, _) = _spectrum_traces(viewer.figure(step=4, layer="0.weight", kind="update"))
    np.testing.assert_allclose(
        first.y * record["singular_values"]["update"]["0.weight"][1][0],
        record["singular_values"]["update"]["0.weight"][1],
        rtol=1e-5,
    )


# --------------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("records", "kwargs", "error", "match"),
    [
        ([1, 2], {}, TypeError, "records must be a SpectrumRecorder.to_dict"),
        ({}, {}, TypeError, "records must be"),
        (
            {"a": {"layers": []}},
            {},
            ValueError,
            r"records\['a'\] is not a SpectrumRecorder.to_dict\(\) result",
        ),
        ({"a": "text"}, {}, TypeError, r"records\['a'\] must be a SpectrumRecorder"),
        ({"a": _record([])}, {}, ValueError, r"records\['a'\] holds no steps"),
        (
            {"a": _record([1, 2])},
            {"layer": "c.weight"},
            ValueError,
            r"layer must be in \['a.weight', 'b.weight'\]",
        ),
        ({"a": _record([1, 2])}, {"kind": "momentum"}, ValueError, "kind must be in"),
        ({"a": _record([1, 2])}, {"kind": []}, ValueError, "kind must be a name or a non-empty list"),
        (
            {"a": _record([1, 2])},
            {"layer": ["a.weight", "b.weight"], "kind": ["update", "weight"]},
            ValueError,
            "layer and kind cannot both list several values",
        ),
        (
            {"a": _record([1, 2])},
            {"runs": ["b"]},
            ValueError,
            r"runs must be a non-empty list of names from \['a'\]",
        ),
        ({"a": _record([1, 2])}, {"max_frames": 1}, ValueError, "max_frames must be an int >= 2"),
        ({"a": _record([1, 2])}, {"normalize": "yes"}, TypeError, "normalize must be True or False"),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(records, kwargs, error, match):
    with pytest.raises(error, match=match):
        SpectrumViewer(records, **kwargs)


def test_runs_must_share_the_layer_shape():
    other = _record([1, 2])
    other["shapes"] = {"a.weight": [5, 3], "b.weight": [6, 2]}
    with pytest.raises(ValueError, match="layer 'a.weight' has different shapes in different runs"):
        SpectrumViewer({"a": _record([1, 2]), "b": other}, layer="a.weight")

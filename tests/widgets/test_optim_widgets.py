"""widgets.optim.SingularValueMap: the scalar map of Newton–Schulz iterations."""

import re

import numpy as np
import pytest
import torch

from minidiff.analysis.spectra import singular_values
from minidiff.optim.linalg import newton_schulz, scalar_map
from widgets import SingularValueMap


def _curve(fig):
    return next(t for t in fig.data if t.mode == "lines" and t.line.width == 3)


@pytest.mark.parametrize("name", ["muon", "modded", "cubic"])
@pytest.mark.parametrize("k", [0, 1, 5])
def test_curve_is_the_composed_scalar_polynomial(name, k):
    widget = SingularValueMap(max_steps=5)
    y = np.asarray(_curve(widget.figure(iterations=k, coefficients=name)).y, dtype=np.float64)
    np.testing.assert_allclose(y, scalar_map(torch.as_tensor(widget.x), name, k).numpy(), rtol=1e-6)


def test_zero_iterations_is_the_identity():
    widget = SingularValueMap()
    np.testing.assert_allclose(widget.curves["muon"][0], widget.x)


def test_polar_express_applies_its_input_safety_factor():
    widget = SingularValueMap(coefficients=["polar_express"])
    expected = scalar_map(torch.as_tensor(widget.x / 1.01), "polar_express", 3).numpy()
    np.testing.assert_allclose(widget.curves["polar_express"][3], expected)


def test_band_reproduces_the_known_muon_and_polar_express_ranges():
    widget = SingularValueMap(sigma_min=1e-2, n_points=4000)
    lo, hi = widget.band("muon", 5)
    assert lo == pytest.approx(0.682, abs=2e-3) and hi == pytest.approx(1.134, abs=2e-3)
    lo, hi = widget.band("polar_express", 8)
    assert lo == pytest.approx(1.0, abs=1e-3) and hi == pytest.approx(1.0, abs=1e-3)
    assert "→ [0.682, 1.134]" in widget.figure(iterations=5, coefficients="muon").layout.title.text


def test_sample_dots_sit_where_newton_schulz_sends_a_matrix_singular_values():
    G = torch.randn(16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    widget = SingularValueMap(sigmas=singular_values(G), max_steps=5)
    dots = widget.figure(iterations=5, coefficients="muon").data[-1]
    measured = singular_values(newton_schulz(G, steps=5, coefficients="muon", dtype=torch.float64))
    np.testing.assert_allclose(np.sort(dots.y), np.sort(measured.numpy()), rtol=1e-5)
    np.testing.assert_allclose(np.square(dots.x).sum(), 1.0, rtol=1e-5)  # divided by ‖G‖_F


def test_static_face_has_an_iteration_slider_coefficient_buttons_and_axis_buttons():
    fig = SingularValueMap(max_steps=6).static()
    assert [s.label for s in fig.layout.sliders[0].steps] == [str(k) for k in range(7)]
    assert fig.layout.sliders[0].active == 5
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == [
        "Muon quintic",
        "modded-nanogpt",
        "Polar Express",
        "cubic",
    ]
    assert [b.args[0]["xaxis.type"] for b in fig.layout.updatemenus[1].buttons] == ["log", "linear"]


def test_each_slider_step_shows_that_iteration_count():
    widget = SingularValueMap(coefficients=["cubic"], max_steps=3)
    fig = widget.static()
    for k, step in enumerate(fig.layout.sliders[0].steps):
        shown = [t for t, v in zip(fig.data, step.args[0]["visible"]) if v]
        np.testing.assert_allclose(_curve_in(shown).y, widget.curves["cubic"][k], rtol=1e-6)


def _curve_in(traces):
    return next(t for t in traces if t.mode == "lines" and t.line.width == 3)


def test_to_html_writes_a_standalone_offline_file(tmp_path):
    page = SingularValueMap(max_steps=2).to_html(tmp_path / "map.html").read_text()
    assert "<title>SingularValueMap</title>" in page
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\bsrc=", page)  # no external script


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coefficients": ["quartic"]}, "coefficients must be a non-empty list of names"),
        ({"coefficients": "muon"}, "coefficients must be a non-empty list of names"),
        ({"max_steps": 0}, r"max_steps must be an int in \[1, 50\]"),
        ({"sigma_min": 1.0}, r"sigma_min must be a number in \(0, 1\)"),
        ({"n_points": 1}, "n_points must be an int >= 2"),
        ({"sigmas": [0.0, 0.0]}, "sigmas must be non-empty, non-negative and not all zero"),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SingularValueMap(**kwargs)

"""widgets.base: the two faces of a widget, the static face's grid encoding, the display switch."""

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from widgets import MODE_ENV, Widget, display_mode


class Waves(Widget):
    """A toy widget: y = fn(k x) next to a fixed baseline; ``scale`` only changes the x axis type."""

    def __init__(self, fns=("sin", "cos")):
        super().__init__(
            {"k": [1, 2, 3], "fn": list(fns), "scale": ["linear", "log"]},
            defaults={"k": 2},
            layout_params=("scale",),
            labels={"k": "frequency"},
        )
        self.x = np.linspace(0.1, 6, 50)

    def figure(self, k=1, fn="sin", scale="linear"):
        fig = go.Figure(go.Scatter(x=self.x, y=getattr(np, fn)(k * self.x), name=f"{fn}({k}x)"))
        fig.add_scatter(x=self.x, y=self.x / 6, name="baseline")
        fig.update_layout(title=f"{fn} k={k}", xaxis_type=scale)
        return fig

    def relayout(self, name, value):
        return {"xaxis.type": value}


def _visible_names(fig: go.Figure, visible: list) -> list[str]:
    return sorted(t.name for t, v in zip(fig.data, visible) if v)


def test_static_has_one_slider_per_button_value_and_one_step_per_slider_value():
    fig = Waves().static()
    assert len(fig.layout.sliders) == 2
    assert [s.visible for s in fig.layout.sliders] == [True, False]  # fn = "sin" is the default
    assert all(len(s.steps) == 3 and s.active == 1 for s in fig.layout.sliders)  # k = 2 is the default
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["sin", "cos"]
    assert [b.label for b in fig.layout.updatemenus[1].buttons] == ["linear", "log"]


def test_static_starts_at_the_default_point():
    fig = Waves().static()
    assert _visible_names(fig, [t.visible for t in fig.data]) == ["baseline", "sin(2x)"]
    assert fig.layout.title.text == "sin k=2"


def test_each_slider_step_shows_exactly_the_traces_of_its_grid_point():
    widget = Waves()
    fig = widget.static()
    for j, fn in enumerate(["sin", "cos"]):
        for i, k in enumerate([1, 2, 3]):
            visible, layout = fig.layout.sliders[j].steps[i].args
            assert _visible_names(fig, visible["visible"]) == sorted(["baseline", f"{fn}({k}x)"])
            shown = [t for t, v in zip(fig.data, visible["visible"]) if v and t.name != "baseline"]
            np.testing.assert_allclose(shown[0].y, widget.figure(k=k, fn=fn).data[0].y)
            assert layout.get("title.text", "sin k=2") == f"{fn} k={k}"


def test_identical_traces_are_stored_once():
    fig = Waves().static()
    assert [t.name for t in fig.data].count("baseline") == 1
    assert len(fig.data) == 1 + 3 * 2


def test_moving_the_slider_rewrites_the_buttons_so_switching_keeps_the_slider_position():
    fig = Waves().static()
    _, layout = fig.layout.sliders[0].steps[2].args  # fn = sin, k = 3
    visible, cos_layout = layout["updatemenus[0].buttons[1].args"]
    assert _visible_names(fig, visible["visible"]) == ["baseline", "cos(3x)"]
    assert cos_layout["sliders[1].active"] == 2
    assert cos_layout["sliders[1].visible"] is True and cos_layout["sliders[0].visible"] is False


def test_layout_parameters_relayout_and_data_updates_never_touch_their_keys():
    fig = Waves().static()
    assert [list(b.args) for b in fig.layout.updatemenus[1].buttons] == [
        [{"xaxis.type": "linear"}],
        [{"xaxis.type": "log"}],
    ]
    for slider in fig.layout.sliders:
        for step in slider.steps:
            assert not any(key.startswith("xaxis") for key in step.args[1])


def test_button_rows_are_labelled():
    fig = Waves().static()
    assert {a.text for a in fig.layout.annotations} == {"fn", "scale"}


def test_one_data_parameter_gives_one_slider_and_no_data_buttons():
    fig = Waves(fns=("sin",)).static()
    assert len(fig.layout.sliders) == 1 and len(fig.layout.sliders[0].steps) == 3
    assert len(fig.layout.updatemenus) == 1  # the layout parameter's row only
    assert "fn" not in Waves(fns=("sin",)).controls()


def test_static_face_is_plain_json():
    json.loads(Waves().static().to_json())


def test_live_face_recomputes_the_figure_when_a_control_moves():
    widget = Waves()
    box = widget.live()
    fig_widget = box.figure_widget
    assert isinstance(fig_widget, go.FigureWidget) and box.children[-1] is fig_widget
    assert [row.children[0].value for row in box.children[:-1]] == ["frequency", "fn", "scale"]
    slider, fn_buttons, scale_buttons = box.controls.values()
    slider.value = 3
    fn_buttons.value = "cos"
    np.testing.assert_allclose(fig_widget.data[0].y, np.cos(3 * widget.x))
    assert fig_widget.layout.title.text == "cos k=3"
    scale_buttons.value = "log"
    assert fig_widget.layout.xaxis.type == "log"


def test_live_face_replaces_traces_when_their_number_changes():
    class Growing(Waves):
        def figure(self, k=1, fn="sin", scale="linear"):
            fig = super().figure(k=k, fn=fn, scale=scale)
            for extra in range(k):
                fig.add_scatter(x=[0, 1], y=[extra, extra], name=f"extra {extra}")
            return fig

    box = Growing().live()
    box.controls["k"].value = 3
    assert len(box.figure_widget.data) == 2 + 3


@pytest.mark.parametrize("value, expected", [("static", "static"), ("live", "live"), (" LIVE ", "live")])
def test_display_mode_follows_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(MODE_ENV, value)
    assert display_mode() == expected


def test_display_mode_auto_is_static_without_a_kernel(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "auto")
    assert display_mode() == "static"
    monkeypatch.delenv(MODE_ENV)
    assert display_mode() == "static"


def test_display_mode_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match="MINIDIFF_WIDGETS must be one of auto/live/static, got 'sometimes'"):
        display_mode()
    with pytest.raises(ValueError, match="mode must be one of"):
        display_mode("never")


def test_notebook_display_is_the_static_plotly_figure_in_static_mode(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "static")
    bundle = Waves()._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/plain"}
    assert len(bundle["application/vnd.plotly.v1+json"]["layout"]["sliders"]) == 2


def test_notebook_display_is_the_ipywidget_in_live_mode(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "live")
    bundle = Waves()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_to_html_writes_a_standalone_offline_page(tmp_path):
    path = Waves().to_html(tmp_path / "waves.html", title="Waves for a talk")
    page = path.read_text()
    assert "<title>Waves for a talk</title>" in page
    assert len(page) > 3_000_000  # plotly.js inlined
    assert 'src="http' not in page and "cdn." not in page.split("</head>")[0]


def test_to_html_directory_mode_puts_plotly_js_beside_the_file(tmp_path):
    Waves().to_html(tmp_path / "waves.html", include_plotlyjs="directory")
    assert (tmp_path / "plotly.min.js").stat().st_size > 3_000_000
    assert 'src="plotly.min.js"' in (tmp_path / "waves.html").read_text()
    with pytest.raises(ValueError, match="include_plotlyjs must be"):
        Waves().to_html(tmp_path / "x.html", include_plotlyjs="cdn")


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="params must be a non-empty mapping"):
        Widget({})
    with pytest.raises(ValueError, match=r"params\['a'\] must list at least one value"):
        Widget({"a": []})
    with pytest.raises(ValueError, match=r"defaults\['a'\] must be one of \[1, 2\], got 3"):
        Widget({"a": [1, 2]}, defaults={"a": 3})
    with pytest.raises(ValueError, match="layout_params names unknown parameter"):
        Widget({"a": [1, 2]}, layout_params=("b",))
    with pytest.raises(ValueError, match="at most two data parameters"):
        Widget({"a": [1, 2], "b": [1, 2], "c": [1, 2]})


def test_figure_must_be_implemented_and_return_a_figure():
    with pytest.raises(NotImplementedError, match="must implement figure"):
        Widget({"a": [1, 2]}).static()

    class Bad(Widget):
        def figure(self, **values):
            return {"data": []}

    with pytest.raises(TypeError, match="must return a go.Figure"):
        Bad({"a": [1, 2]}).static()


def test_compact_floats_rounds_floats_to_significant_digits_and_keeps_everything_else():
    from widgets.base import compact_floats

    data = {
        "x": np.array([0.123456789, 12345.6789, -1e-7 / 3]),
        "y": [1, 2.0000001, float("nan"), "3.14159265"],
        "z": np.arange(3),
        "nested": [[np.float32(0.1), 2 / 3]],
    }
    out = compact_floats(data, digits=3)
    assert out["x"] == [0.123, 12300.0, -3.33e-08]
    assert out["y"][:2] == [1, 2.0] and np.isnan(out["y"][2]) and out["y"][3] == "3.14159265"
    assert out["z"] is data["z"]  # integer arrays untouched
    assert out["nested"] == [[0.1, 0.667]]


def test_static_face_in_the_notebook_is_compacted(monkeypatch):
    import base64

    monkeypatch.setenv(MODE_ENV, "static")
    widget = Waves()
    y = widget.static().to_dict()["data"][0]["y"]  # plotly's own encoding: float64 in base64
    bundle = widget._repr_mimebundle_()["application/vnd.plotly.v1+json"]
    compact = bundle["data"][0]["y"]
    assert y["dtype"] == "f8" and compact["dtype"] == "f4"
    full = np.frombuffer(base64.b64decode(y["bdata"]), "<f8")
    half = np.frombuffer(base64.b64decode(compact["bdata"]), "<f4")
    np.testing.assert_allclose(half, full, rtol=1e-6)
    assert len(compact["bdata"]) < 0.6 * len(y["bdata"])

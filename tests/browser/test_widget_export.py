"""A widget's static HTML export (what a talk uses): offline, and its slider and buttons change the figure."""

import math
import random

import pytest
from browser_helpers import screenshot

from minidiff.train.history import History
from widgets import HistoryViewer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

STATE = """() => {
  const g = document.querySelector('.js-plotly-plot');
  return {
    title: g.layout.title.text,
    visible: g.data.map((t, i) => t.visible === true ? i : -1).filter(i => i >= 0),
    sliders: g.layout.sliders.map(s => [s.visible, s.active]),
    yaxis: g.layout.yaxis.type,
  };
}"""


def _runs() -> dict[str, History]:
    runs = {}
    for name, scale in (("AdamW", 1.0), ("Muon", 0.8)):
        rng, history = random.Random(name), History()
        for step in range(600):
            loss = scale * (3 * math.exp(-step / 150) + 0.5) + 0.2 * rng.random()
            history.log(
                step, loss=loss, lr=1e-3, grad_norm=1 + rng.random(), tokens=step, wall_time=step / 100
            )
        runs[name] = history
    return runs


def test_static_export_slider_and_buttons_change_the_figure(tmp_path, watch):
    path = HistoryViewer(_runs()).to_html(tmp_path / "history.html")
    view = watch()
    page = view.page
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg")
    start = page.evaluate(STATE)
    assert start["title"] == "loss, mean of last 10 steps" and start["yaxis"] == "log"

    rail = page.locator(".slider-rail-rect")
    assert rail.count() == 1  # one slider per metric, only the current one drawn
    box = rail.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "t => document.querySelector('.js-plotly-plot').layout.title.text !== t", arg=start["title"]
    )
    moved = page.evaluate(STATE)
    assert moved["title"] == "loss, mean of last 200 steps"
    assert moved["visible"] != start["visible"]
    assert page.locator(".slider-group .slider-label").first.text_content().endswith("200")

    page.locator(".updatemenu-button", has_text="grad norm").click()
    page.wait_for_function(
        "() => document.querySelector('.js-plotly-plot').layout.title.text.startsWith('grad')"
    )
    switched = page.evaluate(STATE)
    assert switched["title"] == "grad norm, mean of last 200 steps"  # the slider kept its position
    assert [active for visible, active in switched["sliders"] if visible] == [moved["sliders"][0][1]]

    page.locator(".updatemenu-button", has_text="linear y").click()
    page.wait_for_function("() => document.querySelector('.js-plotly-plot').layout.yaxis.type === 'linear'")
    screenshot(page, "widget_export_after_slider")
    assert view.errors == [] and view.external == []

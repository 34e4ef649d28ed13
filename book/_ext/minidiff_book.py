"""Sphinx extension of the minidiff book: load the site's one copy of plotly.js on the pages that draw a figure.

``book/build.py`` renders every plotly output to a ``<div class="plotly-graph-div">`` plus a script calling
``Plotly.newPlot``; this extension adds ``_static/plotly.min.js`` to the ``<head>`` of exactly those pages, before
require.js (a page with ipywidgets loads it), because plotly.js registers itself as an anonymous AMD module instead
of ``window.Plotly`` when require.js is already there.
"""

from __future__ import annotations

from typing import Any

PLOTLY_JS = "plotly.min.js"


def _add_plotly(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if doctree is not None and "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(PLOTLY_JS, priority=100)


def setup(app: Any) -> dict:
    app.connect("html-page-context", _add_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

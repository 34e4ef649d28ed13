"""The built book, served over HTTP and read by a real browser with the network cut off: every chapter page loads
without page errors and draws its plotly figures; a static widget in a page reacts to its slider.

The book is built here from the committed chapters without re-executing them (``book/build.py --no-execute``),
plus one small chapter executed for the test, so the check takes a minute rather than a full book build.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from browser_helpers import HISTORY_CELL, ROOT, screenshot, static_server, unavailable
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
FIXTURE = "99_pipeline_check.ipynb"
EXECUTE = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("build", sys.argv[1])
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
src, dest = Path(sys.argv[2]), Path(sys.argv[3])
build.execute_notebook(src, dest, threads=1, timeout=300, jupyter_path=build._kernelspec_dir(dest.parent))
"""


def _fixture_chapter() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Pipeline check\n\nMath renders offline: $\\alpha_t = 1 - t$ and\n\n"
            "$$w(t) = \\frac{\\alpha_t'}{1 - \\alpha_t}.$$"
        ),
        new_code_cell("from minidiff.config import FAST\n\nprint('fast mode' if FAST else 'full mode')"),
        new_code_cell(HISTORY_CELL),
        new_code_cell(
            "import plotly.graph_objects as go\n\ngo.Figure(go.Bar(x=['a', 'b'], y=[1, 2]), layout={'title': 'bars'})"
        ),
        new_code_cell("from tqdm.auto import tqdm\n\nfor _ in tqdm(range(20), desc='fit'):\n    pass"),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def _plotly_outputs(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(
        PLOTLY_MIME in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """Build the book into a temporary folder; returns its html folder and the chapters' expected figure counts."""
    if not (ROOT / "book" / "_vendor" / "VERSIONS.json").exists() and shutil.which("npm") is None:
        unavailable("npm is needed once to vendor the book's JavaScript; `make browser-deps` installs it")
    work = tmp_path_factory.mktemp("book")
    tutorials = work / "tutorials"
    tutorials.mkdir()
    for path in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb")):
        shutil.copyfile(path, tutorials / path.name)
    shutil.copyfile(ROOT / "tutorials" / "README.md", tutorials / "README.md")
    nbformat.write(_fixture_chapter(), work / FIXTURE)
    build = ROOT / "book" / "build.py"
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDIFF_FAST", "MINIDIFF_WIDGETS")}
    subprocess.run(
        [sys.executable, "-c", EXECUTE, str(build), str(work / FIXTURE), str(tutorials / FIXTURE)],
        check=True,
        timeout=300,
        env=env,
    )
    run = subprocess.run(
        [
            sys.executable,
            str(build),
            "--no-execute",
            "--tutorials",
            str(tutorials),
            "--out",
            str(work / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=480,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    chapters = {p.stem: _plotly_outputs(p) for p in sorted(tutorials.glob("[0-9][0-9]_*.ipynb"))}
    return {
        "html": work / "out" / "html",
        "chapters": chapters,
        "report": json.loads((work / "out" / "build-report.json").read_text()),
    }


def test_every_chapter_page_loads_offline_and_draws_its_figures(book, watch):
    assert book["chapters"][Path(FIXTURE).stem] == 2
    with static_server(book["html"]) as url:
        for name, figures in book["chapters"].items():
            view = watch()
            page = view.page
            page.goto(f"{url}/{name}.html")
            page.wait_for_load_state("load")
            if figures:
                page.wait_for_function(
                    "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=figures
                )
            assert page.locator(".js-plotly-plot").count() == figures, name
            assert view.errors == [], f"{name}: page errors {view.errors}"
            assert view.external == [], f"{name}: requests leaving the site {view.external}"
            page.close()


def test_landing_page_lists_every_chapter(book, watch):
    with static_server(book["html"]) as url:
        view = watch()
        view.page.goto(f"{url}/index.html")
        links = view.page.eval_on_selector_all(
            ".bd-main a.reference.internal", "els => els.map(e => e.getAttribute('href'))"
        )
        for name in book["chapters"]:
            assert f"{name}.html" in links
        assert view.errors == [] and view.external == []


def test_plotly_js_is_shipped_once_for_the_whole_site(book):
    html = book["html"]
    assert (html / "_static" / "plotly.min.js").stat().st_size > 3_000_000
    page = (html / f"{Path(FIXTURE).stem}.html").read_text()
    assert len(re.findall(r'<script[^>]+src="_static/plotly\.min\.js[^"]*"', page)) == 1
    assert len(page) < 2_000_000  # the figures' data, not plotly.js
    assert book["report"]["external_urls"] == []


def test_static_widget_in_a_book_page_reacts_to_its_slider(book, watch):
    with static_server(book["html"]) as url:
        view = watch()
        page = view.page
        page.goto(f"{url}/{Path(FIXTURE).stem}.html")
        page.wait_for_selector(".js-plotly-plot .slider-rail-rect")
        # the progress bar, drawn by the vendored ipywidgets renderer
        page.wait_for_selector(".widget-hprogress")
        title = page.locator(".js-plotly-plot .gtitle").first
        before = title.text_content()
        rail = page.locator(".slider-rail-rect").first
        rail.scroll_into_view_if_needed()
        box = rail.bounding_box()
        page.mouse.click(box["x"] + 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "t => document.querySelector('.js-plotly-plot .gtitle').textContent !== t", arg=before
        )
        assert title.text_content() == "loss (raw)"
        page.evaluate(
            "() => window.scrollTo(0, document.querySelector('.js-plotly-plot').getBoundingClientRect().top + window.scrollY - 260)"
        )
        screenshot(page, "book_page_after_slider", full_page=False)
        assert view.errors == [] and view.external == []

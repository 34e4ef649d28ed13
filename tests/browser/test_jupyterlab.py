"""The live face through a real kernel: JupyterLab headless on 127.0.0.1, a chapter cell that shows a widget, the
widget's slider moved with the keyboard, the plotly figure updated by the Python callback."""

import json
import os
import secrets
import subprocess
import sys

import nbformat
import pytest
from browser_helpers import HISTORY_CELL, free_port, kernelspec_dir, screenshot, stop, wait_for_http
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TITLE = ".jp-OutputArea .js-plotly-plot .gtitle"


def _settings(folder):
    """User settings that stop JupyterLab from asking about its news feed (a toast over the notebook)."""
    notification = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return folder


def _run_first_cell(page, attempts: int = 3) -> None:
    """Select the first cell and press Shift+Enter; again if the kernel was not listening yet (prompt stays ``[ ]:``)."""
    page.get_by_text("Python 3 | Idle").wait_for(timeout=90_000)
    started = "() => /\\[(\\*|\\d+)\\]/.test(document.querySelector('.jp-Cell .jp-InputPrompt').textContent)"
    for _ in range(attempts):
        page.locator(".jp-Cell .jp-InputPrompt").first.click(force=True)  # command mode, first cell selected
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except Exception:
            continue
    raise AssertionError("JupyterLab never ran the cell")


def test_live_widget_slider_updates_the_figure_through_the_kernel(tmp_path, watch):
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = new_notebook(
        cells=[new_code_cell(HISTORY_CELL)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(nb, root / "live.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDIFF_WIDGETS", "JUPYTER_CONFIG_DIR")}
    env |= {
        "MINIDIFF_WIDGETS": "auto",  # a kernel with ipywidgets and anywidget: the live face
        "JUPYTERLAB_SETTINGS_DIR": str(_settings(tmp_path / "settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_PATH": str(kernelspec_dir(tmp_path / "jupyter")),
    }
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    cmd += [
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", 60, proc)
        view = watch(width=1280, height=1000)
        page = view.page
        page.goto(f"http://127.0.0.1:{port}/lab/tree/live.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        _run_first_cell(page)
        try:
            page.wait_for_selector(TITLE, timeout=90_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("page errors:", view.errors, "\nexternal:", view.external)
            print((tmp_path / "lab.log").read_text()[-3000:])
            raise
        before = page.locator(TITLE).text_content()
        assert before == "loss, mean of last 20 steps"
        handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        after = "loss, mean of last 100 steps"  # two notches right of 20: 50, then 100
        page.wait_for_function(
            "([sel, t]) => document.querySelector(sel).textContent === t", arg=[TITLE, after], timeout=30_000
        )
        assert page.locator(".jp-OutputArea .widget-readout").first.text_content().strip() == "100"
        screenshot(page, "jupyterlab_live_widget", full_page=False)
        assert view.errors == [], view.errors
        assert view.external == [], view.external
    finally:
        stop(proc)
        log.close()

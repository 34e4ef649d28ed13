"""Helpers of the browser tests: servers on free 127.0.0.1 ports, a page that records errors and blocks the
network, screenshots, and the notebook cells the tests run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def find_chromium() -> str | None:
    for candidate in (
        os.environ.get("MINIDIFF_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "/usr/bin/chromium",
    ):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


class PageWatch:
    """A page that records page errors and blocks (and records) every request leaving 127.0.0.1 / file://."""

    def __init__(self, browser, width: int = 1280, height: int = 1000) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:", "blob:")):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()


def screenshot(page, name: str, *, full_page: bool = True) -> None:
    """Save a PNG under $MINIDIFF_SCREENSHOTS, if set."""
    folder = os.environ.get("MINIDIFF_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server we started (its own process group: a Jupyter server takes its kernels with it)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """``python -m http.server`` over ``folder`` on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", 20, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def kernelspec_dir(folder: Path) -> Path:
    """A JUPYTER_PATH entry whose ``python3`` kernel is this interpreter (so the venv's packages are there)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    return folder


#: A chapter cell showing the tour's widget: two synthetic runs (no training) in a HistoryViewer.
HISTORY_CELL = """\
import math
import random

from minidiff.train.history import History
from widgets import HistoryViewer

runs = {}
for name, scale in (("AdamW", 1.0), ("Muon", 0.8)):
    rng, history = random.Random(name), History()
    for step in range(1000):
        loss = scale * (3 * math.exp(-step / 200) + 0.5) + 0.2 * rng.random()
        history.log(step, loss=loss, lr=1e-3, grad_norm=1 + rng.random(), tokens=64 * step, wall_time=0.01 * step)
    runs[name] = history
HistoryViewer(runs)"""

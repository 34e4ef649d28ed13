"""Fixtures of the real-browser tests: Debian's chromium driven by the playwright Python package.

`make test` installs chromium with apt where it is missing (``make browser-deps``). Without a browser these tests
skip with the reason, except under ``CI=true``, where a missing browser is a failure. Every test starts and stops
its own server on 127.0.0.1 (a free port) and is bounded in time. Set ``MINIDIFF_SCREENSHOTS=<folder>`` to keep a
PNG of what each test saw.
"""

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM_ARGS, PageWatch, find_chromium, unavailable


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        unavailable("chromium is not installed; `make browser-deps` installs it with apt")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is not installed; pip install -e '.[dev]'")
    return path


@pytest.fixture
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def watch(browser):
    return lambda **kw: PageWatch(browser, **kw)

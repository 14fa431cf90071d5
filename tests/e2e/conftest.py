"""Fixtures for the browser tests: one headless Chromium per module, a fresh service (own
SQLite, own clock) and a fresh browser context per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from authsvc.web import create_app
from tests.e2e.browser_support import TIMEOUT_MS, LiveServer, create_user, launch_chromium, live_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    # idle lock after one minute of the server's clock: the idle test moves that clock
    with live_server(tmp_path / "instance", sessions={"idle_minutes": 1}) as live:
        yield live


@pytest.fixture
def initial_password(server: LiveServer) -> str:
    return create_user(server.deps)


@pytest.fixture
def context(browser: Browser, server: LiveServer) -> Iterator[BrowserContext]:
    # an English-speaking browser: the pages must still be Japanese until English is chosen
    context = browser.new_context(base_url=server.url, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def make_client(make_deps):
    """Deps on SQLite (with optional config sections) and a Flask test client of its app."""
    def factory(**sections):
        deps = make_deps("sqlite", **sections)
        app = create_app(deps=deps)
        app.config["TESTING"] = True
        return deps, app.test_client()
    return factory

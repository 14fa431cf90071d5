"""The logon page opened at an address the terminal agent does not answer (`127.0.0.1` while
the service's address, and so the agent's allowed origin, is `localhost`): the terminal step
says which address to use, instead of "the agent cannot be reached", and asks the agent
nothing. (A page view at `127.0.0.1` on the public URL's own port goes to the public address
first: tests/integration/test_cli_errors.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from authsvc.domain.messages import text
from authsvc.domain.roles import Actor
from authsvc.services import totp
from authsvc.services.passwords import change_password
from tests.e2e.browser_support import (
    NEW_PASSWORD,
    USER_ID,
    LiveServer,
    Terminal,
    create_user,
    enter_code,
    logon,
    service_with_terminal,
)


def at(page: Page, path: str) -> None:
    """The browser shows `path`, still at 127.0.0.1."""
    expect(page).to_have_url(re.compile(rf"^http://127\.0\.0\.1:\d+{re.escape(path)}(\?.*)?$"))


@pytest.fixture
def rig(tmp_path) -> Iterator[Terminal]:
    with service_with_terminal(tmp_path / "instance", "TERMINAL-1", devices={"require_terminal": True}) as t:
        yield t


@pytest.fixture
def server(rig: Terminal) -> LiveServer:
    return rig.server


def test_the_terminal_step_names_the_address_to_use(browser: Browser, rig: Terminal) -> None:
    deps = rig.server.deps
    create_user(deps)
    change_password(deps, Actor(USER_ID), USER_ID, NEW_PASSWORD)
    made = totp.begin_enrolment(deps, Actor(USER_ID), USER_ID)
    totp.confirm_enrolment(deps, Actor(USER_ID), USER_ID, rig.server.totp(made.secret))
    rig.server.clock.advance(seconds=30)
    assert rig.server.url.startswith("http://localhost:")
    numeric = rig.server.url.replace("localhost", "127.0.0.1", 1)
    context = browser.new_context(base_url=numeric, locale="en-US")
    try:
        page = context.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if r.url.startswith(rig.agent_url) else None)
        logon(page, USER_ID, NEW_PASSWORD)
        at(page, "/factor")
        enter_code(page, rig.server.totp(made.secret))
        at(page, "/terminal")
        expect(page.locator("#terminal-error")).to_have_text(
            text("agent_wrong_address", "ja", url=f"{rig.server.url}/terminal"))
        assert asked == []  # the agent was not asked: it would have refused this origin
        assert deps.sessions.of_user(USER_ID) == {}
    finally:
        context.close()

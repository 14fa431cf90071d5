"""R12 in a real browser (headless Chromium through Playwright), with `devices.require_terminal`
on: after the password and a TOTP code the logon page asks the terminal agent on this machine
(its own waitress on 127.0.0.1, keyed by the registered terminal's Ed25519 key) to sign the
service's challenge, by itself, and hands the proof back; the session and the logon history
then name the terminal, not the browser. An unreachable agent gives a clear message and a way
to try again; a revoked terminal is refused like any other refusal, with no session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from authsvc.domain.messages import text
from authsvc.domain.roles import Actor
from authsvc.services import devices, totp
from authsvc.services.passwords import change_password
from tests.e2e.browser_support import (
    NEW_PASSWORD,
    OPERATOR,
    USER_ID,
    LiveServer,
    Terminal,
    create_user,
    enter_code,
    logon,
    path_is,
    service_with_terminal,
)
from tests.integration.support import events

TERMINAL = "TERMINAL-1"


@pytest.fixture
def rig(tmp_path) -> Iterator[Terminal]:
    with service_with_terminal(tmp_path / "instance", TERMINAL, devices={"require_terminal": True}) as t:
        yield t


@pytest.fixture
def server(rig: Terminal) -> LiveServer:  # the conftest's browser context goes to this service
    return rig.server


@pytest.fixture
def secret(rig: Terminal) -> str:
    """An approved account with its password changed and TOTP enrolled; its secret."""
    deps = rig.server.deps
    create_user(deps)
    change_password(deps, Actor(USER_ID), USER_ID, NEW_PASSWORD)
    made = totp.begin_enrolment(deps, Actor(USER_ID), USER_ID)
    totp.confirm_enrolment(deps, Actor(USER_ID), USER_ID, rig.server.totp(made.secret))
    rig.server.clock.advance(seconds=30)
    return made.secret


def password_and_code(page: Page, rig: Terminal, secret: str) -> None:
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    enter_code(page, rig.server.totp(secret))


def reasons(rig: Terminal) -> list[tuple[str, str]]:
    return [(e.result, e.data.get("reason", "")) for e in events(rig.server.deps, "logon.terminal", USER_ID)]


def test_a_totp_logon_proves_the_terminal_through_the_agent(page, rig, secret):
    problems: list[str] = []  # a CSP refusal or a script error would show here
    page.on("console", lambda m: problems.append(f"{m.text} {m.location['url']}")
            if m.type == "error" else None)  # the favicon too: it is served
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    with page.expect_request(lambda r: r.url == rig.agent_url + "/attest" and r.method == "POST") as asked:
        password_and_code(page, rig, secret)
    path_is(page, "/home")
    assert asked.value.post_data_json.keys() == {"challenge"}  # the challenge only, nothing else
    assert problems == []
    expect(page.locator("#sessions td.terminal")).to_have_text(TERMINAL)
    expect(page.locator("#history")).to_contain_text(text("hist_terminal", "ja"))
    expect(page.locator("#history tr").nth(1).locator("td.terminal")).to_have_text(TERMINAL)  # logged on
    [view] = rig.server.deps.sessions.of_user(USER_ID).values()
    assert view["terminal"] == TERMINAL
    assert reasons(rig) == [("ok", "")]


def test_an_unreachable_agent_gives_a_clear_message_and_a_way_to_try_again(page, rig, secret):
    page.route(rig.agent_url + "/attest", lambda route: route.abort())  # the agent is not running
    password_and_code(page, rig, secret)
    path_is(page, "/terminal")
    expect(page.locator("#terminal-error")).to_have_text(text("terminal_agent_unreachable", "ja"))
    expect(page.locator("#terminal-go")).to_be_enabled()
    assert rig.server.deps.sessions.of_user(USER_ID) == {}
    assert reasons(rig) == []  # nothing reached the service: nothing counted against the user
    page.unroute(rig.agent_url + "/attest")
    page.click("#terminal-go")
    path_is(page, "/home")
    assert reasons(rig) == [("ok", "")]


def test_a_revoked_terminal_is_refused_like_any_refusal(page, rig, secret):
    devices.change(rig.server.deps, OPERATOR, TERMINAL, "revoke", "lost")
    password_and_code(page, rig, secret)
    path_is(page, "/terminal")
    expect(page.locator("#terminal-error")).to_have_text(text("logon_failed", "ja"))
    assert rig.server.deps.sessions.of_user(USER_ID) == {}
    assert reasons(rig) == [("failed", "device_revoked")]
    page.goto("/home")
    path_is(page, "/terminal")  # still only the pending logon

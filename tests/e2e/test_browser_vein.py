"""Password + palm vein in a real browser (headless Chromium through Playwright): the logon page
takes a challenge from the service, asks the terminal agent on this machine (its own waitress on
127.0.0.1, an emulated reader keyed by the registered terminal's Ed25519 key) for a capture bound
to it, and hands the signed capture back (R10-R13). Another person's palm, a reader fault, an
unreachable agent, a revoked terminal and a replayed capture are all refused, with a clear
message, no session and nothing half-finished."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from adapters.vein import Capture, open_reader
from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import devices, vein
from authsvc.services.passwords import change_password
from tests.e2e.browser_support import (
    COMPANY,
    NEW_PASSWORD,
    OPERATOR,
    USER_ID,
    LiveServer,
    create_user,
    logoff,
    logon,
    path_is,
    service_with_terminal,
)
from tests.integration.support import events

TERMINAL = "TERMINAL-1"
PALM, OTHER_PALM = 42, 7
GENERIC = text("vein_read_again", "ja")  # a refused palm: read it again (the same for every reason)


@dataclass
class Rig:
    server: LiveServer
    agent_url: str
    reader: Any  # the terminal's emulated reader (its control channel scripts the next capture)

    def control(self, command: str) -> str:
        """Script the agent's reader over its HTTP control endpoint, as a local tool would."""
        req = urllib.request.Request(self.agent_url + "/control", method="POST",
                                     data=json.dumps({"command": command}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)["answer"]


@pytest.fixture
def rig(tmp_path) -> Iterator[Rig]:
    """The service, told where the agent listens, and the agent, allowed only the service's
    page; the terminal's key registered as TERMINAL-1."""
    with service_with_terminal(tmp_path / "instance", TERMINAL) as t:
        yield Rig(t.server, t.agent_url, t.reader)


@pytest.fixture
def server(rig: Rig) -> LiveServer:  # the conftest's browser context goes to this service
    return rig.server


@pytest.fixture
def user(rig: Rig) -> str:
    """An approved account with its password changed, palm 42 enrolled in person by staff of
    its company at the registration station (its own reader, not registered: enrolment is
    local)."""
    deps = rig.server.deps
    create_user(deps)
    change_password(deps, Actor(USER_ID), USER_ID, NEW_PASSWORD)
    staff = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-1", company=COMPANY)
    with open_reader("emulated", seed=0, reader_id="STATION-1", clock=rig.server.clock) as station:
        def take(challenge: bytes) -> Capture:
            station.control.present(PALM)
            return station.capture("enrol", challenge)

        vein.enrol(deps, staff, USER_ID, station, take)
    assert vein.is_enrolled(deps, USER_ID)
    return USER_ID


def to_vein_page(page: Page) -> None:
    """The palm page as a retry finds it: waiting for 「手のひら静脈で確認する」 (the second-factor
    page's link opens it reading at once; here each test scripts the reader first)."""
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    page.goto("/factor/vein")


def refused(page: Page, rig: Rig, message: str = GENERIC) -> None:
    """The step failed visibly, the user may try again, and there is no session."""
    expect(page.locator("#vein-error")).to_be_visible()
    expect(page.locator("#vein-error")).to_have_text(message)
    expect(page.locator("#vein-go")).to_be_enabled()
    path_is(page, "/factor/vein")
    assert rig.server.deps.sessions.of_user(USER_ID) == {}


def reasons(rig: Rig) -> list[str | None]:
    return [e.data.get("reason") for e in events(rig.server.deps, "vein.capture", USER_ID)]


def test_password_and_palm_vein_through_the_agent(page, context, rig, user):
    problems: list[str] = []  # a CSP refusal or a script error would show here
    page.on("console", lambda m: problems.append(f"{m.text} {m.location['url']}")
            if m.type == "error" else None)  # the favicon too: it is served
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    to_vein_page(page)
    expect(page.locator("#vein-error")).to_be_hidden()
    shown = page.reload()
    assert shown is not None
    assert f"connect-src 'self' {rig.agent_url}" in shown.headers["content-security-policy"]
    # the person at the terminal chooses the palm on the agent's emulator page
    emulator = context.new_page()
    emulator.goto(rig.agent_url + "/")
    expect(emulator.locator("h1")).to_contain_text(TERMINAL)
    emulator.fill("input[name=palm]", str(PALM))
    emulator.click("button[value=present]")
    expect(emulator.locator("body")).to_contain_text("present")
    assert [(o.kind, o.palm) for o in rig.reader.control.pending] == [("present", PALM)]
    emulator.close()

    # one press of 「手のひら静脈で確認する」 on the second-factor page, as the README says
    page.goto("/factor")
    page.click("#use-vein")
    path_is(page, "/home")
    expect(page.locator("h1")).to_contain_text("佐藤 花子")
    assert problems == []
    assert len(rig.server.deps.sessions.of_user(USER_ID)) == 1
    ok = [e for e in events(rig.server.deps, "vein.capture", USER_ID) if e.result == "ok"]
    assert len(ok) == 1 and ok[0].data["device"] == TERMINAL


def test_another_persons_palm_is_refused(page, rig, user):
    to_vein_page(page)
    assert rig.control(f"present {OTHER_PALM}") == "ok"
    page.click("#vein-go")
    refused(page, rig)
    page.goto("/home")
    path_is(page, "/factor")  # still only the pending logon
    assert reasons(rig)[-1] == "no_match"
    # the right palm, next: the same pending logon completes
    page.goto("/factor/vein")
    rig.reader.control.present(PALM)
    page.click("#vein-go")
    path_is(page, "/home")


def test_reader_faults_and_an_unreachable_agent_give_clear_messages(page, rig, user):
    to_vein_page(page)
    assert rig.control("unplug") == "ok"
    page.click("#vein-go")
    refused(page, rig, text("vein_disconnected", "ja"))
    assert rig.control("plug") == "ok"
    rig.control("no_hand")
    page.click("#vein-go")
    refused(page, rig, text("vein_no_hand", "ja"))
    rig.control(f"spoof {PALM}")
    page.click("#vein-go")
    refused(page, rig, text("vein_not_read", "ja"))  # not "spoof": nothing to learn from
    page.route(rig.agent_url + "/capture", lambda route: route.abort())  # the agent is not running
    page.click("#vein-go")
    refused(page, rig, text("vein_agent_unreachable", "ja"))
    page.unroute(rig.agent_url + "/capture")
    assert reasons(rig) == []  # no capture reached the service: nothing counted against the user
    rig.reader.control.present(PALM)  # nothing half-finished: the next try works
    page.click("#vein-go")
    path_is(page, "/home")


def test_revoked_terminal_is_refused_even_with_the_right_palm(page, rig, user):
    to_vein_page(page)
    devices.change(rig.server.deps, OPERATOR, TERMINAL, "revoke", "lost")
    rig.reader.control.present(PALM)
    page.click("#vein-go")
    refused(page, rig)
    assert reasons(rig)[-1] == "device_not_active"
    page.goto("/home")
    path_is(page, "/factor")


def test_replayed_capture_is_refused(page, rig, user):
    to_vein_page(page)
    rig.reader.control.present(PALM)
    answers: list[dict[str, Any]] = []

    def keep(route: Route) -> None:  # what the agent answered, passed on unchanged
        if route.request.method == "POST":
            resp = route.fetch()
            answers.append(resp.json())
            route.fulfill(response=resp)
        else:
            route.continue_()

    page.route(rig.agent_url + "/capture", keep)
    with page.expect_request(lambda r: r.url.endswith("/vein/verify")) as to_service:
        page.click("#vein-go")
    path_is(page, "/home")
    page.unroute(rig.agent_url + "/capture")
    [taken] = answers
    sent = to_service.value.post_data_json
    assert taken["device_id"] == TERMINAL
    assert sent["capture"] == taken["capture"]  # the page carried the agent's capture unchanged
    logoff(page)

    to_vein_page(page)
    post = """async ([url, body]) => {
        const csrf = document.querySelector("meta[name=csrf-token]").content;
        const r = await fetch(url, {method: "POST", body: JSON.stringify(body),
            headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}});
        return [r.status, await r.json()];
    }"""
    # the same capture with the same (spent) challenge id
    status, body = page.evaluate(post, ["/vein/verify", {"challenge_id": sent["challenge_id"],
                                                         "capture": taken["capture"]}])
    assert (status, body["error"]) == (401, "logon_failed")
    # the old capture offered for a fresh challenge
    status, fresh = page.evaluate(post, ["/vein/challenge", {}])
    assert status == 200
    status, body = page.evaluate(post, ["/vein/verify", {"challenge_id": fresh["challenge_id"],
                                                         "capture": taken["capture"]}])
    assert status == 401
    assert reasons(rig)[-2:] == ["challenge", "other_challenge"]
    page.goto("/home")
    path_is(page, "/factor")
    assert rig.server.deps.sessions.of_user(USER_ID) == {}

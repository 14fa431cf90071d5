"""Palm-vein registration in a real browser (R14, R8, R22): two Chromium contexts, the
registrant at their registered terminal and their company's system administrator in the
console (its own logon, password + one-time code), Chromium's fake camera for the photo ID
(`--use-fake-device-for-media-stream --use-fake-ui-for-media-stream`) and the terminal agent
with the emulated reader for the palm. Also: rejection, no consent, an administrator of
another company, the registrant attending themselves, a duplicate palm under a second person
record, a second contract of an enrolled person, and the in-person path at the station."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from adapters.vein import open_reader
from authsvc.domain.roles import Actor, Role
from authsvc.messages import text
from authsvc.services import devices, registration, totp, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.services.passwords import change_password
from authsvc.store.models import Evidence
from tests.e2e.browser_support import (
    OPERATOR,
    TIMEOUT_MS,
    LiveServer,
    launch_chromium,
    live_agent,
    live_server,
    logon,
    loopback_socket,
    path_is,
)
from tests.integration.support import CHOSEN, active_account, add_contract, events

FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
TERMINAL = "TERMINAL-1"
COMPANY = "防衛産業株式会社"
PALM, OTHER_PALM = 42, 7
PASSWORD = CHOSEN[0]
ACCOUNT_ADMIN = Actor("acct1", frozenset({Role.ACCOUNT_ADMIN}))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, FAKE_CAMERA)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Rig:
    server: LiveServer
    agent_url: str
    reader: Any  # the registrant's terminal (its agent); also the station's in the in-person test
    browser: Browser
    secrets: dict[str, str]

    @property
    def deps(self) -> Any:
        return self.server.deps

    def context(self) -> BrowserContext:
        context = self.browser.new_context(base_url=self.server.url, locale="ja-JP")
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        return context

    def person(self, user_id: str, *, role: str = "user", contract: str = "C-2026-001",
               name: str = "山田 花子", person_id: int | None = None, consent: bool = False,
               otp: bool = False) -> str:
        """An approved account with its initial password changed; optionally consent to remote
        registration recorded and a one-time password app (for the console's logon)."""
        active_account(self.deps, ACCOUNT_ADMIN, OPERATOR, user_id, name=name, contract=contract,
                       role=role, person_id=person_id)
        change_password(self.deps, Actor(user_id), user_id, PASSWORD)
        if consent:
            registration.record_consent(self.deps, ACCOUNT_ADMIN, user_id, True)
        if otp:
            made = totp.begin_enrolment(self.deps, Actor(user_id), user_id)
            totp.confirm_enrolment(self.deps, Actor(user_id), user_id, self.server.totp(made.secret))
            self.secrets[user_id] = made.secret
            self.server.clock.advance(seconds=30)  # the next code is a new one
        return user_id

    def present(self, palm: int, times: int = 1) -> None:
        for _ in range(times):
            self.reader.control.present(palm)


@pytest.fixture
def rig(tmp_path, browser) -> Iterator[Rig]:
    sock = loopback_socket()
    agent_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with live_server(tmp_path / "instance", vein={"agent_url": agent_url}) as live:
            reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(),
                                 reader_id=TERMINAL, clock=live.clock)
            raw = base64.urlsafe_b64encode(reader.public_key_bytes()).decode().rstrip("=")
            devices.register(live.deps, OPERATOR, TERMINAL, raw)
            for number, company in (("C-2026-001", COMPANY), ("C-2026-002", COMPANY),
                                    ("C-2026-900", "別会社株式会社"), (OPERATIONS_CONTRACT, "DSG運用")):
                add_contract(live.deps, OPERATOR, number, company)
            try:
                with live_agent(reader, TERMINAL, (live.url,), sock):
                    yield Rig(live, agent_url, reader, browser, {})
            finally:
                reader.close()
    finally:
        sock.close()


def watch(page: Page) -> list[str]:
    """Script errors and CSP refusals on the page, collected for the test to assert none."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.text} {m.location['url']}")
            if m.type == "error" and not m.location["url"].endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def console_logon(rig: Rig, user_id: str) -> Page:
    """A new browser context for `user_id`, logged on to the console with password + code."""
    page = rig.context().new_page()
    page.goto("/console/")
    path_is(page, "/console/logon/")
    expect(page.locator("#surface")).to_be_visible()
    page.fill("#user_id", user_id)
    page.fill("#password", PASSWORD)
    page.click("#logon")
    path_is(page, "/console/logon/factor")
    page.fill("#code", rig.server.totp(rig.secrets[user_id]))
    page.click("#confirm")
    rig.server.clock.advance(seconds=30)
    return page


def registrant_opens(rig: Rig, user_id: str) -> Page:
    """The registrant logs on at their terminal, is sent to registration and opens a session."""
    page = rig.context().new_page()
    logon(page, user_id, PASSWORD)
    path_is(page, "/register/")
    page.click("#register-remote")
    expect(page.locator("#registration-state")).to_have_attribute("data-state", "waiting")
    return page


def state_is(page: Page, state: str) -> None:
    expect(page.locator("#registration-state")).to_have_attribute("data-state", state)


def join(admin: Page, user_id: str) -> None:
    admin.goto("/console/registrations")
    admin.locator(f"tr[data-registrant='{user_id}'] button.join").click()
    state_is(admin, "joined")


def capture_id(page: Page) -> None:
    state_is(page, "joined")  # the page followed the administrator's joining by itself
    page.click("#camera-start")
    expect(page.locator("#id-capture")).to_be_enabled()
    page.click("#id-capture")
    state_is(page, "id_captured")


def confirm(admin: Page) -> None:
    state_is(admin, "id_captured")
    image = admin.locator("#id-image")
    expect(image).to_be_visible()
    admin.wait_for_function("document.getElementById('id-image').naturalWidth > 0")
    admin.click("#confirm-identity")
    state_is(admin, "confirmed")


def reg_actions(rig: Rig, subject: str) -> list[str]:
    return [e.action for e in events(rig.deps, subject=subject) if e.action.startswith("registration.")]


# ---- the remote path ------------------------------------------------------------------------


def test_the_full_remote_path(rig):
    rig.person("yamada", consent=True)
    rig.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    user = registrant_opens(rig, "yamada")
    problems = watch(user)
    admin = console_logon(rig, "sato")
    path_is(admin, "/console/")
    admin_problems = watch(admin)
    join(admin, "yamada")
    expect(user.locator("#attendant")).to_have_text("sato")
    capture_id(user)
    [ev] = _evidence(rig)
    assert ev.content_type == "image/jpeg" and ev.size > 1000 and ev.sealed
    confirm(admin)
    state_is(user, "confirmed")
    rig.present(PALM, 3)
    user.click("#vein-enrol")
    state_is(user, "enrolled")
    state_is(admin, "enrolled")
    assert vein.is_enrolled(rig.deps, "yamada")
    [enrolled] = events(rig.deps, "vein.enrol", "yamada")
    assert enrolled.actor == "sato" and enrolled.data["reader"] == TERMINAL  # the witness
    admin.click("#close-registration")
    path_is(admin, "/console/registrations")
    # the logon goes on to the palm just registered
    user.click("#continue")
    path_is(user, "/factor")
    user.click("#use-vein")
    rig.present(PALM)
    user.click("#vein-go")
    path_is(user, "/home")
    assert reg_actions(rig, "yamada") == [
        "registration.consent", "registration.opened", "registration.joined",
        "registration.id_captured", "registration.id_viewed", "registration.confirmed",
        "registration.enrolled", "registration.closed"]
    for e in events(rig.deps, subject="yamada"):
        if e.action.startswith("registration.") and e.action not in ("registration.consent",
                                                                      "registration.opened"):
            assert e.data["registrant"] == "yamada" and e.data["admin"] == "sato", e
    assert problems == [] and admin_problems == []


def _evidence(rig: Rig) -> list[Evidence]:
    with rig.deps.uow() as uow:
        rows = list(uow.session.query(Evidence))
        uow.session.expunge_all()
        return rows

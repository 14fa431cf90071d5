"""Palm-vein registration in a real browser (R14, R8, R22): two Chromium contexts, the
registrant at their registered terminal and their company's system administrator in the
console (its own logon, password + one-time code), Chromium's fake camera for the photo ID
(`--use-fake-device-for-media-stream --use-fake-ui-for-media-stream`) and the terminal agent
with the emulated reader for the palm. Also: rejection, no consent, an administrator of
another company, the registrant attending themselves, a duplicate palm under a second person
record, a second contract of an enrolled person, and the in-person path at the station."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import registration, totp, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.services.passwords import change_password
from authsvc.store.models import Evidence
from tests.e2e.browser_support import (
    OPERATOR,
    TIMEOUT_MS,
    LiveServer,
    launch_chromium,
    logon,
    path_is,
    service_with_terminal,
)
from tests.integration.support import CHOSEN, active_account, add_contract, events

FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
TERMINAL = "TERMINAL-1"
COMPANY = "防衛産業株式会社"
PALM, OTHER_PALM = 42, 7
PASSWORD = CHOSEN[0]
ACCOUNT_ADMIN = Actor("acct1", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY)
# the rig's contracts and the company of each (its accounts are managed by that company)
CONTRACTS = {"C-2026-001": COMPANY, "C-2026-002": COMPANY, "C-2026-900": "別会社株式会社",
             OPERATIONS_CONTRACT: "DSG運用"}


def account_admin_of(contract: str) -> Actor:
    """The account administrator of the company holding `contract` (R24)."""
    company = CONTRACTS[contract]
    return ACCOUNT_ADMIN if company == COMPANY else Actor(f"acct-{contract.lower()}",
                                                          frozenset({Role.ACCOUNT_ADMIN}),
                                                          company=company)


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
        active_account(self.deps, account_admin_of(contract), OPERATOR, user_id, name=name,
                       contract=contract, role=role, person_id=person_id)
        change_password(self.deps, Actor(user_id), user_id, PASSWORD)
        if consent:
            registration.record_consent(self.deps, account_admin_of(contract), user_id, True)
        if otp:
            made = totp.begin_enrolment(self.deps, Actor(user_id), user_id)
            totp.confirm_enrolment(self.deps, Actor(user_id), user_id, self.server.totp(made.secret))
            self.secrets[user_id] = made.secret
            self.server.clock.advance(seconds=30)  # the next code is a new one
        return user_id

    def present(self, palm: int, times: int = 1) -> None:
        """Queue `times` presentations of `palm`, held well (quality 90: each counts toward an
        enrolment; a poorer one may not, and the page then asks for the palm again)."""
        for _ in range(times):
            self.reader.control.present(palm, quality=90)


@pytest.fixture
def rig(tmp_path, browser) -> Iterator[Rig]:
    with service_with_terminal(tmp_path / "instance", TERMINAL) as t:
        for number, company in CONTRACTS.items():
            add_contract(t.server.deps, OPERATOR, number, company)
        yield Rig(t.server, t.agent_url, t.reader, browser, {})


def watch(page: Page) -> list[str]:
    """Script errors and CSP refusals on the page, collected for the test to assert none (an
    answer with an error status, which the page shows as a message, is not one)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.text} {m.location['url']}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
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
    expect(admin.locator("#registrant-name")).to_have_text("山田 花子")  # to compare with the ID
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
    rig.present(PALM)
    user.click("#use-vein")  # one press: the palm page reads at once
    try:
        path_is(user, "/home")
    except AssertionError as exc:  # once in a loaded CI run: say what the server decided
        seen = [(e.action, e.result, e.detail) for e in events(rig.deps, None, "yamada")][-6:]
        raise AssertionError(f"{exc}\nlast audit events of yamada: {seen}") from None
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


def test_rejection_by_the_administrator(rig):
    rig.person("yamada", consent=True)
    rig.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    user = registrant_opens(rig, "yamada")
    admin = console_logon(rig, "sato")
    join(admin, "yamada")
    capture_id(user)
    state_is(admin, "id_captured")
    admin.fill("#reject-reason", "写真と本人が一致しない")
    admin.click("#reject-identity")
    state_is(admin, "rejected")
    state_is(user, "rejected")
    expect(user.locator("#registration-state")).to_have_text(text("reg_registrant_rejected", "ja"))
    expect(user.locator("#vein-enrol")).to_have_count(0)  # no palm reading after a rejection
    with pytest.raises(Exception) as refused:  # nor through the service, in this session
        registration.enrol_challenges(rig.deps, Actor("yamada"), _live_id(rig, "yamada"))
    assert getattr(refused.value, "code", "") == "registration_wrong_step"
    admin.click("#close-registration")
    assert not vein.is_enrolled(rig.deps, "yamada")
    [rejected] = events(rig.deps, "registration.rejected", "yamada")
    assert rejected.actor == "sato" and rejected.data["reason"] == "写真と本人が一致しない"
    assert rejected.data["registrant"] == "yamada"


def _live_id(rig: Rig, user_id: str) -> str:
    [opened] = events(rig.deps, "registration.opened", user_id)[-1:]
    return opened.data["session"]


def test_no_consent_means_no_remote_option(rig):
    rig.person("tanaka")
    page = rig.context().new_page()
    logon(page, "tanaka", PASSWORD)
    path_is(page, "/register/")
    expect(page.locator("#register-in-person")).to_have_text(text("ui_register_in_person", "ja"))
    expect(page.locator("#register-remote")).to_have_count(0)
    # a hand-made request to open one anyway is refused, and says why
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    resp = page.request.post("/register/open", form={"csrf_token": token or ""})
    assert resp.status == 409
    assert text("registration_no_consent", "ja") in resp.text()
    assert [e.data["reason"] for e in events(rig.deps, "registration.open", "tanaka")] == [
        "registration_no_consent"]
    # nothing else is reachable with the password alone: back to where the logon stands
    for other in ("/home", "/factor", "/factor/vein", "/console/"):
        page.goto(other)
        path_is(page, "/console/logon/" if other == "/console/" else "/register/")


def test_an_administrator_of_another_company_cannot_attend(rig):
    rig.person("yamada", consent=True)
    rig.person("suzuki", role="system_admin", name="鈴木 次郎", contract="C-2026-900", otp=True)
    user = registrant_opens(rig, "yamada")
    sid = _live_id(rig, "yamada")
    other = console_logon(rig, "suzuki")
    other.goto("/console/registrations")
    expect(other.locator("#none-waiting")).to_be_visible()  # not even listed
    token = other.locator("meta[name=csrf-token]").get_attribute("content")
    resp = other.request.post(f"/console/registrations/{sid}/join", form={"csrf_token": token or ""})
    assert resp.status == 403
    assert text("registration_other_company", "ja") in resp.text()
    other.goto(f"/console/registrations/{sid}")
    expect(other.locator("p.message")).to_have_text(text("forbidden", "ja"))
    state_is(user, "waiting")
    [refusal] = events(rig.deps, "registration.join", "yamada")
    assert refusal.result == "refused" and refusal.data["reason"] == "registration_other_company"
    assert refusal.data["attempted_by"] == "suzuki"


def test_the_registrant_cannot_attend_or_confirm_their_own_registration(rig):
    # the registrant's own browser: the console is another surface, nothing there is theirs
    rig.person("yamada", consent=True)
    user = registrant_opens(rig, "yamada")
    sid = _live_id(rig, "yamada")
    user.goto("/console/")
    path_is(user, "/console/logon/")
    token = user.locator("meta[name=csrf-token]").get_attribute("content") or ""
    for action in ("join", "confirm"):
        resp = user.request.post(f"/console/registrations/{sid}/{action}", form={"csrf_token": token})
        assert resp.status == 401
    # a user who completes the console's MFA is still no administrator
    rig.person("ueda", name="上田 四郎", otp=True)
    user.fill("#user_id", "ueda")
    user.fill("#password", PASSWORD)
    user.click("#logon")
    user.fill("#code", rig.server.totp(rig.secrets["ueda"]))
    user.click("#confirm")
    expect(user.locator("p.error")).to_have_text(text("logon_failed", "ja"))
    assert [h.reason for h in _history(rig, "ueda") if h.step == "console"] == ["not_administrator"]
    # a system administrator registering their own palm cannot attend or confirm it either
    rig.person("kimura", role="system_admin", name="木村 三郎", consent=True, otp=True)
    own_sid = registration.open_session(rig.deps, Actor("kimura"), "kimura").id
    console = console_logon(rig, "kimura")
    console.goto("/console/registrations")
    expect(console.locator("tr[data-registrant='kimura']")).to_have_count(0)
    expect(console.locator("tr[data-registrant='yamada']")).to_have_count(1)
    token = console.locator("meta[name=csrf-token]").get_attribute("content") or ""
    resp = console.request.post(f"/console/registrations/{own_sid}/join", form={"csrf_token": token})
    assert resp.status == 403 and text("registration_self_attend", "ja") in resp.text()
    resp = console.request.post(f"/console/registrations/{own_sid}/confirm", form={"csrf_token": token})
    assert resp.status == 403
    assert registration.get(rig.deps, Actor("kimura"), own_sid).state == "waiting"
    assert {e.data["reason"] for e in events(rig.deps, subject="kimura")
            if e.result == "refused" and e.action.startswith("registration.")} == {
        "registration_self_attend", "registration_not_attendant"}
    assert registration.get(rig.deps, Actor("yamada"), sid).state == "waiting"


def _history(rig: Rig, user_id: str) -> list[Any]:
    with rig.deps.uow() as uow:
        rows = uow.logon_history(user_id, 100)
        uow.session.expunge_all()
        return rows


def test_a_duplicate_palm_under_a_second_person_record_is_caught(rig):
    rig.person("yamada", consent=True)
    rig.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    _enrol_at_station(rig, "yamada", PALM)
    # the same human, a second person record (another name, another account)
    rig.person("yamada2", name="山田 華子", consent=True)
    user = registrant_opens(rig, "yamada2")
    admin = console_logon(rig, "sato")
    join(admin, "yamada2")
    capture_id(user)
    confirm(admin)
    state_is(user, "confirmed")
    rig.present(PALM, 3)
    user.click("#vein-enrol")
    expect(user.locator("#registration-error")).to_have_text(text("vein_duplicate_person", "ja"))
    user.reload()
    state_is(user, "stopped")
    state_is(admin, "stopped")
    assert not vein.is_enrolled(rig.deps, "yamada2")
    [alert] = events(rig.deps, "vein.duplicate_person", "yamada2")
    assert alert.result == "alert"
    [stopped] = events(rig.deps, "registration.stopped", "yamada2")
    assert stopped.result == "alert" and stopped.data["admin"] == "sato"


def _enrol_at_station(rig: Rig, user_id: str, palm: int) -> None:
    """kanri, the agency's staff at the registration station (an account on the operations
    contract: what makes the station the agency's), enrols `user_id`'s palm in person."""
    with rig.deps.uow(read_only=True) as uow:
        known = uow.account("kanri") is not None
    if not known:
        rig.person("kanri", role="staff", name="管理 三郎", contract=OPERATIONS_CONTRACT)
    staff = Actor("kanri", frozenset({Role.STAFF}), terminal="STATION-1")

    def take(challenge: bytes) -> Any:
        rig.reader.control.present(palm, quality=90)
        return rig.reader.capture("enrol", challenge)

    registration.enrol_in_person(rig.deps, staff, user_id, rig.reader, take, "passport")


def test_a_second_contract_logs_on_with_the_existing_enrolment(rig):
    rig.person("yamada")
    _enrol_at_station(rig, "yamada", PALM)
    person = _person_id(rig, "yamada")
    rig.person("yamada-b", contract="C-2026-002", person_id=person)
    page = rig.context().new_page()
    logon(page, "yamada-b", PASSWORD)
    path_is(page, "/factor")  # no registration: the person's palm is already enrolled
    rig.present(PALM)
    page.click("#use-vein")
    path_is(page, "/home")
    expect(page.locator("#user-id")).to_have_text("yamada-b")
    assert events(rig.deps, "registration.opened", "yamada-b") == []
    # and a registration is refused as not needed
    with pytest.raises(Exception) as refused:
        registration.record_consent(rig.deps, ACCOUNT_ADMIN, "yamada-b", True)
        registration.open_session(rig.deps, Actor("yamada-b"), "yamada-b")
    assert getattr(refused.value, "code", "") == "registration_not_needed"


def _person_id(rig: Rig, user_id: str) -> int:
    with rig.deps.uow() as uow:
        acc = uow.account(user_id)
        assert acc is not None
        return acc.person_id


def test_the_in_person_path_from_the_console(rig):
    rig.person("tanaka", name="田中 太郎")  # no consent: the station is the way
    rig.person("kanri", role="staff", name="管理 三郎", contract=OPERATIONS_CONTRACT, otp=True)
    staff = console_logon(rig, "kanri")
    problems = watch(staff)
    staff.click("#menu-enrol")
    path_is(staff, "/console/enrol")
    rig.present(PALM, 3)
    staff.click("#vein-enrol")  # the form is not filled: nothing is read
    expect(staff.locator("#registration-error")).to_be_visible()
    assert len(rig.reader.control.pending) == 3
    staff.fill("#station-user", "tanaka")
    staff.select_option("#station-document", "driving_licence")
    staff.check("#station-checked")
    rig.reader.control.clear()
    rig.reader.control.present(PALM, quality=45)  # readable, yet too poor for a template
    rig.present(PALM, 2)
    staff.click("#vein-enrol")
    expect(staff.locator("#registration-error")).to_have_text(text("vein_enrol_again", "ja"))
    assert not vein.is_enrolled(rig.deps, "tanaka")
    rig.present(PALM, 3)  # the page asks again; a new round of readings completes it
    staff.click("#vein-enrol")
    expect(staff.locator("#enrol-done")).to_have_text(text("station_enrolled", "ja", user_id="tanaka"))
    assert vein.is_enrolled(rig.deps, "tanaka")
    attempts = events(rig.deps, "registration.in_person", "tanaka")  # each attempt, witnessed
    assert len(attempts) == 2
    assert all(e.actor == "kanri" and e.data["id_document"] == "driving_licence" for e in attempts)
    [enrolled] = events(rig.deps, "vein.enrol", "tanaka")
    assert enrolled.actor == "kanri" and enrolled.data["reader"] == TERMINAL
    assert problems == []
    # the person logs on with the palm just enrolled
    page = rig.context().new_page()
    logon(page, "tanaka", PASSWORD)
    path_is(page, "/factor")
    rig.present(PALM)
    page.click("#use-vein")
    path_is(page, "/home")


def test_the_waiting_list_follows_by_itself(rig):
    rig.person("yamada", consent=True)
    rig.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    admin = console_logon(rig, "sato")
    admin.click("#menu-registrations")
    expect(admin.locator("#none-waiting")).to_be_visible()
    registrant_opens(rig, "yamada")
    row = admin.locator("tr[data-registrant='yamada']")
    expect(row).to_contain_text("山田 花子")  # no reload by hand: the page follows the list
    row.locator("button.join").click()
    state_is(admin, "joined")

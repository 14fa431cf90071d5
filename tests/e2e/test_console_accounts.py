"""Account administration and the alert inbox in the administrators' console (R4, R7, R8, R9,
R16, R24, R25): the search, the account's page with the real reason of each refusal and its
lock, the actions on it (each with a reason, audited), a new initial password shown once, the
company scope (another company's account answers like an unknown ID), the console's own
session and CSRF on every action; and one operator's way through it in headless Chromium.

Flask's test client against the real app (SQLite, the test clock); a small rig of its own."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import pytest
from playwright.sync_api import expect

from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, alerts, totp
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.services.passwords import change_password
from authsvc.web import create_app
from authsvc.web.pages import when
from tests.conftest import AGENCY
from tests.e2e.browser_support import OPERATOR as BROWSER_OPERATOR
from tests.e2e.browser_support import LiveServer, create_user, enter_code, logon, path_is
from tests.e2e.test_web_console import get, where
from tests.integration.support import (
    CHOSEN,
    add_contract,
    confirmed_totp,
    dump_all,
    events,
    next_totp,
    password_step,
    ready,
)

BASE = "https://localhost"
PASSWORD = CHOSEN[0]
WRONG = "Wrong#Pass9x"
COMPANY = "防衛産業株式会社"
OTHER = "別会社株式会社"
OPERATOR = Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="console-1")
CONTRACTS = {"C-1": COMPANY, "C-9": OTHER, OPERATIONS_CONTRACT: "DSG運用"}
MAX_FAILURES = 5  # config: lockout.max_failures


# ---- the rig -------------------------------------------------------------------------------


@dataclass
class Rig:
    deps: Deps
    app: Any
    secrets: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        return self.app.test_client()

    def person(self, user_id: str, name: str, role: str = "user", contract: str = "C-1") -> str:
        """An approved account, its password changed to PASSWORD, with a confirmed TOTP app."""
        ready(self.deps, OPERATOR, OPERATOR, user_id, PASSWORD, name=name, contract=contract, role=role)
        self.secrets[user_id] = confirmed_totp(self.deps, user_id)
        return user_id

    def code(self, user_id: str) -> str:
        return next_totp(self.deps, self.secrets[user_id])  # each code counts once: a new time step

    def log_on(self, client: Any, user_id: str, prefix: str = "") -> Any:
        """Password, then a one-time code, at the user's logon ("") or the console's."""
        assert where(post(client, f"{prefix}/login", {"user_id": user_id, "password": PASSWORD})) \
            == f"{prefix}/factor"
        return post(client, f"{prefix}/factor/totp", {"code": self.code(user_id)})

    def console(self, user_id: str) -> Any:
        client = self.client()
        assert where(self.log_on(client, user_id, "/console/logon")) == "/console/"
        return client

    def lock(self, user_id: str) -> None:
        """MAX_FAILURES wrong passwords at the user's logon page: the account locks (R4)."""
        client = self.client()
        for _ in range(MAX_FAILURES):
            assert post(client, "/login", {"user_id": user_id, "password": WRONG}).status_code == 401


def csrf(client: Any) -> str:
    page = client.get("/csrf-probe", base_url=BASE).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def post(client: Any, path: str, data: dict[str, Any] | None = None, *, token: str | None = "") -> Any:
    """A form POST as the pages send it, with its CSRF field (`token=None`: without one)."""
    token = csrf(client) if token == "" else token
    form = {**(data or {}), **({"csrf_token": token} if token is not None else {})}
    return client.post(path, base_url=BASE, data=form, headers={"Referer": BASE + "/"})


def html(resp: Any) -> str:
    return resp.get_data(as_text=True)


def listed(resp: Any) -> list[str]:
    """The user IDs in the search results."""
    assert resp.status_code == 200, html(resp)[:300]
    return re.findall(r'<tr data-user="([^"]+)">', html(resp))


def reasons(resp: Any) -> list[str]:
    return [r for r in re.findall(r'class="reason" data-reason="([^"]*)"', html(resp)) if r]


def without_tokens(page: str) -> str:
    return re.sub(r'(value|content)="[^"]+"', "", page)


def state(deps: Deps, user_id: str) -> accounts.AccountView:
    return accounts.show(deps, AGENCY, user_id)


def password_hash(deps: Deps, user_id: str) -> str | None:
    with deps.uow() as uow:
        return uow.account(user_id).password_hash


@pytest.fixture
def rig(make_deps) -> Rig:
    deps = make_deps("sqlite")
    app = create_app(deps=deps)
    app.config["TESTING"] = True
    for number, company in CONTRACTS.items():
        add_contract(deps, OPERATOR, number, company)
    made = Rig(deps, app)
    made.person("sato", "佐藤 一郎", role="system_admin")
    made.person("kato", "加藤 六郎", role="account_admin")
    made.person("kimura", "木村 五郎", role="staff")
    made.person("tanaka", "田中 太郎")
    made.person("yamada", "山田 花子")
    made.person("suzuki", "鈴木 次郎", role="system_admin", contract="C-9")
    made.person("ito", "伊藤 三郎", contract="C-9")
    made.person("unyo", "運用 四郎", role="agency_operator", contract=OPERATIONS_CONTRACT)
    return made


# ---- the menu and the search ---------------------------------------------------------------


@pytest.mark.parametrize(("who", "shown"), [("sato", {"accounts", "alerts"}), ("kato", {"accounts"}),
                                            ("kimura", {"accounts", "alerts"})])
def test_the_console_menu_links_to_what_the_role_may_read(rig, who, shown):
    menu = html(get(rig.console(who), "/console/"))
    assert {m for m in ("accounts", "alerts") if f'id="menu-{m}"' in menu} == shown


def test_search_by_name_and_by_lock_within_the_company(rig):
    rig.lock("tanaka")
    client = rig.console("sato")
    everyone = listed(get(client, "/console/accounts"))
    assert everyone == ["kato", "kimura", "sato", "tanaka", "yamada"]  # the company's, not C-9's
    assert listed(get(client, "/console/accounts?name=田中")) == ["tanaka"]
    assert listed(get(client, "/console/accounts?name=%E5%B1%B1%E7%94%B0")) == ["yamada"]  # 山田
    locked = get(client, "/console/accounts?locked=1")
    assert listed(locked) == ["tanaka"]
    page = html(locked)
    assert "ロック中" in page and f"失敗回数 {MAX_FAILURES}" in page
    assert 'href="/console/accounts/tanaka"' in page
    assert 'id="search-locked" checked' in page and 'id="search-company"' not in page
    every_filter = "/console/accounts?name=田中&locked=1&status=active&contract=C-1"
    assert listed(get(client, every_filter)) == ["tanaka"]
    assert listed(get(client, "/console/accounts?name=山田&locked=1")) == []
    assert 'id="no-accounts"' in html(get(client, "/console/accounts?name=存在しない"))
    # another company named by a company's administrator: nothing
    assert listed(get(client, f"/console/accounts?company={OTHER}")) == []
    # a status that does not exist: the message, and the way back to the search
    bad = get(client, "/console/accounts?status=bogus")
    assert bad.status_code == 400 and 'href="/console/accounts"' in html(bad)
    # Japanese by default, English on request
    assert "アカウントの検索" in html(get(client, "/console/accounts"))
    english = html(get(client, "/console/accounts?lang=en&locked=1"))
    assert "Account search" in english and "Locked" in english and "アカウントの検索" not in english


def test_an_agency_operator_searches_every_company_or_one(rig):
    client = rig.console("unyo")
    page = get(client, "/console/accounts")
    assert {"tanaka", "suzuki", "ito", "unyo"} <= set(listed(page))
    assert 'id="search-company"' in html(page)
    assert listed(get(client, f"/console/accounts?company={OTHER}")) == ["ito", "suzuki"]


# ---- the account page ----------------------------------------------------------------------


def test_the_account_page_shows_the_real_reasons_and_the_lock(rig):
    rig.lock("tanaka")
    password_step(rig.deps, "tanaka", PASSWORD)  # refused while locked, however right
    client = rig.console("kimura")  # staff of the company: reads accounts, unlocks
    resp = get(client, "/console/accounts/tanaka")
    assert resp.status_code == 200
    page = html(resp)
    assert reasons(resp) == ["locked"] + ["wrong_password"] * MAX_FAILURES  # newest first
    assert "パスワードの誤り" in page
    until = state(rig.deps, "tanaka").locked_until
    assert until and until.endswith("+09:00")  # Japan time, as the services give it
    assert 'data-locked="yes"' in page and when(until, "ja") + " までロック中" in page  # 2026年4月1日 09:30
    assert f'<td id="failures">{MAX_FAILURES}</td>' in page
    assert 'data-status="active"' in page and "ワンタイムコード" in page  # its factor
    # staff may unlock and end sessions, not manage the account
    assert 'id="unlock"' in page and 'id="reset-password"' not in page and 'id="suspend"' not in page
    english = html(get(client, "/console/accounts/tanaka?lang=en"))
    assert "Wrong password" in english and "Locked until" in english


def test_unlock_from_the_page_lifts_the_lock_and_is_audited_with_the_reason(rig):
    rig.lock("tanaka")
    client = rig.console("kimura")
    # a reason is required
    refused = post(client, "/console/accounts/tanaka/unlock", {"reason": "   "})
    assert refused.status_code == 400 and text("field_required", "ja", field="理由") in html(refused)
    assert 'href="/console/accounts"' in html(refused) and state(rig.deps, "tanaka").locked
    resp = post(client, "/console/accounts/tanaka/unlock", {"reason": "電話で本人確認済み"})
    assert where(resp) == "/console/accounts/tanaka?done=unlock"
    page = html(get(client, where(resp)))
    assert "ロックを解除しました。" in page and 'data-locked="no"' in page
    after = state(rig.deps, "tanaka")
    assert not after.locked and after.failures == 0
    [event] = events(rig.deps, "account.unlock", "tanaka")
    assert event.actor == "kimura" and event.result == "ok"
    assert event.data["reason"] == "電話で本人確認済み"
    assert event.data["was_locked"] is True and event.data["failures"] == MAX_FAILURES
    assert where(rig.log_on(rig.client(), "tanaka")) == "/home"  # the user logs on again


def test_reset_password_shows_the_new_initial_password_once(rig, caplog):
    caplog.set_level(logging.DEBUG)
    client = rig.console("kato")
    before = password_hash(rig.deps, "tanaka")
    resp = post(client, "/console/accounts/tanaka/reset-password", {"reason": "パスワード失念の申出"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    shown = re.search(r'<code id="initial-password">([^<]+)</code>', html(resp)).group(1)
    initial = unescape(shown)  # as the browser shows it
    assert password_hash(rig.deps, "tanaka") != before
    # the new password works once, and must be changed (R2); the old one no longer does
    assert password_step(rig.deps, "tanaka", PASSWORD).failed
    assert password_step(rig.deps, "tanaka", initial).step.name == "CHANGE_PASSWORD"
    # shown nowhere else: not on the account page, not in the audit log or any table
    page = html(get(client, "/console/accounts/tanaka"))
    assert initial not in page and shown not in page and "初期パスワードの変更待ち" in page
    assert initial not in dump_all(rig.deps) and initial not in caplog.text
    [event] = events(rig.deps, "password.reset", "tanaka")
    assert event.actor == "kato" and event.data == {"reason": "パスワード失念の申出"}


def test_suspend_resume_end_sessions_and_departure_from_the_page(rig):
    user = rig.client()
    assert where(rig.log_on(user, "tanaka")) == "/home"
    client = rig.console("kato")
    assert 'id="end-sessions"' in html(get(client, "/console/accounts/tanaka"))
    ended = post(client, "/console/accounts/tanaka/end-sessions", {"reason": "端末紛失"})
    assert where(ended) == "/console/accounts/tanaka?done=end-sessions&n=1"
    assert "セッションを1件終了しました。" in html(get(client, where(ended)))
    assert where(get(user, "/home")) == "/"
    suspended = post(client, "/console/accounts/tanaka/suspend", {"reason": "調査中"})
    assert where(suspended).endswith("done=suspend")
    assert state(rig.deps, "tanaka").status == "suspended"
    assert 'id="resume"' in html(get(client, "/console/accounts/tanaka"))
    resumed = post(client, "/console/accounts/tanaka/resume", {"reason": "調査完了"})
    assert where(resumed).endswith("done=resume")
    assert state(rig.deps, "tanaka").status == "active"
    left = post(client, "/console/accounts/tanaka/leave",
                {"reason": "異動", "leaves_at": "2026-04-30T18:00"})
    assert where(left).endswith("done=leave")
    assert (state(rig.deps, "tanaka").leaves_at or "").startswith("2026-04-30T18:00:00")
    assert "2026年4月30日 18:00" in html(get(client, "/console/accounts/tanaka"))
    bad = post(client, "/console/accounts/tanaka/leave", {"reason": "異動", "leaves_at": "いつか"})
    assert bad.status_code == 400
    assert [e.data["reason"] for e in events(rig.deps, subject="tanaka")
            if e.actor == "kato" and e.result == "ok"] == ["端末紛失", "調査中", "調査完了", "異動"]


def test_approve_a_pending_identifier_and_remote_access(rig):
    accounts.create_account(rig.deps, OPERATOR, "mori", "森 七郎", "C-1", "user")
    client = rig.console("sato")
    page = html(get(client, "/console/accounts/mori"))
    assert 'data-status="pending"' in page and 'id="approve"' in page and 'id="approve-reason"' not in page
    assert where(post(client, "/console/accounts/mori/approve")) == "/console/accounts/mori?done=approve"
    assert state(rig.deps, "mori").status == "active"
    done = post(client, "/console/accounts/tanaka/remote", {"reason": "在宅勤務", "until": "2026-06-30"})
    assert where(done).endswith("done=remote") and state(rig.deps, "tanaka").remote_until == "2026-06-30"
    assert where(post(client, "/console/accounts/tanaka/remote", {"reason": "終了"})).endswith("done=remote")
    assert state(rig.deps, "tanaka").remote_until is None  # an empty date withdraws it


# ---- company scope, the console's own session, CSRF ----------------------------------------


def test_another_companys_account_answers_like_an_unknown_id_and_stays_unchanged(rig):
    rig.lock("tanaka")
    before, hashed = state(rig.deps, "tanaka"), password_hash(rig.deps, "tanaka")
    client = rig.console("suzuki")  # a system administrator of the other company

    def ask(path: str, form: dict[str, str] | None) -> Any:
        return get(client, path) if form is None else post(client, path, form)

    def same(path: str, form: dict[str, str] | None = None) -> None:
        theirs, unknown = ask(path.format("tanaka"), form), ask(path.format("nobody"), form)
        assert theirs.status_code == unknown.status_code == 404, path
        assert (without_tokens(html(theirs)).replace("tanaka", "ID")
                == without_tokens(html(unknown)).replace("nobody", "ID")), path
        assert 'href="/console/accounts"' in html(theirs)

    same("/console/accounts/{}")
    for action in ("unlock", "reset-password", "suspend", "resume", "end-sessions", "leave", "remote"):
        same(f"/console/accounts/{{}}/{action}", {"reason": "他社の操作"})
    same("/console/accounts/{}/approve", {})
    assert "tanaka" not in listed(get(client, "/console/accounts"))
    assert listed(get(client, f"/console/accounts?company={COMPANY}")) == []
    assert state(rig.deps, "tanaka") == before and password_hash(rig.deps, "tanaka") == hashed
    refused = [e for e in events(rig.deps, subject="tanaka") if e.result == "refused" and e.actor == "suzuki"]
    assert len(refused) == 9 and {e.data["reason"] for e in refused} == {"other_company"}


def test_a_user_session_does_not_reach_the_account_pages(rig):
    rig.lock("yamada")
    client = rig.client()
    assert where(rig.log_on(client, "sato")) == "/home"  # an administrator, on the user pages
    token = client.get_cookie("authsvc_session", domain="localhost", path="/").value
    for cookie in (None, token):  # its own cookie is not sent there; presented, it is no console's
        if cookie:
            client.set_cookie("authsvc_console", cookie, domain="localhost", path="/console")
        for page in ("/console/accounts", "/console/accounts/yamada", "/console/alerts"):
            assert where(get(client, page)) == "/console/logon/", page
        assert post(client, "/console/accounts/yamada/unlock", {"reason": "x"}).status_code == 401
        assert post(client, "/console/alerts/1/acknowledge").status_code == 401
    assert state(rig.deps, "yamada").locked and not events(rig.deps, "account.unlock")


def test_a_role_without_the_right_is_refused_the_action(rig):
    client = rig.console("kimura")  # staff: no account management
    refused = post(client, "/console/accounts/tanaka/suspend", {"reason": "x"})
    assert refused.status_code == 403 and text("forbidden", "ja") in html(refused)
    assert state(rig.deps, "tanaka").status == "active"
    assert post(client, "/console/accounts/tanaka/erase", {"reason": "x"}).status_code == 404
    own = html(get(client, "/console/accounts/kimura"))  # one's own account: no actions offered
    assert 'id="account-actions"' not in own


def test_every_action_needs_the_csrf_token(rig):
    rig.lock("tanaka")
    client = rig.console("sato")
    for token in (None, "forged-token"):
        for action in ("unlock", "reset-password", "suspend"):
            resp = post(client, f"/console/accounts/tanaka/{action}", {"reason": "x"}, token=token)
            assert resp.status_code == 400 and text("request_invalid", "ja") in html(resp), (action, token)
    alerts.raise_alert(rig.deps, "lockout_storm", "-", COMPANY)
    [alert] = alerts.inbox(rig.deps, AGENCY)
    assert post(client, f"/console/alerts/{alert['id']}/acknowledge", token=None).status_code == 400
    assert state(rig.deps, "tanaka").locked and state(rig.deps, "tanaka").status == "active"
    assert not events(rig.deps, "account.unlock") and not events(rig.deps, "password.reset")
    assert alerts.inbox(rig.deps, AGENCY)  # still open


# ---- the alert inbox -----------------------------------------------------------------------


def test_the_alert_inbox_lists_a_refused_use_of_privileges_until_acknowledged(rig):
    kato = rig.console("kato")  # an account administrator tries another company's account
    assert get(kato, "/console/accounts/ito").status_code == 404
    sato = rig.console("sato")
    page = html(get(sato, "/console/alerts"))
    [(alert_id, kind)] = re.findall(r'<tr data-alert="(\d+)" data-kind="([^"]+)">', page)
    assert kind == "privilege_refused" and "権限外の操作" in page and "ito" in page
    assert "other_company" in page and "kato" in page
    # the other company's inbox does not hold it
    assert 'data-alert="' not in html(get(rig.console("suzuki"), "/console/alerts"))
    assert post(rig.console("suzuki"), f"/console/alerts/{alert_id}/acknowledge").status_code == 404
    # acknowledged: gone from the open list, audited
    resp = post(sato, f"/console/alerts/{alert_id}/acknowledge")
    assert where(resp) == f"/console/alerts?done={alert_id}"
    after = html(get(sato, where(resp)))
    assert f"アラート {alert_id} を確認済みにしました。" in after and 'data-alert="' not in after
    assert 'id="no-alerts"' in after
    [refused, event] = events(rig.deps, "alert.acknowledge", alert_id)
    assert refused.actor == "suzuki" and refused.result == "refused"
    assert event.actor == "sato" and event.result == "ok" and event.data["kind"] == "privilege_refused"
    # an unknown alert, and an ID beyond any row
    assert post(sato, "/console/alerts/999999/acknowledge").status_code == 404
    assert post(sato, "/console/alerts/99999999999999999999/acknowledge").status_code == 404


# ---- one operator's way through it, in headless Chromium ----------------------------------


def _operator(server: LiveServer, user_id: str) -> str:
    """An approved system administrator of the user's company with a TOTP app; its secret."""
    deps = server.deps
    accounts.create_account(deps, BROWSER_OPERATOR, user_id, "管理 三郎", "C-1", "system_admin")
    accounts.approve_identifier(deps, BROWSER_OPERATOR, user_id)
    change_password(deps, Actor(user_id), user_id, PASSWORD)
    made = totp.begin_enrolment(deps, Actor(user_id), user_id)
    totp.confirm_enrolment(deps, Actor(user_id), user_id, server.totp(made.secret))
    return made.secret


def test_an_operator_finds_a_locked_user_reads_why_and_unlocks(browser, server, page):
    deps = server.deps
    create_user(deps, "sato")  # 佐藤 花子, contract C-1
    change_password(deps, Actor("sato"), "sato", PASSWORD)
    made = totp.begin_enrolment(deps, Actor("sato"), "sato")
    totp.confirm_enrolment(deps, Actor("sato"), "sato", server.totp(made.secret))
    operator_secret = _operator(server, "kanri")
    for _ in range(MAX_FAILURES):
        assert password_step(deps, "sato", WRONG, source="127.0.0.1").failed
    assert state(deps, "sato").locked

    # the operator's console: password, then a code of a new time step
    server.clock.advance(seconds=30)
    page.goto("/console/")
    path_is(page, "/console/logon/")
    page.fill("#user_id", "kanri")
    page.fill("#password", PASSWORD)
    page.click("#logon")
    path_is(page, "/console/logon/factor")
    enter_code(page, server.totp(operator_secret))
    path_is(page, "/console/")
    page.click("#menu-accounts")
    path_is(page, "/console/accounts")
    page.fill("#search-name", "佐藤")
    page.check("#search-locked")
    page.click("#search")
    row = page.locator("#accounts tr[data-user='sato']")
    expect(row.locator("td.lock")).to_contain_text("ロック中")
    row.locator("a.account").click()
    path_is(page, "/console/accounts/sato")
    expect(page.locator("#lock-state")).to_contain_text("までロック中")
    expect(page.locator("#history td.reason").first).to_contain_text("wrong_password")
    page.fill("#unlock-reason", "電話で本人確認済み")
    page.click("#unlock")
    expect(page.locator("#account-done")).to_contain_text("ロックを解除しました")
    path_is(page, "/console/accounts/sato")
    expect(page.locator("#lock-state")).to_contain_text("ロックなし")
    [event] = events(deps, "account.unlock", "sato")
    assert event.actor == "kanri" and event.data["reason"] == "電話で本人確認済み"

    # the user, in their own browser, logs on again
    server.clock.advance(seconds=30)
    user = browser.new_context(base_url=server.url, locale="ja-JP")
    try:
        user_page = user.new_page()
        logon(user_page, "sato", PASSWORD)
        path_is(user_page, "/factor")
        enter_code(user_page, server.totp(made.secret))
        path_is(user_page, "/home")
        expect(user_page.locator("#logoff")).to_be_visible()
    finally:
        user.close()

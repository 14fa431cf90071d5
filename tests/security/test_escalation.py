"""Privilege escalation: a user's session, or a role without the permission, reaches no
administrative function, and a refused attempt writes nothing (R8)."""

from __future__ import annotations

from datetime import date

import pytest

from authsvc.domain.errors import Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, audit, maintenance, sessions, totp, webauthn
from tests.integration.support import CHOSEN, active_account, add_contract, row_counts

ADMIN_CALLS = {
    "create_contract": lambda d, a: accounts.create_contract(d, a, "C-X", "X", date(2026, 4, 1), None),
    "create_account": lambda d, a: accounts.create_account(d, a, "mallory2", "M", "C-2026-001",
                                                           "system_admin"),
    "approve_identifier": lambda d, a: accounts.approve_identifier(d, a, "victim"),
    "update_account_role": lambda d, a: accounts.update_account(d, a, "victim", role="system_admin"),
    "suspend": lambda d, a: accounts.suspend(d, a, "victim"),
    "resume": lambda d, a: accounts.resume(d, a, "victim"),
    "delete": lambda d, a: accounts.delete(d, a, "victim"),
    "reset_password": lambda d, a: accounts.reset_password(d, a, "victim"),
    "unlock": lambda d, a: accounts.unlock(d, a, "victim"),
    "audit_events": lambda d, a: audit.events(d, a),
    "maintenance": lambda d, a: maintenance.run(d, a),
    "totp_enrol_for_another": lambda d, a: totp.begin_enrolment(d, a, "victim"),
    "webauthn_register_for_another": lambda d, a: webauthn.register(d, a, "victim", "x", {}, ""),
    "totp_remove_another": lambda d, a: totp.remove(d, a, "victim"),
}


@pytest.mark.parametrize("role", [Role.USER, Role.DATA_MANAGER])
@pytest.mark.parametrize("call", sorted(ADMIN_CALLS))
def test_users_reach_no_administrative_function(deps, operator, account_admin, role, call):
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "victim")
    mallory = Actor("mallory", frozenset({role}), terminal="t", source="203.0.113.5")
    before = row_counts(deps)
    with pytest.raises(Forbidden):
        ADMIN_CALLS[call](deps, mallory)
    assert row_counts(deps) == before


def test_an_account_administrator_cannot_approve_or_grant_itself_more(deps, operator, account_admin):
    add_contract(deps, operator)
    accounts.create_account(deps, account_admin, "newadmin", "新 管理者", "C-2026-001", "system_admin")
    with pytest.raises(Forbidden):
        accounts.approve_identifier(deps, account_admin, "newadmin")  # only system administrators
    assert accounts.show(deps, "newadmin").status == "pending"  # a role is nothing until approved


def test_administration_lives_only_on_the_console(make_deps):
    """The JSON API and the user's pages offer no administrative route; those are all under
    /console/ (R8), checked below against user sessions."""
    from authsvc.web import create_app

    app = create_app(deps=make_deps("sqlite"))
    rules = [r.rule for r in app.url_map.iter_rules() if not r.rule.startswith("/console/")]
    assert not [r for r in rules if any(w in r for w in ("admin", "user", "account", "audit", "unlock/",
                                                         "consent", "evidence", "records"))]


def _user_session(deps, clock, user_id: str) -> str:
    """A complete logon on the user's surface (password + TOTP): a real user session token."""
    import pyotp

    from authsvc.services import logon

    made = totp.begin_enrolment(deps, Actor(user_id), user_id)
    totp.confirm_enrolment(deps, Actor(user_id), user_id, pyotp.TOTP(made.secret).at(clock.now()))
    clock.advance(seconds=30)
    client = sessions.Client("t", "127.0.0.1", False)
    state = logon.begin(deps, user_id, CHOSEN[0], client)
    state = logon.totp_step(deps, state.token, pyotp.TOTP(made.secret).at(clock.now()), client)
    assert state.step.value == "done" and sessions.current(deps, state.token) is not None
    return state.token


def test_a_user_session_reaches_no_console_route(make_deps, operator, account_admin, clock):
    """Every console route, asked with a user-surface session — even a system administrator's,
    even when the token is put in the console's cookie — answers only with the way to the
    console's own logon (GET) or 401 (anything else), and writes nothing."""
    from authsvc.services.passwords import change_password
    from authsvc.web import create_app

    deps = make_deps("sqlite")
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "mallory", role="system_admin")
    change_password(deps, Actor("mallory"), "mallory", CHOSEN[0])
    token = _user_session(deps, clock, "mallory")
    app = create_app(deps=deps)
    app.config["WTF_CSRF_ENABLED"] = False  # so that only the session decides
    routes = [(r.rule, m) for r in app.url_map.iter_rules() if r.rule.startswith("/console/")
              and not r.rule.startswith("/console/logon/") and r.endpoint != "console.logoff"
              for m in sorted((r.methods or set()) - {"HEAD", "OPTIONS"})]
    assert len(routes) >= 12, routes
    before = row_counts(deps)
    for cookie in ("authsvc_session", "authsvc_console"):
        client = app.test_client()
        client.set_cookie(cookie, token, path="/" if cookie == "authsvc_session" else "/console")
        for rule, method in routes:
            path = rule.replace("<sid>", "x" * 43).replace("<action>", "confirm")
            resp = client.open(path, method=method, json={"user_id": "victim", "id_checked": "yes",
                                                          "id_document": "passport"})
            if method == "GET" and not path.endswith(".json"):
                assert (resp.status_code, resp.headers.get("Location")) == (302, "/console/logon/"), path
            else:
                assert resp.status_code == 401, (method, path, resp.status_code)
    assert row_counts(deps) == before

"""Privilege escalation: a user's session, or a role without the permission, reaches no
administrative function (R8); a refused attempt changes nothing, and is itself recorded as one
`refused` audit event with its reason (004 第8 1(2))."""

from __future__ import annotations

import re
from datetime import date

import pytest

from authsvc.domain.errors import Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import (
    accounts,
    alerts,
    audit,
    devices,
    maintenance,
    operators,
    registration,
    sessions,
    totp,
    vein,
    webauthn,
)
from tests.conftest import AGENCY, COMPANY
from tests.integration.support import CHOSEN, active_account, add_contract, dump_all, events, row_counts

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
    "show": lambda d, a: accounts.show(d, a, "victim"),
    "list_accounts": lambda d, a: accounts.list_accounts(d, a),
    "end_sessions": lambda d, a: operators.end_sessions(d, a, "victim"),
    "record_consent": lambda d, a: registration.record_consent(d, a, "victim", True),
    "vein_enrol_another": lambda d, a: vein.enrol(d, a, "victim", None),  # refused before the reader
    "register_device": lambda d, a: devices.register(d, a, "term-x", "x"),
    "list_devices": lambda d, a: devices.list_devices(d, a),
    "audit_events": lambda d, a: audit.events(d, a),
    "maintenance": lambda d, a: maintenance.run(d, a),
    "totp_enrol_for_another": lambda d, a: totp.begin_enrolment(d, a, "victim"),
    "webauthn_register_for_another": lambda d, a: webauthn.register(d, a, "victim", "x", {}, ""),
    "totp_remove_another": lambda d, a: totp.remove(d, a, "victim"),
}
# The refusal's audit event: (action, subject); None where the test does not name them.
# SELF_ONLY: a user's own self-service functions, refused for another account to anyone (not
# an administrative use of privileges): they refuse and record nothing.
SELF_ONLY = "self-service"
REFUSAL_EVENT: dict[str, tuple[str | None, str | None] | str] = {
    "create_contract": ("contract.create", "C-X"),
    "create_account": ("account.create", "mallory2"),
    "approve_identifier": ("identifier.approve", "victim"),
    "update_account_role": ("account.update", "victim"),
    "suspend": ("account.suspend", "victim"),
    "resume": ("account.resume", "victim"),
    "delete": ("account.delete", "victim"),
    "reset_password": ("password.reset", "victim"),
    "unlock": ("account.unlock", "victim"),
    "show": ("account.read", "victim"),
    "list_accounts": ("account.search", None),
    "end_sessions": ("account.end_sessions", "victim"),
    "record_consent": ("registration.consent", "victim"),
    "vein_enrol_another": ("vein.enrol", "victim"),
    "register_device": ("device.register", "term-x"),
    "list_devices": (None, None),
    "audit_events": ("audit.read", None),
    "maintenance": (None, None),
    "totp_enrol_for_another": SELF_ONLY,
    "webauthn_register_for_another": SELF_ONLY,
    "totp_remove_another": ("totp.remove", "victim"),
}


def _outside_the_log(deps) -> list[str]:
    """Every row of every table but the audit log's own two and the alert inbox."""
    return [line for line in dump_all(deps).splitlines()
            if not line.startswith(("audit_events.", "audit_head.", "alerts."))]


@pytest.mark.parametrize("role", [Role.USER, Role.DATA_MANAGER])
@pytest.mark.parametrize("call", sorted(ADMIN_CALLS))
def test_users_reach_no_administrative_function(deps, operator, account_admin, role, call):
    """Even of the victim's own company (so that it is the right, not the company, that is
    missing): Forbidden, nothing changed, and exactly one `refused` event for the attempt."""
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "victim")
    mallory = Actor("mallory", frozenset({role}), terminal="t", source="203.0.113.5",
                    company=COMPANY)
    before, outside, seq = row_counts(deps), _outside_the_log(deps), events(deps)[-1].seq
    with pytest.raises(Forbidden):
        ADMIN_CALLS[call](deps, mallory)
    assert _outside_the_log(deps) == outside
    new = [e for e in events(deps) if e.seq > seq]
    expected = REFUSAL_EVENT[call]
    if expected == SELF_ONLY:
        assert row_counts(deps) == before and new == []
        return
    assert row_counts(deps) == {**before, "audit_events": before["audit_events"] + 1,
                                "alerts": before["alerts"] + 1}, new
    [event] = new
    [alert] = alerts.inbox(deps, AGENCY)  # R25: a refused use of privileges is an alert
    assert (alert["kind"], alert["company"], alert["detail"]["actor"]) == (
        "privilege_refused", COMPANY, "mallory")
    action, subject = expected
    assert (event.actor, event.result, event.terminal, event.source) == (
        "mallory", "refused", "t", "203.0.113.5")
    assert event.data["reason"] == "forbidden"
    assert action is None or event.action == action
    assert subject is None or event.subject == subject
    assert accounts.show(deps, AGENCY, "victim").status == "active"


AGENCY_CALLS = {
    "create_contract": lambda d, a: accounts.create_contract(d, a, "C-X", "X", date(2026, 4, 1), None),
    "create_agency_operator": lambda d, a: accounts.create_account(
        d, a, "mallory2", "M", "C-2026-001", "agency_operator"),
    "make_an_agency_operator": lambda d, a: accounts.update_account(d, a, "victim",
                                                                    role="agency_operator"),
    "maintenance": lambda d, a: maintenance.run(d, a),
    "accept_rollback": lambda d, a: audit.accept_rollback(d, a, "no right"),
}


@pytest.mark.parametrize("call", sorted(AGENCY_CALLS))
def test_a_company_system_administrator_reaches_no_agency_function(deps, operator,
                                                                    account_admin, call):
    """The new rights table (R24): a company's system administrator has every right in their
    company, but not the agency's (contracts, maintenance, the audit log's recovery), and
    cannot raise anyone to agency operator. Refused: nothing changed but refusals recorded."""
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "victim")
    sato = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="t", company=COMPANY)
    outside, seq = _outside_the_log(deps), events(deps)[-1].seq
    with pytest.raises(Forbidden):
        AGENCY_CALLS[call](deps, sato)
    assert _outside_the_log(deps) == outside
    assert all((e.actor, e.result) == ("sato", "refused") for e in events(deps) if e.seq > seq)
    assert accounts.show(deps, AGENCY, "victim").role == "user"


def test_an_account_administrator_cannot_approve_or_grant_itself_more(deps, operator, account_admin):
    add_contract(deps, operator)
    accounts.create_account(deps, account_admin, "newadmin", "新 管理者", "C-2026-001", "system_admin")
    with pytest.raises(Forbidden):
        accounts.approve_identifier(deps, account_admin, "newadmin")  # only system administrators
    assert accounts.show(deps, AGENCY, "newadmin").status == "pending"  # a role is nothing until approved


ADMIN_API = "/api/v1/admin/"  # the administrators' JSON API: a console session's token only


def test_administration_lives_only_on_the_console(make_deps):
    """The user's JSON API and pages offer no administrative route; those are all under
    /console/ and its JSON twin /api/v1/admin/ (R8), both for console sessions only: without
    one, every administrative call answers 401 (checked below against user sessions too)."""
    from authsvc.web import create_app

    deps = make_deps("sqlite")
    app = create_app(deps=deps)
    rules = [r.rule for r in app.url_map.iter_rules()
             if not r.rule.startswith(("/console/", ADMIN_API))
             and r.rule != "/oidc/userinfo"]  # OpenID Connect's name: a user's own claims
    assert not [r for r in rules if any(w in r for w in ("admin", "user", "account", "audit", "unlock/",
                                                         "consent", "evidence", "records"))]
    before = row_counts(deps)
    client = app.test_client()
    admin_api = _admin_api_routes(app)
    assert admin_api
    for path, method in admin_api:
        assert client.open(path, method=method, json={}).status_code == 401, (method, path)
    assert row_counts(deps) == before


PLACEHOLDERS = {"user_id": "victim", "device_id": "term-x", "action": "suspend", "sid": "x" * 43,
                "name": "group-x"}


def _filled(rule: str, **values: str) -> str:
    """`rule` with each placeholder filled in: a number for an int, else by its name."""
    names = {**PLACEHOLDERS, **values}
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>",
                  lambda m: "1" if m[1] == "int" else names.get(m[2], "x"), rule)


def _admin_api_routes(app) -> list[tuple[str, str]]:
    """Every (path, method) of /api/v1/admin/, its placeholders filled in."""
    return [(_filled(r.rule), m) for r in app.url_map.iter_rules() if r.rule.startswith(ADMIN_API)
            for m in sorted((r.methods or set()) - {"HEAD", "OPTIONS"})]


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
    console's own logon (GET) or 401 (anything else); every route of the administrators' JSON
    API answers 401; and nothing is written."""
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
            path = _filled(rule, action="confirm")
            resp = client.open(path, method=method, json={"user_id": "victim", "id_checked": "yes",
                                                          "id_document": "passport"})
            if method == "GET" and not path.endswith(".json"):
                assert (resp.status_code, resp.headers.get("Location")) == (302, "/console/logon/"), path
            else:
                assert resp.status_code == 401, (method, path, resp.status_code)
    # nor the administrators' JSON API: the token as its bearer token, or in either cookie
    for cookie in ("", "authsvc_session", "authsvc_console"):
        client = app.test_client()
        headers = {} if cookie else {"Authorization": f"Bearer {token}"}
        if cookie:
            client.set_cookie(cookie, token, path="/" if cookie == "authsvc_session" else "/console")
        for path, method in _admin_api_routes(app):
            resp = client.open(path, method=method, headers=headers,
                               json={"user_id": "victim", "reason": "x", "contract": "C-X",
                                     "company": "X", "starts_on": "2026-04-01"})
            assert resp.status_code == 401, (method, path, resp.status_code)
    assert row_counts(deps) == before

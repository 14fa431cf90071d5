"""The JSON API over the logon state machine (Flask's test client, real app, SQLite)."""

from __future__ import annotations

import re
from datetime import date

import pyotp
import pytest

from authsvc.domain.messages import text
from authsvc.services import accounts, sessions
from tests.conftest import AGENCY

NEW = "Vt8$wQ3#nRz7"


@pytest.fixture
def api(make_client):
    return make_client()


def add_user(deps, operator, user_id="sato", ends_on=None):
    if not accounts.list_contracts(deps, AGENCY):
        accounts.create_contract(deps, operator, "C-1", "株式会社テスト", date(2026, 1, 1), ends_on)
    issued = accounts.create_account(deps, operator, user_id, "佐藤 花子", "C-1", "user")
    accounts.approve_identifier(deps, operator, user_id)
    return issued.initial_password


def call(client, path, body=None, token=None, method="post"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return getattr(client, method)(path, json=body, headers=headers, base_url="https://localhost")


def enrol_totp(client, deps, initial, user_id="sato"):
    """First logon through the API; returns (session token, TOTP secret)."""
    r = call(client, "/api/v1/logon", {"user_id": user_id, "password": initial})
    assert r.status_code == 200 and r.json["state"] == "change_password"
    r = call(client, "/api/v1/logon/password", {"new_password": NEW}, r.json["token"])
    assert r.json["state"] == "enrol" and set(r.json["options"]) == {"totp", "webauthn"}
    token = r.json["token"]
    secret = call(client, "/api/v1/logon/totp/enrol", {}, token).json["secret"]
    r = call(client, "/api/v1/logon/totp",
             {"code": pyotp.TOTP(secret).at(deps.clock.now().timestamp())}, token)
    assert r.status_code == 200 and r.json["state"] == "done"
    assert r.json["token"] != token  # a new token once the session opens
    return r.json["token"], secret


def test_openapi_document_describes_every_route(api):
    _, client = api
    spec = call(client, "/api/v1/openapi.json", method="get").json
    assert spec["openapi"].startswith("3.1")
    rules = {re.sub(r"<\w+(\([^)]*\))?:", "<", r.rule)  # converters are not in the document
             for r in client.application.url_map.iter_rules() if r.rule.startswith("/api/")}
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in spec["paths"]}
    assert rules == documented


def test_every_refusal_has_the_same_status_and_body(make_client, operator, clock):
    deps, client = make_client(lockout={"max_failures": 2})
    add_user(deps, operator, "sato")
    for uid in ("suspended1", "pending1", "locked1"):
        add_user(deps, operator, uid)
    accounts.suspend(deps, operator, "suspended1")
    accounts.create_account(deps, operator, "pending2", "未承認 太郎", "C-1", "user")
    for _ in range(2):
        call(client, "/api/v1/logon", {"user_id": "locked1", "password": "wrong-password-1"})
    answers = [
        call(client, "/api/v1/logon", {"user_id": "nosuchuser", "password": NEW}),
        call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW}),
        call(client, "/api/v1/logon", {"user_id": "suspended1", "password": NEW}),
        call(client, "/api/v1/logon", {"user_id": "pending2", "password": NEW}),
        call(client, "/api/v1/logon", {"user_id": "locked1", "password": NEW}),
        call(client, "/api/v1/logon", {"user_id": ["not", "a", "string"]}),
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.get_data() for a in answers}) == 1
    # a body that is not JSON is not a logon attempt at all: refused before any account is looked at
    garbled = client.post("/api/v1/logon", data=b"\xff\xfe not json", base_url="https://localhost",
                          content_type="application/json")
    assert (garbled.status_code, garbled.json["error"]) == (400, "invalid_json")


def test_full_api_flow_with_session_lock_unlock_and_logoff(api, operator, clock):
    deps, client = api
    token, secret = enrol_totp(client, deps, add_user(deps, operator))
    me = call(client, "/api/v1/session", token=token, method="get").json
    assert me["user_id"] == "sato" and set(me["factors"]) == {"password", "totp"}
    assert not me["locked"] and not me["remote"]
    history = call(client, "/api/v1/history", token=token, method="get").json["history"]
    assert history[0]["step"] == "complete" and "reason" not in history[0]
    assert len(call(client, "/api/v1/sessions", token=token, method="get").json["sessions"]) == 1
    # lock, then unlock with the password and a fresh TOTP code
    assert call(client, "/api/v1/session/lock", {}, token).json == {"locked": True}
    assert call(client, "/api/v1/history", token=token, method="get").status_code == 401
    assert call(client, "/api/v1/session/unlock", {"password": "wrong"}, token).status_code == 401
    r = call(client, "/api/v1/session/unlock", {"password": NEW}, token)
    assert r.json["state"] == "second_factor" and r.json["options"] == ["totp"]
    clock.advance(seconds=30)
    code = pyotp.TOTP(secret).at(clock.now().timestamp())
    r = call(client, "/api/v1/logon/totp", {"code": code}, token)
    assert r.json["state"] == "done"
    fresh = r.json["token"]
    assert call(client, "/api/v1/session", token=token, method="get").status_code == 401
    assert call(client, "/api/v1/session", token=fresh, method="get").json["locked"] is False
    # logoff ends it on the server at once
    call(client, "/api/v1/logoff", {}, fresh)
    assert call(client, "/api/v1/session", token=fresh, method="get").status_code == 401


def test_weak_new_password_is_refused_with_each_reason(api, operator):
    deps, client = api
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": add_user(deps, operator)})
    bad = call(client, "/api/v1/logon/password", {"new_password": "sato12345"}, r.json["token"])
    assert bad.status_code == 400
    assert {"pw_contains_user_id", "pw_classes", "pw_sequential"} <= set(bad.json["reasons"])
    assert len(bad.json["messages"]) == len(bad.json["reasons"])


def test_totp_code_is_accepted_once(api, operator, clock):
    deps, client = api
    token, secret = enrol_totp(client, deps, add_user(deps, operator))
    call(client, "/api/v1/logoff", {}, token)
    clock.advance(seconds=30)
    code = pyotp.TOTP(secret).at(clock.now().timestamp())
    first = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW}).json["token"]
    assert call(client, "/api/v1/logon/totp", {"code": code}, first).json["state"] == "done"
    second = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW}).json["token"]
    assert call(client, "/api/v1/logon/totp", {"code": code}, second).status_code == 401


def test_no_factor_and_no_initial_password_means_no_enrolment(api, operator):
    """Someone holding only the (changed) password cannot enrol their own second factor."""
    deps, client = api
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": add_user(deps, operator)})
    call(client, "/api/v1/logon/password", {"new_password": NEW}, r.json["token"])
    # the user walks away before enrolling; later the password alone is not enough
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW})
    # palm vein is allowed: the way on is a witnessed registration in the browser (R14), no token
    assert r.status_code == 403 and r.json["error"] == "vein_registration_required"
    assert "token" not in r.json


def test_a_palm_disabled_after_failures_is_not_an_invitation_to_register(api, operator):
    """[5 of 12, part 2] item 4: the right password of a user whose enrolled palm was disabled
    for failures gets its own answer -- ask the operators -- not `vein_registration_required`."""
    from sqlalchemy import update

    from authsvc.store.models import VeinEnrolment
    from tests.integration.support import events

    deps, client = api
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": add_user(deps, operator)})
    call(client, "/api/v1/logon/password", {"new_password": NEW}, r.json["token"])
    person = accounts.show(deps, AGENCY, "sato").person_id
    with deps.uow() as uow:  # an enrolment, then 20 wrong palms in a row
        uow.session.add(VeinEnrolment(person_id=person, template="sealed", reader_id="R1",
                                      enrolled_by="ops1", enrolled_at=deps.clock.now()))
        uow.commit()
        uow.session.execute(update(VeinEnrolment).values(disabled_at=deps.clock.now()))
        uow.commit()
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW})
    assert r.status_code == 403 and r.json == {"error": "vein_disabled",
                                               "message": text("vein_disabled", "ja")}
    assert [e.data["reason"] for e in events(deps, "logon.second_factor", "sato")] == ["vein_disabled"]
    with deps.uow() as uow:
        uow.session.execute(update(VeinEnrolment).values(disabled_at=None))
        uow.commit()
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW})
    assert r.status_code == 200 and r.json["state"] == "second_factor"


def test_second_logon_replaces_the_first_session_and_is_flagged(api, operator, clock):
    deps, client = api
    first, secret = enrol_totp(client, deps, add_user(deps, operator))
    clock.advance(seconds=30)
    t = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW}).json["token"]
    second = call(client, "/api/v1/logon/totp",
                  {"code": pyotp.TOTP(secret).at(clock.now().timestamp())}, t).json["token"]
    assert call(client, "/api/v1/session", token=first, method="get").status_code == 401
    assert call(client, "/api/v1/session", token=second, method="get").status_code == 200
    with deps.uow() as uow:
        flagged = [e.detail for e in uow.audit_events(["sato"], 100)
                   if e.action == "logon.complete" and "ended_sessions" in e.detail]
    assert len(flagged) == 1 and '"ended_sessions": 1' in flagged[0]


def test_refuse_policy_keeps_the_first_session(make_client, operator, clock):
    deps, client = make_client(sessions={"concurrent": "refuse"})
    first, secret = enrol_totp(client, deps, add_user(deps, operator))
    clock.advance(seconds=30)
    t = call(client, "/api/v1/logon", {"user_id": "sato", "password": NEW}).json["token"]
    r = call(client, "/api/v1/logon/totp", {"code": pyotp.TOTP(secret).at(clock.now().timestamp())}, t)
    assert r.status_code == 401
    assert call(client, "/api/v1/session", token=first, method="get").status_code == 200


def test_remote_sessions_are_marked_and_forwarded_for_is_believed_only_from_proxies(
        make_client, operator, clock):
    deps, client = make_client(network={"trusted_proxies": ["127.0.0.1/32"],
                                        "internal": ["10.0.0.0/8"]})
    initial = add_user(deps, operator)
    headers = {"X-Forwarded-For": "203.0.113.7"}
    r = client.post("/api/v1/logon", json={"user_id": "sato", "password": initial},
                    headers=headers, base_url="https://localhost")
    assert r.status_code == 401  # R17: remote access only for users approved in advance
    accounts.approve_remote(deps, operator, "sato", clock.now().date())
    r = client.post("/api/v1/logon", json={"user_id": "sato", "password": initial},
                    headers=headers, base_url="https://localhost")
    token = r.json["token"]
    r = call(client, "/api/v1/logon/password", {"new_password": NEW}, token)
    secret = call(client, "/api/v1/logon/totp/enrol", {}, r.json["token"]).json["secret"]
    r = client.post("/api/v1/logon/totp", json={"code": pyotp.TOTP(secret).at(clock.now().timestamp())},
                    headers={**headers, "Authorization": f"Bearer {r.json['token']}"},
                    base_url="https://localhost")
    me = call(client, "/api/v1/session", token=r.json["token"], method="get").json
    assert me["remote"] is True
    sessions = call(client, "/api/v1/sessions", token=r.json["token"], method="get").json["sessions"]
    assert sessions[0]["source"] == "203.0.113.7"


def test_the_admin_gate_refuses_remote_and_locked_sessions(make_client, operator, clock):

    deps, client = make_client(network={"trusted_proxies": ["127.0.0.1/32"], "internal": ["10.0.0.0/8"],
                                        "remote_admin": ["approved"]})
    initial = add_user(deps, operator)
    accounts.approve_remote(deps, operator, "sato", clock.now().date())  # R17: approved in advance
    token, _ = enrol_totp(client, deps, initial)  # from 127.0.0.1: not internal here
    view = sessions.current(deps, token)
    assert view.remote and not view.may_administer(deps.settings.network.remote_admin)
    assert view.may_administer(("sato",))
    call(client, "/api/v1/session/lock", {}, token)
    assert not sessions.current(deps, token).may_administer(("sato",))  # locked: never


def test_a_dead_redis_fails_closed_with_a_clear_answer(make_deps, make_client, operator):
    """Counters unreachable: no password is evaluated, the client gets 503, not a logon."""
    initial = add_user(make_deps("sqlite"), operator)  # the same database, counters in SQL
    _, client = make_client(counters={"backend": "redis"}, redis={"url": "redis://127.0.0.1:1/0"})
    r = call(client, "/api/v1/logon", {"user_id": "sato", "password": initial})
    assert r.status_code == 503 and r.json["error"] == "service_unavailable"
    assert "token" not in r.json


def test_logoff_needs_a_session(api, operator, clock):
    """Without a valid session token logoff is refused like the other session endpoints, and
    nothing is audited; with one it ends the session."""
    deps, client = api
    initial = add_user(deps, operator)
    pending = call(client, "/api/v1/logon", {"user_id": "sato", "password": initial}).json["token"]
    with deps.uow() as uow:
        audited = len(uow.audit_events(None, 100_000))
    for token in (None, "", "not-a-token", "x" * 200, pending):  # a logon under way is no session
        r = call(client, "/api/v1/logoff", {}, token)
        assert r.status_code == 401, token
        assert r.json == {"error": "unauthorised", "message": text("logon_failed", "ja")}
    with deps.uow() as uow:
        assert len(uow.audit_events(None, 100_000)) == audited
    token, _ = enrol_totp(client, deps, initial)
    assert call(client, "/api/v1/logoff", {}, token).json == {"logged_off": True}
    assert call(client, "/api/v1/session", token=token, method="get").status_code == 401
    assert call(client, "/api/v1/logoff", {}, token).status_code == 401  # once only
    with deps.uow() as uow:
        assert [e.action for e in uow.audit_events(["sato"], 100)].count("session.logoff") == 1


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/api/v1/logon", {"POST"}),
    ("put", "/api/v1/session", {"GET", "HEAD"}),
    ("get", "/api/v1/sessions/abc", {"DELETE"}),
    ("get", "/login", {"POST"}),
    ("delete", "/", {"GET", "HEAD"}),
    ("get", "/vein/verify", {"POST"}),
    ("get", "/console/enrol/vein", {"POST"}),
])
def test_method_not_allowed_names_the_allowed_methods(api, method, path, allowed):
    _, client = api
    r = getattr(client, method)(path, base_url="https://localhost")
    assert r.status_code == 405
    assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}
    assert r.headers["Content-Type"] == ("application/json" if path.startswith(("/api/", "/vein/"))
                                         else "text/html; charset=utf-8")

"""The logon pages over HTTP (Flask's test client against the real app and SQLite)."""

from __future__ import annotations

import dataclasses
import re

import pyotp
import pytest

from authsvc.services import accounts
from authsvc.store.db import make_engine, session_factory
from authsvc.store.uow import UnitOfWork
from authsvc.web import create_app
from tests.conftest import AGENCY

BASE = "https://localhost"


@pytest.fixture
def app(sqlite_deps):
    app = create_app(deps=sqlite_deps)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(sqlite_deps, operator):
    accounts.create_contract(sqlite_deps, operator, "C-1", "株式会社テスト",
                             sqlite_deps.clock.now().date(), None)
    issued = accounts.create_account(sqlite_deps, operator, "sato", "佐藤 花子", "C-1", "user")
    accounts.approve_identifier(sqlite_deps, operator, "sato")
    return issued.initial_password


def csrf(client, path="/"):
    page = client.get(path, base_url=BASE).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, path, data, token=None):
    token = token or csrf(client)
    return client.post(path, base_url=BASE, data={**data, "csrf_token": token},
                       headers={"Referer": BASE + "/"})


def test_japanese_by_default_english_on_request(client):
    assert "ログオン" in client.get("/", base_url=BASE).get_data(as_text=True)
    assert "Log on" in client.get("/?lang=en", base_url=BASE).get_data(as_text=True)
    # the choice sticks (cookie); a browser's Accept-Language alone does not switch
    assert "Log on" in client.get("/", base_url=BASE).get_data(as_text=True)
    fresh = client.application.test_client()
    page = fresh.get("/", base_url=BASE, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "ログオン" in page.get_data(as_text=True)
    assert "ログオン" in client.get("/?lang=ja", base_url=BASE).get_data(as_text=True)


def test_security_headers_and_cookie_flags(client):
    resp = client.get("/", base_url=BASE)
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_form_without_csrf_token_is_refused(client, user):
    resp = client.post("/login", base_url=BASE, data={"user_id": "sato", "password": user})
    assert resp.status_code == 400


def test_one_generic_failure_for_unknown_user_and_wrong_password(client, user):
    unknown = post(client, "/login", {"user_id": "nobody", "password": "Xq9#mT4!kLw2"})
    wrong = post(client, "/login", {"user_id": "sato", "password": "Xq9#mT4!kLw2"})
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda r: re.sub(r'(value|content)="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(unknown) == strip(wrong)
    assert "ログオンできませんでした" in strip(wrong)


def totp_code(secret, clock, offset=0):
    return pyotp.TOTP(secret).at(clock.now().timestamp() + offset)


def first_logon(client, user, clock, new_password="Vt8$wQ3#nRz7"):
    """Initial password -> forced change -> TOTP enrolment -> session. Returns the secret."""
    resp = post(client, "/login", {"user_id": "sato", "password": user})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/password")
    token = csrf(client, "/password")
    resp = post(client, "/password", {"new_password": new_password,
                                      "confirm_password": new_password}, token)
    assert resp.headers["Location"].endswith("/enrol")
    page = client.get("/enrol/totp", base_url=BASE).get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "<svg" in page  # the QR code, inline
    page_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = post(client, "/factor/totp", {"code": totp_code(secret, clock)}, page_token)
    assert resp.headers["Location"].endswith("/home")
    return secret


def test_initial_password_leads_only_to_forced_change(client, user, sqlite_deps, clock):
    resp = post(client, "/login", {"user_id": "sato", "password": user})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/password")
    # nothing else is reachable before the change (R2)
    for page in ("/home", "/enrol", "/enrol/totp", "/factor", "/lock"):
        assert client.get(page, base_url=BASE).status_code == 302, page
        assert not client.get(page, base_url=BASE).headers["Location"].endswith("/home")
    token = csrf(client, "/password")
    weak = post(client, "/password", {"new_password": "password1234",
                                      "confirm_password": "password1234"}, token)
    body = weak.get_data(as_text=True)
    assert weak.status_code == 400
    assert "よく使われている" in body and "英大文字" in body  # each failed rule is named
    mismatch = post(client, "/password", {"new_password": "Vt8$wQ3#nRz7",
                                          "confirm_password": "Vt8$wQ3#nRz8"}, token)
    assert mismatch.status_code == 400 and "一致しません" in mismatch.get_data(as_text=True)
    ok = post(client, "/password", {"new_password": "Vt8$wQ3#nRz7",
                                    "confirm_password": "Vt8$wQ3#nRz7"}, token)
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/enrol")
    assert not accounts.show(sqlite_deps, AGENCY, "sato").must_change_password
    # the pending change is gone: the page cannot be reused
    assert client.get("/password", base_url=BASE).status_code == 302


def test_full_logon_with_totp_then_lock_unlock_and_logoff(client, user, sqlite_deps, clock):
    secret = first_logon(client, user, clock)
    home = client.get("/home", base_url=BASE).get_data(as_text=True)
    assert "ようこそ" in home and "ログオン完了" in home  # the history lists the completed logon
    assert post(client, "/logoff", {}, csrf(client, "/home")).status_code == 200
    assert client.get("/home", base_url=BASE).status_code == 302
    # a second logon: password, then the enrolled TOTP (a fresh code: the first one is spent)
    clock.advance(seconds=30)
    resp = post(client, "/login", {"user_id": "sato", "password": "Vt8$wQ3#nRz7"})
    assert resp.headers["Location"].endswith("/factor")
    used = totp_code(secret, clock, -30)
    replay = post(client, "/factor/totp", {"code": used}, csrf(client, "/factor"))
    assert replay.status_code == 401  # the code of the first logon is never accepted again
    ok = post(client, "/factor/totp", {"code": totp_code(secret, clock)}, csrf(client, "/factor"))
    assert ok.headers["Location"].endswith("/home")
    # lock: the session stays, but needs MFA again
    post(client, "/lock", {}, csrf(client, "/home"))
    assert client.get("/home", base_url=BASE).headers["Location"].endswith("/lock")
    bad = post(client, "/unlock", {"password": "wrong-password"}, csrf(client, "/lock"))
    assert bad.status_code == 401
    resp = post(client, "/unlock", {"password": "Vt8$wQ3#nRz7"}, csrf(client, "/lock"))
    assert resp.headers["Location"].endswith("/factor")
    clock.advance(seconds=30)
    resp = post(client, "/factor/totp", {"code": totp_code(secret, clock)}, csrf(client, "/factor"))
    assert resp.headers["Location"].endswith("/home")
    assert client.get("/home", base_url=BASE).status_code == 200


def test_idle_session_locks(client, user, sqlite_deps, clock):
    first_logon(client, user, clock)
    clock.advance(minutes=sqlite_deps.settings.sessions.idle_minutes, seconds=1)
    assert client.get("/home", base_url=BASE).headers["Location"].endswith("/lock")


def test_suspending_the_account_ends_its_sessions(client, user, sqlite_deps, clock, operator):
    first_logon(client, user, clock)
    accounts.suspend(sqlite_deps, operator, "sato")
    assert client.get("/home", base_url=BASE).status_code == 302
    assert sqlite_deps.sessions.of_user("sato") == {}


def test_session_token_changes_at_logon(client, user, clock):
    """Session fixation: a token planted before the logon is never the session's token."""
    client.set_cookie("authsvc_session", "planted-by-attacker", domain="localhost")
    first_logon(client, user, clock)
    token = client.get_cookie("authsvc_session", domain="localhost").value
    assert token != "planted-by-attacker"


def test_forced_change_page_needs_the_password_step(client):
    assert client.get("/password", base_url=BASE).status_code == 302
    resp = post(client, "/password", {"new_password": "Vt8$wQ3#nRz7",
                                      "confirm_password": "Vt8$wQ3#nRz7"})
    assert resp.status_code == 401


def test_oversize_request_is_refused_clearly(client):
    resp = client.post("/login", base_url=BASE, data={"password": "x" * 200_000})
    assert resp.status_code == 413
    assert "リクエストを処理できませんでした" in resp.get_data(as_text=True)


def test_hostile_strings_get_the_generic_answer(client, user):
    for hostile in ("' OR 1=1 --", "<script>alert(1)</script>", "\x00admin", "ａｄｍｉｎ" * 40):
        resp = post(client, "/login", {"user_id": hostile, "password": "x"})
        assert resp.status_code == 401
        assert "<script>alert(1)</script>" not in resp.get_data(as_text=True)


def test_dead_database_answers_service_unavailable(app, sqlite_deps, client):
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    app.extensions["authsvc"] = dataclasses.replace(
        sqlite_deps,
        uow=lambda read_only=False: UnitOfWork(session_factory(dead), sqlite_deps.audit_key, read_only),
    )
    resp = post(client, "/login", {"user_id": "sato", "password": "whatever12345"})
    assert resp.status_code == 503
    assert "ただいまサービスを利用できません" in resp.get_data(as_text=True)

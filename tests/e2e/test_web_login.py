"""The logon pages over HTTP (Flask's test client against the real app and SQLite)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from authsvc.services import accounts
from authsvc.store.db import make_engine, session_factory
from authsvc.store.uow import UnitOfWork
from authsvc.web import create_app

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
    strip = lambda r: re.sub(r'value="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(unknown) == strip(wrong)
    assert "ログオンできませんでした" in strip(wrong)


def test_initial_password_leads_only_to_forced_change(client, user, sqlite_deps):
    resp = post(client, "/login", {"user_id": "sato", "password": user})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/password")
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
    assert ok.status_code == 200 and "変更しました" in ok.get_data(as_text=True)
    assert not accounts.show(sqlite_deps, "sato").must_change_password
    # the pending change is gone: the page cannot be reused
    assert client.get("/password", base_url=BASE).status_code == 302
    # the old initial password no longer works; the new one passes the password step and
    # then fails closed, because no second factor exists yet (R10)
    assert post(client, "/login", {"user_id": "sato", "password": user}).status_code == 401
    final = post(client, "/login", {"user_id": "sato", "password": "Vt8$wQ3#nRz7"})
    assert final.status_code == 403
    assert "多要素認証" in final.get_data(as_text=True)


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

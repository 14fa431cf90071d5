"""The web layer's one error module and its flask-login sessions, over HTTP (Flask's test client
against the real app): a refusal by the rules gets the same answer on every blueprint (JSON for
the API and the pages' scripts, the message page otherwise); a dead database or Redis is a 503
on every blueprint, never a 500; `login_required` takes only an unlocked user session, the
console's decorator only a console session; flask-login keeps nothing in Flask's session."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from authsvc.domain.errors import Conflict, Forbidden
from authsvc.domain.messages import text
from authsvc.services import logon, registration, sessions
from authsvc.store.db import make_engine, session_factory
from authsvc.store.uow import UnitOfWork
from tests.e2e.test_web_console import BASE, Web, console, console_token, cookie, get, log_on, make_web, post
from tests.e2e.test_web_register import at_register, populate

DEAD_PG = "postgresql+psycopg://postgres@127.0.0.1:1/none"
DEAD_REDIS = "redis://127.0.0.1:1/0"
UNAVAILABLE = text("service_unavailable", "ja")


@pytest.fixture
def world(make_deps) -> Iterator[Web]:
    made = populate(make_web(make_deps))
    yield made
    made.reader.close()


@dataclasses.dataclass
class Browsers:
    """One browser per surface: nobody, a complete user session, a logon waiting at the palm
    registration step, a console session."""

    nobody: Any
    user: Any
    registrant: Any
    console: Any


@pytest.fixture
def browsers(world) -> Browsers:
    user = world.client()
    assert log_on(world, user, "sato").headers["Location"].endswith("/home")
    return Browsers(world.client(), user, at_register(world), console(world, "sato"))


def bearer(client: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {cookie(client)}"}


# Every blueprint, by a page and by a JSON route: (name, request, answered in JSON?). Each
# request is made by the browser of the surface it needs.
Call = Callable[[Browsers], Any]
ROUTES: list[tuple[str, Call, bool]] = [
    ("login page", lambda b: post(b.nobody, "/login", {"user_id": "sato", "password": "x" * 12}), False),
    ("login script", lambda b: post(b.nobody, "/vein/challenge", json={}), True),
    ("login in JSON", lambda b: post(b.nobody, "/login", json={"user_id": "sato"}), True),
    ("console logon page", lambda b: post(b.nobody, "/console/logon/login",
                                          {"user_id": "sato", "password": "x" * 12}), False),
    ("api", lambda b: b.nobody.post("/api/v1/logon", json={"user_id": "sato", "password": "x" * 12},
                                    base_url=BASE), True),
    ("api session", lambda b: b.user.get("/api/v1/history", headers=bearer(b.user), base_url=BASE), True),
    ("user page", lambda b: get(b.user, "/home"), False),
    ("register page", lambda b: get(b.registrant, "/register/"), False),
    ("register script", lambda b: get(b.registrant, "/register/some-session/state.json"), True),
    ("console page", lambda b: get(b.console, "/console/records"), False),
    ("console script", lambda b: get(b.console, "/console/registrations.json"), True),
]
# The one service call each route above makes first, to be made to refuse.
REFUSING = {"login page": (logon, "begin"), "login script": (logon, "vein_challenge"),
            "login in JSON": (logon, "begin"),
            "console logon page": (logon, "begin"), "api": (logon, "begin"),
            "api session": (sessions, "history"), "user page": (sessions, "history"),
            "register page": (registration, "live_session"), "register script": (registration, "get"),
            "console page": (registration, "recent"), "console script": (registration, "waiting_for")}
BACK = {"register page": 'href="/register/"', "console page": 'href="/console/records"'}


@pytest.mark.parametrize(("error", "status"), [(Conflict("registration_wrong_step"), 409),
                                               (Forbidden("registration_not_attendant"), 403)])
def test_one_refusal_one_answer_on_every_blueprint(world, browsers, monkeypatch, error, status):
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise type(error)(error.code)

    message = text(error.code, "ja")
    answers: dict[bool, set[Any]] = {True: set(), False: set()}
    for name, call, is_json in ROUTES:
        with monkeypatch.context() as patch:
            patch.setattr(*REFUSING[name], refuse)
            resp = call(browsers)
        assert resp.status_code == status, (name, resp.status_code, resp.get_data(as_text=True)[:200])
        if is_json:
            assert resp.mimetype == "application/json", name
            answers[True].add(tuple(sorted(resp.json.items())))
        else:
            page = resp.get_data(as_text=True)
            assert resp.mimetype == "text/html", name
            assert f'<p class="message" role="status">{message}</p>' in page, name
            assert BACK.get(name, 'href="/"') in page, name  # the way back: the blueprint's own
            answers[False].add(page[page.index('<p class="message"'):].split("</p>")[0])
    assert answers[True] == {(("error", error.code), ("message", message))}
    assert len(answers[False]) == 1
    # and none of that cost a session
    assert get(browsers.user, "/home").status_code == 200
    assert get(browsers.console, "/console/").status_code == 200


def _dead_database(world: Web) -> None:
    """The database goes away under a running service (the session store keeps answering:
    each request still gets as far as the data it needs)."""
    dead = make_engine(DEAD_PG)
    deps = world.deps
    world.app.extensions["authsvc"] = dataclasses.replace(
        deps, uow=lambda read_only=False: UnitOfWork(session_factory(dead), deps.audit_key, read_only))


def _check_unavailable(resp: Any, is_json: bool, name: str) -> None:
    assert resp.status_code == 503, (name, resp.status_code)
    if is_json:
        assert resp.json == {"error": "service_unavailable", "message": UNAVAILABLE}, name
    else:
        assert resp.mimetype == "text/html" and UNAVAILABLE in resp.get_data(as_text=True), name


def test_a_dead_database_is_503_on_every_blueprint(world, browsers):
    _dead_database(world)
    for name, call, is_json in ROUTES:
        if name != "login script":  # no logon waits for a palm here: refused before any data
            _check_unavailable(call(browsers), is_json, name)
    # the console's gate needs the account's role: also unavailable, not "log on again"
    _check_unavailable(get(browsers.console, "/console/"), False, "console index")


def test_a_dead_redis_is_503_on_every_blueprint(make_deps):
    """Counters and sessions in a Redis that does not answer: every request that needs either
    fails closed with 503 (a planted token makes each one ask the session store)."""
    world = make_web(make_deps, counters={"backend": "redis"}, sessions={"backend": "redis"},
                     redis={"url": DEAD_REDIS})
    try:
        planted = world.client()
        planted.set_cookie("authsvc_session", "planted-token", domain="localhost", path="/")
        planted.set_cookie("authsvc_console", "planted-token", domain="localhost", path="/console")
        b = Browsers(planted, planted, planted, planted)
        for name, call, is_json in ROUTES:
            _check_unavailable(call(b), is_json, name)
        _check_unavailable(planted.get("/api/v1/session", headers={"Authorization": "Bearer planted"},
                                       base_url=BASE), True, "api session state")
        _check_unavailable(get(planted, "/console/"), False, "console index")
    finally:
        world.reader.close()


# ---- who a decorator lets in ----------------------------------------------------------------


def test_login_required_refuses_a_locked_session(world, browsers):
    user = browsers.user
    token = cookie(user)
    assert post(user, "/lock").status_code == 302
    assert get(user, "/home").headers["Location"] == "/lock"  # locked: the lock screen
    for path in ("/api/v1/history", "/api/v1/sessions"):
        resp = user.get(path, headers={"Authorization": f"Bearer {token}"}, base_url=BASE)
        assert resp.status_code == 401 and resp.json["error"] == "unauthorised", path
    # what takes any session, locked too, still does
    state = user.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}, base_url=BASE)
    assert state.status_code == 200 and state.json["locked"] is True
    assert get(user, "/lock").status_code == 200


def test_login_required_refuses_a_console_session(world, browsers):
    admin = browsers.console
    token = console_token(admin)
    admin.set_cookie("authsvc_session", token, domain="localhost", path="/")
    assert get(admin, "/home").headers["Location"] == "/"
    for path in ("/api/v1/history", "/api/v1/sessions", "/api/v1/session"):
        resp = admin.get(path, headers={"Authorization": f"Bearer {token}"}, base_url=BASE)
        assert resp.status_code == 401 and resp.json["error"] == "unauthorised", path
    # at the console's own logon, its session is no user session either
    assert get(admin, "/console/logon/home").headers["Location"] == "/console/logon/"
    assert get(admin, "/console/").status_code == 200


def test_the_console_decorator_refuses_a_user_session(world, browsers):
    user = browsers.user
    user.set_cookie("authsvc_console", cookie(user), domain="localhost", path="/console")
    assert get(user, "/console/records").headers["Location"] == "/console/logon/"
    resp = get(user, "/console/registrations.json")
    assert resp.status_code == 401 and resp.json["error"] == "unauthorised"
    assert get(user, "/home").status_code == 200


def test_flask_login_keeps_nothing_of_its_own(world, browsers):
    """No user id in Flask's session, no remember-me cookie written, and one sent is ignored:
    the session is only ever the one behind our own token."""
    app, user = world.app, browsers.user
    for client in (browsers.user, browsers.console):
        flask_cookie = client.get_cookie("authsvc", domain="localhost")
        data = app.session_interface.get_signing_serializer(app).loads(flask_cookie.value)
        assert set(data) <= {"csrf_token"}, data
        assert client.get_cookie("remember_token", domain="localhost") is None
    user.set_cookie("remember_token", "sato|forged", domain="localhost")
    home = get(user, "/home")
    assert home.status_code == 200 and "remember_token" not in str(home.headers)
    # an API call does not so much as look at Flask's session
    api = user.get("/api/v1/session", headers=bearer(user), base_url=BASE)
    assert api.status_code == 200 and "Vary" not in api.headers and "Set-Cookie" not in api.headers
    nobody = world.client()
    nobody.set_cookie("remember_token", "sato|forged", domain="localhost")
    assert get(nobody, "/home").headers["Location"] == "/"

"""Hostile JSON bodies at every HTTP surface that reads one: the service's API, the pages' JSON
endpoints (with their CSRF token and, where the session is checked first, with a session) and
the terminal agent. Deep nesting, duplicate keys, bad UTF-8, NaN, a top-level array, an oversize
body: each is a clear 400 `invalid_json` (413 over the size limit) as JSON, never a 500, never a
traceback in the log, and nothing is written or lost."""

from __future__ import annotations

import dis
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.vein import open_reader
from authsvc.agent import create_agent
from authsvc.domain.messages import text
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.web import APPLICATION_UPLOADS, jsonbody
from tests.e2e.test_web_console import BASE, Web, console, console_token, csrf, get, make_web
from tests.e2e.test_web_register import at_register
from tests.integration.support import row_counts

DEEP = {"arrays_1000": b"[" * 1_000 + b"]" * 1_000, "arrays_5000": b"[" * 5_000 + b"]" * 5_000,
        "objects_1000": b'{"a":' * 1_000 + b"1" + b"}" * 1_000,
        "objects_5000": b'{"a":' * 5_000 + b"1" + b"}" * 5_000}
HOSTILE: dict[str, bytes] = {
    **DEEP,
    "deep_unclosed": b"[" * 5_000,
    "duplicate_key": b'{"user_id": "sato", "user_id": "admin", "password": "x"}',
    "invalid_utf8": b'{"user_id": "sato\xff\xfe", "password": "x"}',
    "nan": b'{"user_id": "sato", "password": NaN}',
    "top_level_array": b'[{"user_id": "sato", "password": "x"}]',
    "oversize": b'{"pad": "' + b"x" * (70 * 1024) + b'"}',
}

# Every endpoint whose view reads a JSON body, with the session it checks before reading it:
# none (the API and the factor steps read the body first), a registrant's, a station's, an
# administrator's console session sent as a bearer token (the administrators' API).
READS: dict[str, str | None] = {
    "api.begin": None, "api.change_password": None, "api.totp": None, "api.webauthn": None,
    "api.vein": None, "api.terminal": None, "api.unlock": None,
    "login.vein_verify": None, "login.webauthn_verify": None, "login.terminal_verify": None,
    "console_logon.vein_verify": None, "console_logon.webauthn_verify": None,
    "console_logon.terminal_verify": None,
    "register.vein_enrol": "registrant", "admin_api.client_registration": "admin",
    "console.enrol_challenges": "station", "console.enrol_vein": "station",
    "admin_api.create": "admin", "admin_api.update": "admin", "admin_api.act": "admin",
    "admin_api.create_contract": "admin", "admin_api.device_register": "admin",
    "admin_api.device_change": "admin", "admin_api.group_create": "admin",
    "admin_api.group_policy": "admin", "admin_api.group_request": "admin",
    "admin_api.client_create": "admin", "admin_api.client_act": "admin",
    "admin_api.contract_period": "admin",
    "admin_api.directory_sync": "admin", "admin_api.directory_export": "admin",
    "admin_api.application_submit": "admin", "admin_api.application_act": "admin",
    "admin_api.roster_upload": "admin", "admin_api.company_set": "admin",
    "admin_api.contract_terms": "admin",
}
# The value each path placeholder gets (by its name; a number for an int converter); an
# action each route knows (an unknown one is a 404 before the body is read).
PLACEHOLDERS = {"sid": "x" * 43, "user_id": "yamada", "device_id": "TERMINAL-1",
                "name": "group-1", "client_id": "sync-1", "number": "C-1", "company": "防衛産業株式会社"}
ACTIONS = {"console.registration_act": "join", "admin_api.act": "suspend",
           "admin_api.device_change": "suspend", "admin_api.client_act": "suspend",
           "admin_api.application_act": "reject"}
PLACEHOLDER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
# The APIs' other writes read no body: without a token they answer this, whatever is sent.
NO_BODY = {"api.totp_enrol": (401, "logon_failed"), "api.webauthn_options": (401, "logon_failed"),
           "api.vein_challenge": (401, "logon_failed"), "api.terminal_challenge": (401, "logon_failed"),
           "api.lock": (401, "unauthorised"),
           "api.logoff": (401, "unauthorised"), "api.end_session": (404, "not_found"),
           "admin_api.group_approve": (401, "unauthorised"),
           "admin_api.group_remove": (401, "unauthorised"),
           "admin_api.alert_acknowledge": (401, "unauthorised")}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
MARKERS = {"json_body", "get_json", "json"}  # json_body(), request.get_json(), request.json


def _loads(code: CodeType) -> tuple[set[str], set[str]]:
    """The global names and the attribute names a function's code loads."""
    names: tuple[set[str], set[str]] = (set(), set())
    for ins in dis.get_instructions(code):
        if ins.opname == "LOAD_GLOBAL":
            names[0].add(ins.argval)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            names[1].add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            inner = _loads(const)
            names[0].update(inner[0])
            names[1].update(inner[1])
    return names


def reads_json(view: Callable[..., Any], seen: set[Any] | None = None) -> bool:
    """Whether the view, or a function of the web package it calls, reads a JSON body."""
    seen = set() if seen is None else seen
    for fn in {view, inspect.unwrap(view)} - seen:
        seen.add(fn)
        globals_, attrs = _loads(fn.__code__)
        if (globals_ | attrs) & MARKERS:
            return True
        called = [fn.__globals__.get(n) for n in globals_]
        if any(reads_json(c, seen) for c in called if inspect.isfunction(c)
               and c.__module__.startswith("authsvc.web") and c not in seen):
            return True
    return False


def rules(app: Any) -> dict[str, tuple[str, str]]:
    """endpoint -> (method, path) of every writing rule, placeholders filled in."""
    out = {}
    for rule in app.url_map.iter_rules():
        methods = sorted((rule.methods or set()) & WRITES)
        if methods:
            out[rule.endpoint] = (methods[0], _filled(rule.endpoint, rule.rule))
    return out


def _filled(endpoint: str, path: str) -> str:
    """`path` with each placeholder filled in: a number for an int, else by its name."""
    values = {**PLACEHOLDERS, "action": ACTIONS.get(endpoint, "join")}
    return PLACEHOLDER.sub(lambda m: "1" if m[1] == "int" else values.get(m[2], "x"), path)


@pytest.fixture
def web(make_deps) -> Iterator[Web]:
    made = make_web(make_deps)
    made.app.config["TESTING"] = False  # as in production: an error is a 500 and a logged traceback
    made.person("yamada")  # stops at palm registration
    made.person("kanri", role="staff", name="管理 三郎", contract=OPERATIONS_CONTRACT, otp=True)
    yield made
    made.reader.close()


def test_the_lists_cover_every_json_endpoint(web):
    app = web.app
    readers = {e for e, view in app.view_functions.items() if reads_json(view)}
    assert readers == set(READS)
    api_writes = {e for e, (_m, _p) in rules(app).items() if e.startswith("api.")}
    assert api_writes == {e for e in (*READS, *NO_BODY) if e.startswith("api.")}
    admin_writes = {e for e in rules(app) if e.startswith("admin_api.")}
    assert admin_writes == {e for e in (*READS, *NO_BODY) if e.startswith("admin_api.")}
    assert not reads_json(app.view_functions["register.capture_id"])  # an image, not JSON


def check(resp: Any, status: int, error: str, caplog: pytest.LogCaptureFixture, lang: str = "ja") -> None:
    where = (resp.request.method, resp.request.path, resp.status_code)
    assert resp.status_code == status, where
    assert resp.mimetype == "application/json", where
    body = resp.get_json()
    assert body["error"] == error, (where, body)
    if error == "invalid_json":
        assert body == {"error": "invalid_json", "message": text("invalid_json", lang)}
    records = caplog.records
    assert not [r for r in records if r.exc_info or "Traceback" in r.getMessage()], where
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1 and all(len(m) < 120 and "sato" not in m for m in warnings), warnings
    caplog.clear()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_json_endpoint_refuses_a_hostile_body(web, caplog, name):
    caplog.set_level(logging.INFO)
    body, app = HOSTILE[name], web.app
    too_big = len(body) > app.config["MAX_CONTENT_LENGTH"]
    status, error = (413, "request_invalid") if too_big else (400, "invalid_json")
    clients = {None: web.client(), "registrant": at_register(web, "yamada"),
               "station": console(web, "kanri")}
    tokens = {who: csrf(c) for who, c in clients.items()}
    # the administrators' API: the station's console session as a bearer token, no cookies
    clients["admin"] = web.client()
    bearer = {"Authorization": f"Bearer {console_token(clients['station'])}"}
    before = row_counts(web.deps)
    found = rules(app)

    def send(who: str | None, endpoint: str) -> Any:
        method, path = found[endpoint]
        headers = bearer if who == "admin" else {"X-CSRFToken": tokens[who], "Referer": BASE + "/"}
        return clients[who].open(path, method=method, data=body, headers=headers,
                                 content_type="application/json", base_url=BASE)

    for endpoint, who in READS.items():
        # the workbook uploads take bodies far beyond the JSON limit (web.APPLICATION_UPLOADS)
        expected = (400, "invalid_json") if endpoint in APPLICATION_UPLOADS else (status, error)
        check(send(who, endpoint), *expected, caplog)
        if who == "admin":  # without a token: refused before the body is read (no CSRF check)
            check(send(None, endpoint), 401, "unauthorised", caplog)
        elif who is not None:  # without that session: refused before the body is parsed (but
            # the CSRF check looks for a form field first, so the size limit comes first still)
            refused = "logon_failed" if who == "registrant" else "unauthorised"
            check(send(None, endpoint), *((status, error) if too_big else (401, refused)), caplog)
    for endpoint, (answer, code) in NO_BODY.items():
        check(send(None, endpoint), answer, code, caplog)
    # nothing was written (no failure counted, no audit event), and no session was lost
    assert row_counts(web.deps) == before
    assert get(clients["station"], "/console/").status_code == 200 and console_token(clients["station"])
    assert get(clients["registrant"], "/register/").status_code == 200


def test_the_refusal_speaks_the_requests_language(web, caplog):
    resp = web.client().post("/api/v1/logon?lang=en", data=HOSTILE["duplicate_key"],
                             content_type="application/json", base_url=BASE)
    check(resp, 400, "invalid_json", caplog, lang="en")
    assert resp.get_json()["message"].isascii()


def test_an_empty_body_keeps_todays_answers(web):
    """No body at all is not hostile: each endpoint answers as it did for a missing field."""
    client = web.client()
    for data in (b"", b"  \n"):
        resp = client.post("/api/v1/logon", data=data, content_type="application/json", base_url=BASE)
        assert (resp.status_code, resp.get_json()["error"]) == (401, "logon_failed")
        resp = client.post("/vein/verify", data=data, content_type="application/json", base_url=BASE,
                           headers={"X-CSRFToken": csrf(client), "Referer": BASE + "/"})
        assert (resp.status_code, resp.get_json()["error"]) == (400, "request_invalid")


def test_get_json_of_the_app_is_bounded_too(web):
    """Any future `request.get_json()` goes through the same reader."""
    app = web.app
    assert isinstance(app.json, jsonbody.StrictJSONProvider)
    with app.test_request_context("/", method="POST", data=DEEP["arrays_5000"],
                                  content_type="application/json"):
        from flask import request
        assert request.get_json(silent=True) is None
    with pytest.raises(jsonbody.InvalidJSON):
        app.json.loads('{"a": 1, "a": 2}')


# ---- the terminal agent ---------------------------------------------------------------------

ORIGIN = "http://localhost:8080"


@pytest.fixture
def agent() -> Iterator[tuple[Any, Any]]:
    reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="T-1")
    app = create_agent(reader, "T-1", (ORIGIN,))
    yield app, reader
    reader.close()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_agent_refuses_a_hostile_body(agent, caplog, name):
    caplog.set_level(logging.INFO)
    app, reader = agent
    assert isinstance(app.json, jsonbody.StrictJSONProvider)
    client, body = app.test_client(), HOSTILE[name]
    too_big = len(body) > app.config["MAX_CONTENT_LENGTH"]  # 16 KiB: the deep objects too
    status, error = (413, "request_invalid") if too_big else (400, "invalid_json")
    reader.control.present(42)
    for path, headers in (("/capture", {"Origin": ORIGIN}), ("/attest", {"Origin": ORIGIN}),
                          ("/control", {})):
        resp = client.post(path, data=body, headers=headers, content_type="application/json")
        check(resp, status, error, caplog)
    assert [o.kind for o in reader.control.pending] == ["present"]  # the reader was not used

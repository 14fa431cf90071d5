"""Back-channel logout over real HTTP: a relying party's logout endpoint (a small HTTP server on
loopback) receives a signed logout token naming the session when the session ends here (logoff,
idle end, an operator, a suspension); an unreachable relying party is retried with a doubling
delay and, in the end, reported to the operators."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from authsvc.services import accounts, backchannel, operators
from authsvc.web import create_app
from tests.integration.oidc_support import (
    BASE,
    authorize,
    code_of,
    csrf,
    log_on,
    post,
    register,
    token,
    worker,
)
from tests.integration.support import events


class Receiver:
    """A relying party's back-channel logout endpoint: records each logout token it is sent."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        received = self.tokens = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                received.append(parse_qs(body)["logout_token"][0])
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Deliveries run in a background thread: wait (bounded) for what they do."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def deps(make_deps):
    return make_deps("sqlite", oidc={"logout_attempts": 3, "logout_retry_seconds": 30})


@pytest.fixture
def web(deps):
    app = create_app(deps=deps)
    app.config["TESTING"] = True
    return app.test_client()


def signed_in(web, deps, operator, account_admin, uri: str) -> dict:
    """kato logged on, rp1 (logout endpoint `uri`) given tokens in that session: the ID token's claims."""
    party = register(deps, operator, account_admin, backchannel_logout_uri=uri)
    log_on(web, deps, "kato", worker(deps, operator, account_admin))
    resp, verifier = authorize(web)
    body = token(web, party, code_of(resp), verifier).get_json()
    keys = KeySet.import_key_set(web.get("/oidc/jwks", base_url=BASE).get_json())
    return dict(jwt.decode(body["id_token"], keys).claims)


def check_logout_token(web, raw: str, id_claims: dict) -> None:
    keys = KeySet.import_key_set(web.get("/oidc/jwks", base_url=BASE).get_json())
    found = jwt.decode(raw, keys)
    claims = found.claims
    assert found.header["typ"] == "logout+jwt"
    assert claims["iss"] == id_claims["iss"] and claims["aud"] == "rp1"
    assert claims["sid"] == id_claims["sid"] and claims["sub"] == id_claims["sub"]
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims and claims["jti"]


def test_logoff_tells_the_relying_party(web, deps, operator, account_admin, receiver):
    id_claims = signed_in(web, deps, operator, account_admin, receiver.url)
    post(web, "/logoff", {}, csrf(web, "/home"))
    assert wait_for(lambda: len(receiver.tokens) == 1)
    check_logout_token(web, receiver.tokens[0], id_claims)
    assert wait_for(lambda: bool(events(deps, "oidc.logout_delivered")))


def test_an_operator_ending_the_sessions_tells_the_relying_party(web, deps, operator, account_admin,
                                                                 receiver):
    id_claims = signed_in(web, deps, operator, account_admin, receiver.url)
    operators.end_sessions(deps, operator, "kato", "端末紛失")
    assert wait_for(lambda: len(receiver.tokens) == 1)
    check_logout_token(web, receiver.tokens[0], id_claims)


def test_a_suspension_tells_the_relying_party(web, deps, operator, account_admin, receiver):
    signed_in(web, deps, operator, account_admin, receiver.url)
    accounts.suspend(deps, operator, "kato", "調査")
    assert wait_for(lambda: len(receiver.tokens) == 1)


def test_an_idle_session_is_found_by_the_sweep(web, deps, operator, account_admin, receiver):
    id_claims = signed_in(web, deps, operator, account_admin, receiver.url)
    assert backchannel.sweep(deps) == 0  # still in use
    deps.clock.advance(minutes=deps.settings.sessions.idle_minutes + 1)
    assert backchannel.sweep(deps) == 1
    assert wait_for(lambda: len(receiver.tokens) == 1)
    check_logout_token(web, receiver.tokens[0], id_claims)
    assert backchannel.sweep(deps) == 0  # told once


def test_an_unreachable_relying_party_is_retried_then_reported(web, deps, operator, account_admin):
    port = free_port()
    signed_in(web, deps, operator, account_admin, f"http://127.0.0.1:{port}/backchannel")
    operators.end_sessions(deps, operator, "kato", "test")

    def attempts() -> list[int]:
        return [o["attempts"] for o in backchannel.logouts(deps, operator)]

    assert wait_for(lambda: attempts() == [1])  # the first try, at once, failed
    assert backchannel.deliver(deps) == (0, 0)  # not due yet: 30 s
    deps.clock.advance(seconds=30)
    assert backchannel.deliver(deps) == (0, 1)
    assert attempts() == [2]
    deps.clock.advance(seconds=59)
    assert backchannel.deliver(deps) == (0, 0)  # the delay doubled
    receiver = Receiver(port)  # the relying party is back before the last try
    try:
        deps.clock.advance(seconds=1)
        assert backchannel.deliver(deps) == (1, 0)
        assert len(receiver.tokens) == 1
    finally:
        receiver.close()
    assert not [e for e in events(deps, "oidc.logout_failed")]


def test_a_relying_party_that_never_answers_raises_an_alert(web, deps, operator, account_admin):
    signed_in(web, deps, operator, account_admin, f"http://127.0.0.1:{free_port()}/backchannel")
    operators.end_sessions(deps, operator, "kato", "test")
    assert wait_for(lambda: [o["attempts"] for o in backchannel.logouts(deps, operator)] == [1])
    for delay in (30, 60):
        deps.clock.advance(seconds=delay)
        backchannel.deliver(deps)
    [row] = backchannel.logouts(deps, operator)
    assert row["attempts"] == 3 and row["given_up_at"] and row["last_error"]
    [failed] = events(deps, "oidc.logout_failed")
    assert failed.data["client"] == "rp1"
    with deps.uow(read_only=True) as uow:
        inbox = uow.alerts.inbox(None, True, True, 10)
        [alert] = [a for a in inbox if a.kind == "oidc_logout_failed"]
        assert alert.subject == "rp1" and alert.company == "防衛産業株式会社"


def test_an_error_status_counts_as_a_failure(web, deps, operator, account_admin):
    receiver = Receiver(status=500)
    try:
        signed_in(web, deps, operator, account_admin, receiver.url)
        operators.end_sessions(deps, operator, "kato", "test")
        assert wait_for(lambda: [o["last_error"] for o in backchannel.logouts(deps, operator)]
                        == ["http_500"])
    finally:
        receiver.close()


def test_operators_see_only_their_companys_logouts(web, deps, operator, account_admin):
    from authsvc.domain.roles import Actor, Role

    signed_in(web, deps, operator, account_admin, f"http://127.0.0.1:{free_port()}/backchannel")
    operators.end_sessions(deps, operator, "kato", "test")
    assert wait_for(lambda: len(backchannel.logouts(deps, operator)) == 1)
    own = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company="防衛産業株式会社")
    other = Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company="別会社株式会社")
    assert [r["client"] for r in backchannel.logouts(deps, own)] == ["rp1"]
    assert backchannel.logouts(deps, other) == []

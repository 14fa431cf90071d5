"""R12 through the real pieces: the terminal agent's `/attest` (the server's challenge signed with
the terminal's device key, no palm, only for the logon page's origin) and the service's JSON API
(/api/v1/logon/terminal/challenge, /api/v1/logon/terminal) on a database. With
`devices.require_terminal` on, a TOTP logon needs the agent's proof before it has a session;
the session and the logon history then name the device. A revoked terminal, another company's
bound terminal and a replayed proof are refused and audited; with the policy off the API is as
before. The rules over fakes: tests/unit/test_terminal_service.py."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import authsvc.agent as agent_module
from adapters.vein import Capture, TerminalProof
from authsvc.agent import create_agent
from authsvc.services import Deps, devices
from authsvc.web import create_app
from tests.integration.support import CHOSEN, add_contract, events
from tests.terminal_support import (
    BROWSER,
    OTHER_COMPANY,
    REQUIRED,
    TERMINAL,
    Terminal,
    b64,
    terminal,
    totp_user,
)

ORIGIN = "http://localhost:8080"  # the logon page allowed to ask the agent
FOREIGN = "http://evil.example"
BASE = "https://localhost"


@dataclass
class Rig:
    deps: Deps
    service: Any  # the service's test client
    agent: Any  # the agent's test client
    pc: Terminal
    secret: str

    def api(self, path: str, body: dict[str, Any] | None = None, token: str | None = None,
            method: str = "post") -> Any:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": BROWSER} if token else {
            "User-Agent": BROWSER}
        return getattr(self.service, method)(path, json=body, headers=headers, base_url=BASE)

    def attest(self, challenge: object, origin: str | None = ORIGIN, **extra: Any) -> Any:
        headers = {"Origin": origin} if origin else {}
        return self.agent.post("/attest", json={"challenge": challenge, **extra}, headers=headers)

    def to_terminal(self) -> str:
        """Password and TOTP through the API; the token of the logon waiting at `terminal`."""
        r = self.api("/api/v1/logon", {"user_id": "alice", "password": CHOSEN[0]})
        assert r.json["state"] == "second_factor", r.json
        code = pyotp.TOTP(self.secret).at(self.deps.clock.now())
        self.deps.clock.advance(seconds=30)  # the next logon's code is a new one
        r = self.api("/api/v1/logon/totp", {"code": code}, r.json["token"])
        assert r.status_code == 200 and r.json["state"] == "terminal", r.json
        return r.json["token"]

    def prove(self, token: str) -> tuple[Any, dict[str, Any], str]:
        """The page's part: a challenge from the service, the agent's proof of it, back to the
        service. (The service's answer, the proof, the challenge id.)"""
        made = self.api("/api/v1/logon/terminal/challenge", {}, token)
        assert made.status_code == 200 and made.json["agent_url"], made.json
        signed = self.attest(made.json["challenge"])
        assert signed.status_code == 200, signed.json
        proof = signed.json["proof"]
        body = {"challenge_id": made.json["challenge_id"], "proof": proof}
        return self.api("/api/v1/logon/terminal", body, token), proof, made.json["challenge_id"]


def make_rig(make_deps: Any, operator: Any, account_admin: Any, **sections: Any) -> Rig:
    deps = make_deps("sqlite", **sections)
    add_contract(deps, operator)
    secret = totp_user(deps, deps.clock, operator, account_admin)
    pc = terminal(deps, operator)
    app = create_app(deps=deps)
    app.config["TESTING"] = True
    return Rig(deps, app.test_client(), create_agent(pc.reader, TERMINAL, (ORIGIN,)).test_client(),
               pc, secret)


@pytest.fixture
def rig(make_deps, operator, account_admin) -> Iterator[Rig]:
    made = make_rig(make_deps, operator, account_admin, devices=REQUIRED)
    yield made
    made.pc.reader.close()


def reasons(deps: Deps) -> list[tuple[str, str]]:
    return [(e.result, e.data.get("reason", "")) for e in events(deps, "logon.terminal", "alice")]


# ---- the agent -------------------------------------------------------------------------------


def test_the_agent_signs_the_challenge_with_the_device_key_without_a_palm(rig):
    challenge = secrets.token_bytes(32)
    rig.pc.reader.control.unplug()  # no sensor needed: the key is the terminal's, not the reader's
    resp = rig.attest(b64(challenge))
    assert resp.status_code == 200, resp.json
    assert resp.json["device_id"] == TERMINAL
    proof = TerminalProof.from_dict(resp.json["proof"])  # the strict parser the server uses
    assert (proof.device_id, proof.purpose, proof.challenge) == (TERMINAL, "terminal", challenge)
    assert proof.verify_signature(rig.pc.reader.public_key_bytes())
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Cache-Control"] == "no-store"
    assert rig.pc.reader.control.pending == []  # nothing was captured, nothing scripted used
    with pytest.raises(Exception):  # noqa: B017 (the proof is no capture record)
        Capture.from_dict(resp.json["proof"])


def test_the_agent_answers_only_the_logon_page_and_only_a_challenge(rig):
    challenge = b64(secrets.token_bytes(32))
    for origin in (FOREIGN, None, "null"):
        resp = rig.attest(challenge, origin=origin)
        assert (resp.status_code, resp.json) == (403, {"error": "origin_refused"})
        assert "Access-Control-Allow-Origin" not in resp.headers
    for bad in (None, "", 7, b64(secrets.token_bytes(8)), b64(secrets.token_bytes(65)), challenge + "=",
                "!" * 43):
        assert rig.attest(bad).status_code == 400, bad
    assert rig.attest(challenge, purpose="verify").status_code == 400  # a proof has one purpose
    pre = rig.agent.options("/attest", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert rig.agent.get("/attest").status_code == 405


def test_a_proof_is_not_held_up_by_a_capture_waiting_for_a_hand(rig, monkeypatch):
    monkeypatch.setattr(agent_module, "CAPTURE_TIMEOUT_S", 2.0)
    waiting = threading.Thread(target=lambda: rig.agent.post(
        "/capture", json={"challenge": b64(secrets.token_bytes(32)), "purpose": "verify"},
        headers={"Origin": ORIGIN}))
    waiting.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert rig.attest(b64(secrets.token_bytes(32))).status_code == 200
    assert time.monotonic() - started < 1.0
    rig.pc.reader.control.present(42)
    waiting.join(timeout=10)


# ---- the logon through the API ---------------------------------------------------------------


def test_a_totp_logon_needs_the_agents_proof_and_the_history_names_the_terminal(rig):
    token = rig.to_terminal()
    # no session yet: the pending logon's token opens nothing, and no proof is no way on
    assert rig.api("/api/v1/session", token=token, method="get").status_code == 401
    assert rig.api("/api/v1/logon/terminal", {"challenge_id": "x"}, token).status_code == 401
    assert rig.api("/api/v1/logon/totp", {"code": "123456"}, token).status_code == 401
    assert rig.deps.sessions.of_user("alice") == {}
    done, _proof, _cid = rig.prove(token)
    assert done.status_code == 200 and done.json["state"] == "done", done.json
    session = done.json["token"]
    assert rig.api("/api/v1/session", token=session, method="get").json["factors"] == ["password", "totp"]
    history = rig.api("/api/v1/history", token=session, method="get").json["history"]
    assert [(h["step"], h["terminal"]) for h in history[:3]] == [
        ("complete", TERMINAL), ("terminal", TERMINAL), ("totp", BROWSER)]
    [listed] = rig.api("/api/v1/sessions", token=session, method="get").json["sessions"]
    assert listed["terminal"] == TERMINAL
    assert reasons(rig.deps) == [("ok", "")]


def test_the_openapi_document_describes_the_terminal_step(rig):
    spec = rig.api("/api/v1/openapi.json", method="get").json
    state = spec["paths"]["/api/v1/logon/totp"]["post"]["responses"]["200"]["content"]["application/json"]
    assert "terminal" in state["schema"]["properties"]["state"]["enum"]
    assert {"/api/v1/logon/terminal/challenge", "/api/v1/logon/terminal"} <= set(spec["paths"])


def test_a_revoked_terminal_is_refused_and_audited(rig, operator):
    token = rig.to_terminal()
    devices.change(rig.deps, operator, TERMINAL, "revoke", "stolen")
    refused, _proof, _cid = rig.prove(token)
    assert (refused.status_code, refused.json["error"]) == (401, "logon_failed")
    assert reasons(rig.deps) == [("failed", "device_revoked")]
    assert rig.deps.sessions.of_user("alice") == {}


def test_another_companys_bound_terminal_is_refused(make_deps, operator, account_admin):
    made = make_rig(make_deps, operator, account_admin, devices=REQUIRED)
    add_contract(made.deps, operator, "C-2026-002", OTHER_COMPANY)
    theirs = terminal(made.deps, operator, "TOWA-1", company=OTHER_COMPANY)
    made.agent = create_agent(theirs.reader, "TOWA-1", (ORIGIN,)).test_client()  # their agent
    refused, _proof, _cid = made.prove(made.to_terminal())
    assert refused.status_code == 401
    [ev] = events(made.deps, "logon.terminal", "alice")
    assert (ev.result, ev.data["reason"], ev.data["device"]) == ("failed", "device_company", "TOWA-1")
    for reader in (made.pc.reader, theirs.reader):
        reader.close()


def test_a_replayed_or_mis_signed_proof_is_refused(rig):
    done, proof, challenge_id = rig.prove(rig.to_terminal())
    assert done.json["state"] == "done"
    token = rig.to_terminal()
    again = rig.api("/api/v1/logon/terminal", {"challenge_id": challenge_id, "proof": proof}, token)
    fresh = rig.api("/api/v1/logon/terminal/challenge", {}, token).json
    other = rig.api("/api/v1/logon/terminal", {"challenge_id": fresh["challenge_id"], "proof": proof}, token)
    fresh = rig.api("/api/v1/logon/terminal/challenge", {}, token).json
    signed = rig.attest(fresh["challenge"]).json["proof"]
    signed["signature"] = b64(Ed25519PrivateKey.generate().sign(b"anything else"))
    bad = rig.api("/api/v1/logon/terminal", {"challenge_id": fresh["challenge_id"], "proof": signed}, token)
    assert [r.status_code for r in (again, other, bad)] == [401, 401, 401]
    assert reasons(rig.deps) == [("ok", ""), ("failed", "challenge"), ("failed", "other_challenge"),
                                 ("failed", "signature")]
    assert len(rig.deps.sessions.of_user("alice")) == 1  # the first logon's only


def test_with_the_policy_off_the_api_is_as_before(make_deps, operator, account_admin):
    made = make_rig(make_deps, operator, account_admin)
    r = made.api("/api/v1/logon", {"user_id": "alice", "password": CHOSEN[0]})
    token = r.json["token"]
    assert made.api("/api/v1/logon/terminal/challenge", {}, token).status_code == 401
    r = made.api("/api/v1/logon/totp", {"code": pyotp.TOTP(made.secret).at(made.deps.clock.now())}, token)
    assert r.json["state"] == "done"
    history = made.api("/api/v1/history", token=r.json["token"], method="get").json["history"]
    assert {h["terminal"] for h in history} == {BROWSER}
    assert events(made.deps, "logon.terminal", "alice") == []
    made.pc.reader.close()

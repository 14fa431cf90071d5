"""R12, every logon proves a registered terminal, whatever its second factor: the rules of the
flow (domain/logon_flow.py) and the terminal proof through the logon service
(services/logon.py, services/terminals.py) over the in-memory fakes. With
`devices.require_terminal` on, a TOTP logon waits at TERMINAL until the terminal agent's
signed answer to a challenge bound to the logon is accepted: a registered, active terminal
of the user's company. Every refusal is audited with its real reason and counted like a
factor; the session and the logon history then name the device, not the User-Agent. With the
policy off nothing changes. Through the real agent: tests/integration/test_terminal_agent.py;
in a browser: tests/e2e/test_browser_terminal.py."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from adapters.vein import InvalidRecord, TerminalProof
from authsvc.domain import logon_flow as lf
from authsvc.services import Deps, audit, devices, logon, sessions, vein
from authsvc.services.sessions import CONSOLE
from authsvc.settings import Devices
from tests.fakes import fake_deps
from tests.integration.support import CHOSEN, active_account, add_contract, events
from tests.terminal_support import (
    BROWSER,
    CLIENT,
    OTHER_COMPANY,
    REQUIRED,
    TERMINAL,
    b64d,
    forged,
    proof_for,
    terminal,
    to_terminal_step,
    totp_user,
)
from tests.vein_support import capture_for, enrolled_user, registered_reader

N = 3  # failures that lock


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock, devices=REQUIRED, lockout={"max_failures": N, "lock_minutes": 10,
                                                       "pending_seconds": 30})


@pytest.fixture
def secret(deps, clock, operator, account_admin) -> str:
    add_contract(deps, operator)
    return totp_user(deps, clock, operator, account_admin)


@pytest.fixture
def pc(deps, operator):
    """The user's registered terminal (unbound: it serves every company)."""
    made = terminal(deps, operator)
    yield made
    made.reader.close()


def terminal_events(deps: Deps, user: str = "alice") -> list[tuple[str, str, str]]:
    """(result, reason, device) of each terminal step of the user's logons."""
    return [(e.result, e.data.get("reason", ""), e.data.get("device", ""))
            for e in events(deps, "logon.terminal", user)]


def no_session(deps: Deps, user: str = "alice") -> bool:
    return deps.sessions.of_user(user) == {}


# ---- the flow --------------------------------------------------------------------------------


def flow_at_second_factor(required: bool) -> lf.Flow:
    flow = lf.begin("alice", "logon", 0.0, ("vein", "totp"), ("vein", "totp"), terminal_required=required)
    return lf.password_passed(flow, must_change=False)


def test_the_flow_asks_for_the_terminal_after_a_factor_that_did_not_prove_it():
    flow = lf.factor_passed(flow_at_second_factor(True), "totp")
    assert (flow.step, flow.terminal, lf.unproven(flow)) == (lf.Step.TERMINAL, "", True)
    assert flow.options == ()  # no factor finishes it now
    with pytest.raises(lf.FlowError):
        lf.factor_passed(flow, "vein")
    with pytest.raises(lf.FlowError):
        lf.terminal_proven(flow, "")
    done = lf.terminal_proven(flow, TERMINAL)
    assert (done.step, done.terminal) == (lf.Step.DONE, TERMINAL)
    with pytest.raises(lf.FlowError):  # only at TERMINAL
        lf.terminal_proven(flow_at_second_factor(True), TERMINAL)
    # a palm capture proves it on its way
    palm = lf.factor_passed(flow_at_second_factor(True), "vein", terminal=TERMINAL)
    assert (palm.step, palm.terminal) == (lf.Step.DONE, TERMINAL)


def test_with_the_policy_off_the_flow_is_as_before():
    assert lf.factor_passed(flow_at_second_factor(False), "totp").step is lf.Step.DONE
    palm = lf.factor_passed(flow_at_second_factor(False), "vein", terminal=TERMINAL)
    assert (palm.step, palm.terminal) == (lf.Step.DONE, "")  # nothing recorded: nothing changes


def test_a_first_factor_is_enrolled_only_from_a_proven_terminal():
    flow = lf.begin("alice", "logon", 0.0, ("totp",), (), terminal_required=True)
    flow = lf.password_changed(lf.password_passed(flow, must_change=True))
    assert flow.step is lf.Step.TERMINAL
    flow = lf.terminal_proven(flow, TERMINAL)
    assert (flow.step, flow.options) == (lf.Step.ENROL, ("totp",))
    assert lf.factor_passed(flow, "totp").step is lf.Step.DONE  # proven once is enough


def test_the_flow_keeps_the_terminal_in_the_store_and_reads_older_logons():
    flow = lf.terminal_proven(lf.factor_passed(flow_at_second_factor(True), "totp"), TERMINAL)
    assert lf.Flow.from_dict(flow.to_dict()) == flow
    older = {k: v for k, v in flow.to_dict().items() if k not in ("terminal", "terminal_required")}
    assert (lf.Flow.from_dict(older).terminal_required, lf.Flow.from_dict(older).terminal) == (False, "")


# ---- the proof record ------------------------------------------------------------------------


def test_the_proof_is_signed_over_its_own_label_and_parsed_strictly(deps, pc):
    challenge = bytes(range(32))
    proof = pc.reader.prove_terminal(challenge)
    assert (proof.device_id, proof.purpose, proof.challenge) == (TERMINAL, "terminal", challenge)
    assert proof.verify_signature(pc.reader.public_key_bytes())
    assert not proof.verify_signature(Ed25519PrivateKey.generate().public_key())
    again = TerminalProof.from_dict(proof.to_dict())
    assert again == proof and again.verify_signature(pc.reader.public_key_bytes())
    for changed in (dataclasses.replace(proof, challenge=bytes(32)),
                    dataclasses.replace(proof, device_id="TERMINAL-2"),
                    dataclasses.replace(proof, created_at=proof.created_at + timedelta(microseconds=1))):
        assert not changed.verify_signature(pc.reader.public_key_bytes())
    # a capture's signature is no proof, nor a proof's a capture's: the labels differ
    pc.reader.control.present(42)
    capture = pc.reader.capture("verify", challenge)
    assert not dataclasses.replace(proof, signature=capture.signature).verify_signature(
        pc.reader.public_key_bytes())
    assert not dataclasses.replace(capture, signature=proof.signature).verify_signature(
        pc.reader.public_key_bytes())
    good = proof.to_dict()
    for bad in ({**good, "purpose": "verify"}, {**good, "extra": 1}, {**good, "v": 2}, {**good, "v": True},
                {k: v for k, v in good.items() if k != "signature"},
                {**good, "challenge": good["challenge"] + "="},
                {**good, "created_at": "2026-04-01T00:00:00"}, {**good, "device_id": "端末"},
                {**good, "signature": good["signature"][:-4]}, [good], "proof"):
        with pytest.raises(InvalidRecord):
            TerminalProof.from_dict(bad)


# ---- the logon -------------------------------------------------------------------------------


def test_a_totp_logon_without_a_terminal_proof_gets_no_session(deps, clock, secret):
    state = to_terminal_step(deps, clock, secret)
    assert (state.step, state.options, state.failed) == (lf.Step.TERMINAL, (), False)
    assert no_session(deps)
    assert logon.pending(deps, state.token).step is lf.Step.TERMINAL
    assert sessions.current(deps, state.token) is None  # the pending logon is no session
    # no factor finishes it, not even another good code
    assert logon.totp_step(deps, state.token, pyotp.TOTP(secret).at(clock.now()), CLIENT) == logon.FAILED
    assert logon.vein_challenge(deps, state.token) is None
    assert logon.pending(deps, state.token).step is lf.Step.TERMINAL and no_session(deps)
    [ev] = events(deps, "logon.totp", "alice")
    assert ev.result == "ok" and ev.terminal == BROWSER  # nothing proven yet: the browser


def test_a_registered_terminal_finishes_the_logon_and_the_history_names_it(deps, clock, secret, pc):
    state = to_terminal_step(deps, clock, secret)
    challenge_id, proof = proof_for(deps, state.token, pc)
    done = logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT)
    assert done.step is lf.Step.DONE and done.token != state.token
    view = sessions.current(deps, done.token)
    assert (view.factors, view.terminal, view.source) == (("password", "totp"), TERMINAL, "10.0.0.5")
    assert logon.pending(deps, state.token).failed  # the pending logon's token is gone
    rows = sessions.history(deps, "alice")
    assert [(r["step"], r["result"], r["terminal"]) for r in rows[:3]] == [
        ("complete", "ok", TERMINAL), ("terminal", "ok", TERMINAL), ("totp", "ok", BROWSER)]
    assert terminal_events(deps) == [("ok", "", TERMINAL)]
    [complete] = events(deps, "logon.complete", "alice")
    assert complete.terminal == TERMINAL
    assert deps.counters.peek("alice", clock.now()) == (0, None)
    assert audit.verify(deps).ok


@pytest.mark.parametrize("change", ["suspend", "revoke"])
def test_a_suspended_or_revoked_terminal_is_refused(deps, clock, secret, pc, operator, change):
    state = to_terminal_step(deps, clock, secret)
    devices.change(deps, operator, TERMINAL, change, "lost")
    challenge_id, proof = proof_for(deps, state.token, pc)
    refused = logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT)
    assert refused.retry and refused.step is lf.Step.TERMINAL and no_session(deps)
    reason = "device_suspended" if change == "suspend" else "device_revoked"
    assert terminal_events(deps) == [("failed", reason, TERMINAL)]
    [row] = [r for r in sessions.history(deps, "alice", with_reason=True) if r["step"] == "terminal"]
    assert (row["result"], row["reason"], row["terminal"]) == ("failed", reason, BROWSER)
    [ev] = events(deps, "logon.terminal", "alice")
    assert ev.data["failures"] == 1  # counted like a factor
    if change == "suspend":  # resumed, the same logon goes on
        devices.change(deps, operator, TERMINAL, "resume")
        challenge_id, proof = proof_for(deps, state.token, pc)
        assert logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT).step is lf.Step.DONE


def test_an_unknown_terminal_or_a_registered_reader_is_refused(deps, clock, secret, operator):
    unknown = terminal(deps, operator, "TERMINAL-9", register=False)
    station = terminal(deps, operator, "STATION-1", kind="reader")
    state = to_terminal_step(deps, clock, secret)
    for signer in (unknown, station):
        challenge_id, proof = proof_for(deps, state.token, signer)
        assert logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT).retry
    assert terminal_events(deps) == [("failed", "device_unknown", "TERMINAL-9"),
                                     ("failed", "device_kind", "STATION-1")]
    assert no_session(deps)


def test_another_companys_bound_terminal_is_refused_its_own_accepted(deps, clock, secret, operator):
    add_contract(deps, operator, "C-2026-002", OTHER_COMPANY)
    theirs = terminal(deps, operator, "TOWA-1", company=OTHER_COMPANY)
    ours = terminal(deps, operator, "OURS-1", company="防衛産業株式会社")
    state = to_terminal_step(deps, clock, secret)
    challenge_id, proof = proof_for(deps, state.token, theirs)
    assert logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT).retry
    assert terminal_events(deps) == [("failed", "device_company", "TOWA-1")] and no_session(deps)
    challenge_id, proof = proof_for(deps, state.token, ours)
    done = logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT)
    assert sessions.current(deps, done.token).terminal == "OURS-1"


def test_a_replayed_or_mis_signed_proof_is_refused(deps, clock, secret, pc, operator):
    state = to_terminal_step(deps, clock, secret)
    challenge_id, proof = proof_for(deps, state.token, pc)
    assert logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT).step is lf.Step.DONE
    state = to_terminal_step(deps, clock, secret)
    # the recorded proof again: its challenge is spent, and it answers no fresh one
    assert logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT).retry
    fresh = logon.terminal_challenge(deps, state.token)
    assert logon.terminal_step(deps, state.token, fresh.id, proof, CLIENT).retry
    # signed with another key, claiming the registered terminal
    fresh = logon.terminal_challenge(deps, state.token)
    stolen_name = forged(deps, fresh.challenge, TERMINAL, Ed25519PrivateKey.generate())
    # the third failure (N = 3) locks the account and ends the logon
    assert logon.terminal_step(deps, state.token, fresh.id, stolen_name, CLIENT) == logon.FAILED
    assert terminal_events(deps)[1:] == [("failed", "challenge", ""), ("failed", "other_challenge", TERMINAL),
                                         ("failed", "signature", TERMINAL)]
    assert [e.result for e in events(deps, "account.lock", "alice")] == ["ok"]
    assert no_session(deps) and logon.pending(deps, state.token).failed
    assert audit.verify(deps).ok


def test_a_stale_a_malformed_or_another_logons_proof_is_refused(deps, clock, secret, pc, operator):
    deps = dataclasses.replace(deps, settings=dataclasses.replace(
        deps.settings, lockout=dataclasses.replace(deps.settings.lockout, max_failures=10)))
    first = to_terminal_step(deps, clock, secret)
    other_challenge, other_proof = proof_for(deps, first.token, pc)
    state = to_terminal_step(deps, clock, secret)  # a second logon of the same user
    # another logon's challenge and proof (bound to that logon's token)
    assert logon.terminal_step(deps, state.token, other_challenge, other_proof, CLIENT).retry
    made = logon.terminal_challenge(deps, state.token)
    old = forged(deps, made.challenge, TERMINAL, pc.key, created_at=clock.now() - timedelta(minutes=1))
    assert logon.terminal_step(deps, state.token, made.id, old, CLIENT).retry
    for bad in ({}, {**other_proof, "purpose": "verify"}):
        made = logon.terminal_challenge(deps, state.token)
        assert logon.terminal_step(deps, state.token, made.id, bad, CLIENT).retry
    assert [r for _, r, _ in terminal_events(deps)] == ["challenge", "stale", "malformed", "malformed"]
    # the other logon's challenge was spent by the attempt on this one
    assert logon.terminal_step(deps, first.token, other_challenge, other_proof, CLIENT).retry
    assert no_session(deps)


def test_failed_proofs_count_toward_the_lock(deps, clock, secret, pc):
    state = to_terminal_step(deps, clock, secret)
    key = Ed25519PrivateKey.generate()
    for n in range(1, N + 1):
        made = logon.terminal_challenge(deps, state.token)
        answer = logon.terminal_step(deps, state.token, made.id, forged(deps, made.challenge, TERMINAL, key),
                                     CLIENT)
        assert answer.retry if n < N else answer == logon.FAILED
    assert [e.data["failures"] for e in events(deps, "logon.terminal", "alice")] == [1, 2, 3]
    assert len(events(deps, "account.lock", "alice")) == 1
    # locked: a genuine proof on a new logon is not even reached
    assert logon.begin(deps, "alice", CHOSEN[0], CLIENT) == logon.FAILED


def test_a_palm_capture_proves_the_terminal_on_its_way(clock, operator, account_admin):
    deps = fake_deps(clock, mfa={"second_factors": ["vein"]}, devices=REQUIRED)
    station = registered_reader(deps, operator, "STATION-1")
    pc = registered_reader(deps, operator, TERMINAL)
    enrolled_user(deps, operator, account_admin, station)
    state = logon.begin(deps, "yamada", CHOSEN[0], CLIENT)
    made, cap = capture_for(deps, state.token, pc)
    done = logon.vein_step(deps, state.token, made.id, cap.to_dict(), CLIENT)
    assert done.step is lf.Step.DONE  # no terminal step after a palm
    assert sessions.current(deps, done.token).terminal == TERMINAL
    assert [(r["step"], r["terminal"]) for r in sessions.history(deps, "yamada")[:2]] == [
        ("complete", TERMINAL), ("vein", TERMINAL)]
    assert events(deps, "logon.terminal", "yamada") == []


def test_the_first_logon_proves_the_terminal_before_enrolling_a_factor(deps, clock, operator,
                                                                       account_admin, pc):
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password
    state = logon.begin(deps, "alice", initial, CLIENT)
    state = logon.change_password(deps, state.token, CHOSEN[0], CLIENT)
    assert state.step is lf.Step.TERMINAL
    assert logon.totp_enrolment(deps, state.token, CLIENT) is None  # nothing to enrol yet
    challenge_id, proof = proof_for(deps, state.token, pc)
    state = logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT)
    assert (state.step, state.options) == (lf.Step.ENROL, ("totp", "webauthn"))
    made = logon.totp_enrolment(deps, state.token, CLIENT)
    done = logon.totp_step(deps, state.token, pyotp.TOTP(made.secret).at(clock.now()), CLIENT)
    assert sessions.current(deps, done.token).terminal == TERMINAL
    [enrolled] = events(deps, "logon.totp", "alice")
    assert enrolled.terminal == TERMINAL  # every row after the proof names the terminal


def test_the_console_logon_proves_the_terminal_too(deps, clock, operator, pc):
    add_contract(deps, operator)
    secret = totp_user(deps, clock, operator, operator, "sysadm", role="system_admin")
    state = to_terminal_step(deps, clock, secret, "sysadm", surface=CONSOLE)
    assert state.step is lf.Step.TERMINAL
    challenge_id, proof = proof_for(deps, state.token, pc)
    done = logon.terminal_step(deps, state.token, challenge_id, proof, CLIENT)
    view = sessions.current(deps, done.token, CONSOLE)
    assert (view.surface, view.terminal) == (CONSOLE, TERMINAL)
    assert [e.result for e in events(deps, "logon.console.terminal", "sysadm")] == ["ok"]


def test_a_logon_begun_before_the_policy_was_switched_on_cannot_finish(clock, operator, account_admin):
    off = fake_deps(clock)
    add_contract(off, operator)
    secret = totp_user(off, clock, operator, account_admin)
    state = logon.begin(off, "alice", CHOSEN[0], CLIENT)
    on = dataclasses.replace(off, settings=dataclasses.replace(off.settings, devices=Devices(True)))
    assert logon.totp_step(on, state.token, pyotp.TOTP(secret).at(clock.now()), CLIENT) == logon.FAILED
    assert terminal_events(on) == [("refused", "terminal_required", "")]
    assert no_session(on) and logon.pending(on, state.token).failed


def test_with_the_policy_off_nothing_changes(clock, operator, account_admin):
    deps = fake_deps(clock)
    assert deps.settings.devices.require_terminal is False  # the tests' default (conftest)
    add_contract(deps, operator)
    secret = totp_user(deps, clock, operator, account_admin)
    pc = terminal(deps, operator)
    state = logon.begin(deps, "alice", CHOSEN[0], CLIENT)
    assert logon.terminal_challenge(deps, state.token) is None
    done = logon.totp_step(deps, state.token, pyotp.TOTP(secret).at(clock.now()), CLIENT)
    assert done.step is lf.Step.DONE
    assert sessions.current(deps, done.token).terminal == BROWSER
    assert {r["terminal"] for r in sessions.history(deps, "alice")} == {BROWSER}
    # nor is a terminal step reachable afterwards
    proof = pc.reader.prove_terminal(b64d(vein.issue_challenge(deps, "alice").challenge)).to_dict()
    assert logon.terminal_step(deps, done.token, "x", proof, CLIENT) == logon.FAILED
    assert events(deps, "logon.terminal", "alice") == []

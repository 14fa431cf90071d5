"""The logon service (services/logon.py) over the in-memory fakes: the password step, the
lockout, the forced change and a TOTP second factor, with no database and no Redis. The same
rules on the real backends: tests/integration/test_logon.py, test_totp.py."""

from __future__ import annotations

import threading
from dataclasses import replace

import pyotp
import pytest

from adapters.clock import FixedClock
from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import PasswordRejected
from authsvc.services import Deps, accounts, audit, logon, sessions
from authsvc.services.sessions import Client
from authsvc.store.models import AuditEvent, LogonHistory
from tests.conftest import AGENCY, START
from tests.fakes import MemoryDatabase, fake_deps
from tests.integration.support import CHOSEN, active_account, add_contract, events, password_step, pseudonym

FAILED = logon.FAILED
CLIENT = Client("T-01", "10.0.0.5")
N = 3  # failures that lock


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def deps(clock) -> Deps:
    return fake_deps(clock, lockout={"max_failures": N, "lock_minutes": 10, "pending_seconds": 30})


@pytest.fixture
def alice(deps, operator, account_admin) -> str:
    """An approved account 'alice'; returns its initial password."""
    add_contract(deps, operator)
    return active_account(deps, account_admin, operator, "alice").initial_password


def db(deps: Deps) -> MemoryDatabase:
    return deps.uow.db  # type: ignore[attr-defined]


def reasons(deps: Deps, subject: str) -> list[tuple[str, str]]:
    return [(e.result, e.data.get("reason", "")) for e in events(deps, "logon.password", subject)]


def test_the_initial_password_leads_to_the_change(deps, alice):
    state = password_step(deps, "alice", alice, terminal="T-01", source="10.0.0.5")
    assert (state.step, state.user_id) == (lf.Step.CHANGE_PASSWORD, "alice") and state.token
    [ev] = events(deps, "logon.password", "alice")
    assert (ev.result, ev.terminal, ev.source, ev.data["next"]) == (
        "ok", "T-01", "10.0.0.5", "password_change_required")
    [row] = sessions.history(deps, "alice", with_reason=True)
    assert (row["step"], row["result"], row["terminal"]) == ("password", "ok", "T-01")
    assert accounts.show(deps, AGENCY, "alice").first_used_at is not None
    assert deps.counters.peek("alice", deps.clock.now()) == (0, None)  # the attempt was given back
    assert audit.verify(deps).ok


def test_wrong_passwords_lock_after_n_audited_failures(deps, alice):
    deps.sessions.put("old-session", {"user_id": "alice"}, "alice", 3600)
    for n in range(1, N + 1):
        assert password_step(deps, "alice", CHOSEN[0]) == FAILED
        assert accounts.show(deps, AGENCY, "alice").locked is (n == N)
    trail = [(e.action, e.result, e.data.get("failures")) for e in events(deps, subject="alice")
             if e.action in ("logon.password", "account.lock")]
    assert trail == [("logon.password", "failed", 1), ("logon.password", "failed", 2),
                     ("logon.password", "failed", 3), ("account.lock", "ok", 3)]
    assert deps.sessions.get("old-session") is None  # R16: the lock ends the account's sessions
    # locked: the right password is not evaluated, and the answer is the same
    assert password_step(deps, "alice", alice) == FAILED
    assert reasons(deps, "alice")[-1] == ("refused", "locked")
    assert audit.verify(deps).ok


def test_the_lock_lifts_after_its_period(deps, clock, alice):
    for _ in range(N):
        password_step(deps, "alice", CHOSEN[0])
    clock.advance(minutes=10, seconds=-1)
    assert password_step(deps, "alice", alice) == FAILED
    clock.advance(seconds=1)
    assert password_step(deps, "alice", alice).step is lf.Step.CHANGE_PASSWORD
    assert len(events(deps, "account.auto_unlock", "alice")) == 1


def test_an_unknown_id_locks_the_same_way_under_a_pseudonym(deps, alice):
    def attack(user_id: str) -> list[logon.State]:
        return [password_step(deps, user_id, CHOSEN[0]) for _ in range(N + 2)]

    assert attack("alice") == attack("ghost") == [FAILED] * (N + 2)
    ghost = pseudonym(deps, "ghost")
    real = [(e.action, e.result) for e in events(deps, subject="alice")
            if e.action.startswith(("logon", "account.lock"))]
    assert [(e.action, e.result) for e in events(deps, subject=ghost)] == real
    assert [r for _, r in reasons(deps, ghost)] == ["unknown_user"] * N + ["locked"] * 2
    assert deps.counters.peek(ghost, deps.clock.now())[1] is not None
    # the unknown ID itself is kept nowhere: not in the audit log, not in the history
    kept = [*db(deps).rows(AuditEvent), *db(deps).rows(LogonHistory)]
    assert kept and not any("ghost" in repr(vars(r)) for r in kept)
    assert password_step(deps, " Ghost ", CHOSEN[0]) == FAILED  # the lock is the ID's, any case
    assert reasons(deps, ghost)[-1] == ("refused", "locked")


@pytest.mark.parametrize(("user", "look_alike"), [
    ("kelly", "\u212aelly"),    # KELVIN SIGN for K
    ("suzuki", "\u017fuzuki"),  # LATIN SMALL LETTER LONG S for s
    ("alice", "\uff41lice"),    # FULLWIDTH a
    ("alice", "\u0430lice"),    # CYRILLIC a
    ("alice", "alice\u00a0"),   # a trailing NO-BREAK SPACE
])
def test_look_alike_ids_are_unknown(deps, operator, account_admin, user, look_alike):
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, user).initial_password
    assert password_step(deps, look_alike, initial) == FAILED
    assert reasons(deps, pseudonym(deps, look_alike)) == [("failed", "unknown_user")]
    assert deps.counters.peek(user, deps.clock.now()) == (0, None)  # the real ID is untouched
    assert password_step(deps, user, initial).step is lf.Step.CHANGE_PASSWORD


class _DiesWhileHashing:
    """A hasher whose worker dies mid-check: the reservation is never settled."""

    def verify(self, stored: str | None, password: str) -> bool:
        raise SystemExit("worker killed")


def test_a_reservation_never_settled_lapses(deps, clock, alice):
    dying = replace(deps, hasher=_DiesWhileHashing())
    for _ in range(N):
        with pytest.raises(SystemExit):
            password_step(dying, "alice", alice)
    # every remaining attempt is "in flight": refused as busy, and nothing counted
    assert password_step(deps, "alice", alice) == FAILED
    assert reasons(deps, "alice")[-1] == ("refused", "busy")
    assert deps.counters.peek("alice", clock.now()) == (0, None)
    clock.advance(seconds=deps.settings.lockout.pending_seconds - 1)
    assert password_step(deps, "alice", alice) == FAILED
    clock.advance(seconds=1)
    assert password_step(deps, "alice", alice).step is lf.Step.CHANGE_PASSWORD
    assert events(deps, "account.lock") == []


def test_concurrent_wrong_passwords_are_evaluated_at_most_n_times(deps, alice):
    barrier = threading.Barrier(12)
    results: list[logon.State] = []

    def attempt() -> None:
        barrier.wait(timeout=30)
        results.append(password_step(deps, "alice", CHOSEN[0]))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [FAILED] * 12
    assert [r for r in reasons(deps, "alice") if r[0] == "failed"] == [("failed", "wrong_password")] * N
    assert len(events(deps, "account.lock", "alice")) == 1
    assert audit.verify(deps).ok


def test_the_forced_change_then_a_totp_second_factor(deps, clock, alice):
    state = logon.begin(deps, "alice", alice, CLIENT)
    assert state.step is lf.Step.CHANGE_PASSWORD
    with pytest.raises(PasswordRejected):
        logon.change_password(deps, state.token, "short1A!", CLIENT)
    assert logon.pending(deps, state.token).step is lf.Step.CHANGE_PASSWORD  # still there
    state = logon.change_password(deps, state.token, CHOSEN[0], CLIENT)
    assert state.step is lf.Step.ENROL and "totp" in state.options
    # first logon: enrol TOTP, the confirming code finishes it
    made = logon.totp_enrolment(deps, state.token, CLIENT)
    assert made is not None
    assert logon.totp_step(deps, state.token, "000000", CLIENT).retry
    done = logon.totp_step(deps, state.token, pyotp.TOTP(made.secret).at(clock.now()), CLIENT)
    assert done.step is lf.Step.DONE and done.token != state.token
    assert sessions.current(deps, done.token).factors == ("password", "totp")
    # the initial password is gone; the new one leads to the enrolled factor
    assert password_step(deps, "alice", alice) == FAILED
    clock.advance(seconds=30)
    state = logon.begin(deps, "alice", CHOSEN[0], CLIENT)
    assert (state.step, state.options) == (lf.Step.SECOND_FACTOR, ("totp",))
    code = pyotp.TOTP(made.secret).at(clock.now())
    done = logon.totp_step(deps, state.token, code, CLIENT)
    assert done.step is lf.Step.DONE and sessions.current(deps, done.token).user_id == "alice"
    assert deps.counters.peek("alice", clock.now()) == (0, None)  # a completed logon clears it
    # a code is accepted once: the same code on a new logon is refused
    state = logon.begin(deps, "alice", CHOSEN[0], CLIENT)
    assert logon.totp_step(deps, state.token, code, CLIENT).retry
    assert [e.action for e in events(deps, "logon.complete", "alice")] == ["logon.complete"] * 2
    assert audit.verify(deps).ok


def test_wrong_totp_codes_count_toward_the_lock(deps, clock, alice):
    state = logon.begin(deps, "alice", alice, CLIENT)
    state = logon.change_password(deps, state.token, CHOSEN[0], CLIENT)
    logon.totp_enrolment(deps, state.token, CLIENT)
    for _ in range(N - 1):
        assert logon.totp_step(deps, state.token, "000000", CLIENT).retry
    assert logon.totp_step(deps, state.token, "000000", CLIENT) == logon.FAILED
    assert accounts.show(deps, AGENCY, "alice").locked
    assert logon.pending(deps, state.token) == logon.FAILED


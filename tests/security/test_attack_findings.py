"""Holes an attack on the running service found ([5 of 12]), each shut here at the service
layer on the real backends: look-alike identifiers (item 4), one logon finishing twice
(item 5), phantom failures left by an outage (item 6), and the cost of a locked refusal
(item 8, docs/decisions/0005)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pyotp
import pytest
import redis

from authsvc.domain import logon_flow as lf
from authsvc.domain.roles import Actor
from authsvc.services import Deps, accounts, audit, logon, sessions, totp
from authsvc.services.sessions import Client
from tests.conftest import AGENCY
from tests.integration.support import CHOSEN, active_account, add_contract, events, password_step, pseudonym

CLIENT = Client("pc-1", "10.0.0.5", False)


@pytest.fixture
def kato(deps, operator, account_admin) -> str:
    """An active account `kato` whose password is CHOSEN[0] (the forced change done)."""
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "kato").initial_password
    assert password_step(deps, "kato", initial).step is lf.Step.CHANGE_PASSWORD
    from authsvc.services.passwords import change_password
    change_password(deps, Actor("kato"), "kato", CHOSEN[0])
    return CHOSEN[0]


# ---- item 4: identifiers are ASCII; a look-alike is an unknown ID -------------------------

@pytest.mark.parametrize("look_alike", [
    "\u212aato",    # KELVIN SIGN for k: casefold() made it "kato"
    "kato\u00a0",   # a trailing no-break space: strip() removed it
    "\ufeffkato",   # a byte-order mark
    "ｋａｔｏ",      # full-width
    " kato", "kato\t",
])
def test_a_look_alike_with_the_right_password_is_an_unknown_id(deps, kato, look_alike):
    before = events(deps, "logon.password", "kato")
    assert password_step(deps, look_alike, kato) == logon.FAILED
    ghost = pseudonym(deps, look_alike)
    assert [(e.result, e.data["reason"]) for e in events(deps, "logon.password", ghost)] == [
        ("failed", "unknown_user")]
    assert events(deps, "logon.password", "kato") == before  # the real account saw nothing
    assert accounts.show(deps, AGENCY, "kato").failures == 0
    assert password_step(deps, "KATO", kato).step is lf.Step.REGISTER  # ASCII case still folds


def test_a_long_s_look_alike_never_reaches_the_account(deps, operator, account_admin):
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "suzuki").initial_password
    assert password_step(deps, "\u017fuzuki", initial) == logon.FAILED  # LONG S for s
    assert password_step(deps, "suzuki", initial).step is lf.Step.CHANGE_PASSWORD


# ---- item 5: a pending logon's step is a single-use transition ----------------------------

def _at_totp_step(deps: Deps, clock, user: str, password: str) -> tuple[str, str]:
    made = totp.begin_enrolment(deps, Actor(user), user)
    totp.confirm_enrolment(deps, Actor(user), user, pyotp.TOTP(made.secret).at(clock.now()))
    clock.advance(seconds=90)
    state = logon.begin(deps, user, password, CLIENT)
    assert state.options == ("totp",) or "totp" in state.options
    return state.token, made.secret


@pytest.mark.parametrize("shape", ["sqlite", "postgres", "postgres-redis"])
def test_three_valid_codes_at_once_finish_one_logon_once(make_deps, clock, operator, account_admin,
                                                         shape):
    """The previous, current and next window's codes sent at once on one pending logon: one
    session, never two (it was two in one of two runs)."""
    extra = {"sessions": {"backend": "redis"}} if shape.endswith("redis") else {}
    deps = make_deps(shape.split("-")[0], **extra)
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "kato").initial_password
    from authsvc.services.passwords import change_password
    password_step(deps, "kato", initial)
    change_password(deps, Actor("kato"), "kato", CHOSEN[0])
    for _round in range(3):
        token, secret = _at_totp_step(deps, clock, "kato", CHOSEN[0])
        codes = [pyotp.TOTP(secret).at(clock.now(), counter_offset=o) for o in (-1, 0, 1)] * 3
        barrier = threading.Barrier(len(codes))

        def send(code: str, token: str = token, barrier: threading.Barrier = barrier) -> logon.State:
            barrier.wait(timeout=30)
            return logon.totp_step(deps, token, code, CLIENT)

        with ThreadPoolExecutor(max_workers=len(codes)) as pool:
            states = list(pool.map(send, codes))
        done = [s for s in states if s.step is not None and s.step.value == "done"]
        assert len(done) == 1, states
        assert len([e for e in events(deps, "logon.complete", "kato")]) == _round + 1
        assert len([s for s in sessions.sessions_of(deps, "kato")]) == 1  # replace: the newest
        assert sessions.current(deps, token) is None  # the pending logon's token is spent
    assert audit.verify(deps).problem is None or audit.verify(deps).problem.reason == "unanchored"


def test_a_refused_code_leaves_the_logon_where_it_was(deps, clock, kato):
    token, secret = _at_totp_step(deps, clock, "kato", kato)
    state = logon.totp_step(deps, token, "000000", CLIENT)
    assert state.retry and state.token == token
    assert logon.pending(deps, token).step.value == "second_factor"
    state = logon.totp_step(deps, token, pyotp.TOTP(secret).at(clock.now()), CLIENT)
    assert state.step.value == "done"


# ---- item 6: an attempt whose outcome was never decided is no failure ---------------------

class StallingCounters:
    """The real counters, with the step after the evaluation failing the way a stalled Redis
    or a killed worker makes it fail: the reservation is never settled."""

    def __init__(self, real) -> None:
        self._real = real

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def release(self, key: str, attempt: str) -> None:
        raise redis.exceptions.TimeoutError("stalled")


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres", "redis"])
def test_an_outage_leaves_no_phantom_failure_and_every_lock_is_explained(
        make_deps, clock, operator, account_admin, backend_name):
    """An account that only ever sends its correct password is never locked by an outage
    between evaluation and settlement, however often it happens; its audit trail holds only
    successes. (Today's main left 2-3 failures and once a lock with no failure to explain it.)"""
    extra = {"counters": {"backend": "redis"}} if backend_name == "redis" else {}
    deps = make_deps("postgres" if backend_name == "redis" else backend_name, **extra)
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "kato").initial_password
    stalling = replace(deps, counters=StallingCounters(deps.counters))
    n = deps.settings.lockout.max_failures
    for _ in range(3 * n):
        with pytest.raises(redis.exceptions.TimeoutError):
            password_step(stalling, "kato", initial)
        clock.advance(seconds=deps.settings.lockout.pending_seconds)
    kato = accounts.show(deps, AGENCY, "kato")
    assert kato.failures == 0 and not kato.locked
    assert password_step(deps, "kato", initial).step is lf.Step.CHANGE_PASSWORD
    assert {e.result for e in events(deps, "logon.password", "kato")} == {"ok"}
    assert events(deps, "account.lock", "kato") == []


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_every_lock_follows_audited_failures(make_deps, operator, account_admin, backend_name):
    deps = make_deps(backend_name)
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "kato")
    n = deps.settings.lockout.max_failures
    for _ in range(n + 2):
        password_step(deps, "kato", CHOSEN[5])
    trail = [(e.action, e.result) for e in events(deps, subject="kato")
             if e.action in ("logon.password", "account.lock")]
    assert trail == [("logon.password", "failed")] * n + [("account.lock", "ok")] + [
        ("logon.password", "refused")] * 2
    lock = events(deps, "account.lock", "kato")[0]
    assert lock.data["failures"] == n


# ---- item 8: a locked refusal spends no hash (docs/decisions/0005) ------------------------

class CountingHasher:
    def __init__(self, real) -> None:
        self._real = real
        self.verified = 0

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def verify(self, stored, password) -> bool:
        self.verified += 1
        return self._real.verify(stored, password)


def test_a_locked_id_known_or_unknown_is_refused_without_hashing(deps, kato):
    """The decision: a refusal while locked costs no argon2 (a flood on a locked ID is cheap
    to answer), and a known and an unknown ID take the same path -- the fast answer reveals
    the lock state, which an attacker can cause for either, not existence."""
    hasher = CountingHasher(deps.hasher)
    counted = replace(deps, hasher=hasher)
    n = deps.settings.lockout.max_failures
    for user in ("kato", "nobody-here"):
        for _ in range(n):
            password_step(counted, user, CHOSEN[6])
    assert hasher.verified == 2 * n  # every evaluated attempt hashed, known or unknown
    for user in ("kato", "nobody-here"):
        for _ in range(5):
            assert password_step(counted, user, kato) == logon.FAILED
    assert hasher.verified == 2 * n  # refusals while locked hashed nothing, for either
    assert accounts.show(deps, AGENCY, "kato").locked
    deps.clock.advance(minutes=deps.settings.lockout.lock_minutes, seconds=1)
    assert password_step(counted, "kato", kato).step is lf.Step.REGISTER
    assert events(deps, "account.auto_unlock", "kato")


def test_locked_refusals_answer_alike_for_known_and_unknown(deps, kato):
    n = deps.settings.lockout.max_failures
    for user in ("kato", "nobody-here"):
        for _ in range(n + 1):
            assert password_step(deps, user, CHOSEN[6]) == logon.FAILED
    ghost = pseudonym(deps, "nobody-here")
    for subject in ("kato", ghost):
        assert [e.data.get("reason") for e in events(deps, "logon.password", subject)][-1] == "locked"

"""The password step of a logon on the real backends (R1-R5, R9, R22)."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest

from authsvc.bootstrap import build
from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, Forbidden, NotFound, PasswordRejected
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, audit, logon
from authsvc.services.passwords import change_password
from authsvc.store.models import Account, LogonThrottle
from tests.conftest import AGENCY, COMPANY, make_settings
from tests.integration.support import (
    CHOSEN,
    active_account,
    add_contract,
    dump_all,
    events,
    password_step,
    pseudonym,
)

FAILED = logon.FAILED


@pytest.fixture
def alice(deps, operator, account_admin) -> str:
    """An approved account 'alice' (田中 太郎); returns its initial password."""
    add_contract(deps, operator)
    return active_account(deps, account_admin, operator, "alice").initial_password


def stored_hash(deps, user_id: str) -> str | None:
    with deps.uow() as uow:
        acc = uow.account(user_id)
        assert acc is not None
        return acc.password_hash


def reasons(deps, subject: str) -> list[tuple[str, str]]:
    """(result, reason) of every password-step event for a submitted identifier."""
    return [(e.result, e.data.get("reason", "")) for e in events(deps, "logon.password", subject)]


def test_initial_password_leads_to_forced_change(deps, clock, alice):
    state = password_step(deps, "alice", alice, terminal="T-01", source="10.0.0.5")
    assert (state.step, state.user_id) == (lf.Step.CHANGE_PASSWORD, "alice") and state.token
    # R9: usage began, and the logon history names terminal and source
    view = accounts.show(deps, AGENCY, "alice")
    assert view.first_used_at is not None and view.first_used_at.endswith("+09:00")
    [ev] = events(deps, "logon.password", "alice")
    assert (ev.result, ev.terminal, ev.source) == ("ok", "T-01", "10.0.0.5")
    assert ev.data["next"] == "password_change_required"
    # nothing else is reachable: the initial password keeps leading to the change
    clock.advance(minutes=5)
    assert password_step(deps, "alice", alice).step is lf.Step.CHANGE_PASSWORD
    assert accounts.show(deps, AGENCY, "alice").first_used_at == view.first_used_at


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("short1A!", "pw_too_short"),
        ("abcdefghijkl", "pw_classes"),
        ("Xq9abcdWm!", "pw_sequential"),
        ("Xalice-77#Q", "pw_contains_user_id"),
        ("Q9#田中太郎x2Pmw", "pw_contains_name"),  # the person's name, spaces folded away
        ("Password123!", "pw_blocklisted"),
        ("Aa1!Aa1!Aa1!", "pw_repetitive"),
        ("Kq7#\x00mWz2pLx", "pw_control_chars"),
    ],
)
def test_change_password_enforces_the_rule(deps, alice, candidate, expected):
    before = stored_hash(deps, "alice")
    with pytest.raises(PasswordRejected) as err:
        change_password(deps, Actor("alice"), "alice", candidate)
    assert expected in err.value.reasons
    assert err.value.message("en")
    assert stored_hash(deps, "alice") == before
    assert events(deps, "password.change") == []
    assert password_step(deps, "alice", alice).step is lf.Step.CHANGE_PASSWORD
    assert password_step(deps, "alice", candidate) == FAILED


def test_accepted_password_ends_the_forced_change(deps, alice):
    change_password(deps, Actor("alice"), "alice", CHOSEN[3])
    state = password_step(deps, "alice", CHOSEN[3])
    assert (state.step, state.user_id) == (lf.Step.REGISTER, "alice")
    assert password_step(deps, "alice", alice) == FAILED
    assert accounts.show(deps, AGENCY, "alice").must_change_password is False


def test_every_failed_rule_is_listed(deps, alice):
    with pytest.raises(PasswordRejected) as err:
        change_password(deps, Actor("alice"), "alice", "aaaa")
    assert {"pw_too_short", "pw_classes", "pw_repetitive"} <= set(err.value.reasons)


def test_history_refuses_the_last_n_including_the_initial(make_deps, backend, operator,
                                                         account_admin):
    deps = make_deps(backend, password={"history": 3})
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password
    user = Actor("alice")
    assert password_step(deps, "alice", initial).step is lf.Step.CHANGE_PASSWORD

    with pytest.raises(PasswordRejected) as err:
        change_password(deps, user, "alice", initial)
    assert err.value.reasons == ["pw_reused"]
    change_password(deps, user, "alice", CHOSEN[0])
    state = password_step(deps, "alice", CHOSEN[0])
    assert (state.step, state.user_id) == (lf.Step.REGISTER, "alice")
    assert password_step(deps, "alice", initial) == FAILED

    change_password(deps, user, "alice", CHOSEN[1])
    # history 3 = {CHOSEN[1], CHOSEN[0], initial}: all refused, also in full-width form
    for old in (CHOSEN[1], CHOSEN[0], initial, unicodedata.normalize("NFKC", CHOSEN[0]),
                to_fullwidth(CHOSEN[0])):
        with pytest.raises(PasswordRejected) as err:
            change_password(deps, user, "alice", old)
        assert err.value.reasons == ["pw_reused"]
    change_password(deps, user, "alice", CHOSEN[2])
    # the initial password is now the 4th most recent: outside the window of 3
    change_password(deps, user, "alice", initial)
    state = password_step(deps, "alice", initial)
    assert (state.step, state.user_id) == (lf.Step.REGISTER, "alice")
    assert [e.actor for e in events(deps, "password.change", "alice")] == ["alice"] * 4


def to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_full_width_password_is_the_same_password(deps, alice):
    change_password(deps, Actor("alice"), "alice", to_fullwidth(CHOSEN[0]))
    assert password_step(deps, "alice", CHOSEN[0]).step is lf.Step.REGISTER
    assert password_step(deps, "alice", to_fullwidth(CHOSEN[0])).step is lf.Step.REGISTER


def test_every_refusal_looks_the_same(deps, clock, operator, account_admin):
    add_contract(deps, operator)
    add_contract(deps, operator, "C-END", ends_on=clock.now().date() + timedelta(days=3))
    active = active_account(deps, account_admin, operator, "alice").initial_password
    pending = accounts.create_account(deps, account_admin, "bob", "山田 一郎", "C-2026-001",
                                      "user").initial_password
    suspended = active_account(deps, account_admin, operator, "carol").initial_password
    accounts.suspend(deps, account_admin, "carol")
    ending = active_account(deps, account_admin, operator, "dave", contract="C-END")
    assert password_step(deps, "dave", ending.initial_password).step is lf.Step.CHANGE_PASSWORD
    # past the contract's end and its cleanup period; the maintenance job has not run yet
    ends = accounts.show(deps, AGENCY, "dave").access_ends_at
    assert ends is not None
    clock.advance(days=3 + 30)
    assert accounts.show(deps, AGENCY, "dave").status == "active"

    attempts = {
        "alice": (CHOSEN[0], "wrong_password"),
        "bob": (pending, "status_pending"),
        "carol": (suspended, "status_suspended"),
        "dave": (ending.initial_password, "contract_ended"),
        "nobody": (active, "unknown_user"),
    }
    results = {uid: password_step(deps, uid, pw, terminal="T-9") for uid, (pw, _) in attempts.items()}
    assert set(results.values()) == {FAILED}
    assert all(r == FAILED and r.user_id is None and repr(r) == repr(FAILED)
               for r in results.values())
    for uid, (_, reason) in attempts.items():
        subject = pseudonym(deps, uid) if uid == "nobody" else uid  # R2: unknown IDs pseudonymised
        assert reasons(deps, subject)[-1] == ("failed", reason), uid
    assert reasons(deps, "nobody") == []


def test_lockout_and_operator_unlock(make_deps, backend, operator, account_admin):
    deps = make_deps(backend, lockout={"max_failures": 3, "lock_minutes": 10})
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password
    # a correct password gives back its own attempt but forgives nothing earlier: only a
    # completed multi-factor logon (or an operator) clears the count
    for _ in range(2):
        assert password_step(deps, "alice", CHOSEN[0]) == FAILED
    assert password_step(deps, "alice", initial).step is lf.Step.CHANGE_PASSWORD
    assert accounts.show(deps, AGENCY, "alice").failures == 2
    deps.counters.succeed("alice")  # what a completed logon does
    assert accounts.show(deps, AGENCY, "alice").failures == 0

    for _ in range(3):
        assert password_step(deps, "alice", CHOSEN[0]) == FAILED
    view = accounts.show(deps, AGENCY, "alice")
    assert view.locked and view.failures == 3
    [lock] = events(deps, "account.lock", "alice")
    assert lock.data["failures"] == 3
    # locked: the right password is not even evaluated, and the answer is the same
    assert password_step(deps, "alice", initial) == FAILED
    assert reasons(deps, "alice")[-1] == ("refused", "locked")

    unlocked = accounts.unlock(deps, account_admin, "alice")
    assert not unlocked.locked and unlocked.failures == 0
    [ev] = events(deps, "account.unlock", "alice")
    assert ev.actor == account_admin.id
    assert ev.data == {"was_locked": True, "failures": 3}
    assert password_step(deps, "alice", initial).step is lf.Step.CHANGE_PASSWORD


def test_lock_lifts_by_itself_after_the_period(make_deps, backend, clock, operator,
                                              account_admin):
    deps = make_deps(backend, lockout={"max_failures": 3, "lock_minutes": 10})
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password
    for _ in range(3):
        password_step(deps, "alice", CHOSEN[0])
    clock.advance(minutes=10, seconds=-1)
    assert password_step(deps, "alice", initial) == FAILED
    assert events(deps, "account.auto_unlock") == []
    clock.advance(seconds=1)
    assert not accounts.show(deps, AGENCY, "alice").locked
    assert password_step(deps, "alice", initial).step is lf.Step.CHANGE_PASSWORD
    [auto] = events(deps, "account.auto_unlock", "alice")
    assert auto.seq < events(deps, "logon.password", "alice")[-1].seq
    # after the lapse the count starts afresh: max_failures more tries before the next lock
    for _ in range(2):
        password_step(deps, "alice", CHOSEN[0])
    assert not accounts.show(deps, AGENCY, "alice").locked
    password_step(deps, "alice", CHOSEN[0])
    assert accounts.show(deps, AGENCY, "alice").locked
    assert len(events(deps, "account.lock", "alice")) == 2


def test_unknown_identifier_locks_like_a_real_one(make_deps, backend, operator, account_admin):
    deps = make_deps(backend, lockout={"max_failures": 3, "lock_minutes": 10})
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password

    def attack(user_id: str) -> list[logon.State]:
        return [password_step(deps, user_id, CHOSEN[0]) for _ in range(5)]

    assert attack("alice") == attack("ghost") == [FAILED] * 5
    ghost = pseudonym(deps, "ghost")
    real = [(e.action, e.result) for e in events(deps, subject="alice")
            if e.action.startswith(("logon", "account.lock"))]
    fake = [(e.action, e.result) for e in events(deps, subject=ghost)]
    assert real == fake
    assert [r for _, r in reasons(deps, ghost)] == ["unknown_user"] * 3 + ["locked"] * 2
    assert {e.actor for e in events(deps, subject=ghost)} == {ghost}
    with deps.uow() as uow:
        row = uow.session.get(LogonThrottle, ghost)
        assert row is not None and row.locked_until is not None
        assert uow.session.get(LogonThrottle, "ghost") is None
    # the unknown ID itself is kept nowhere: neither as throttle key nor as audit subject/actor
    assert "ghost" not in dump_all(deps)
    # the lock belongs to the submitted identifier, in any letter case
    assert password_step(deps, "ALICE", initial) == FAILED
    assert reasons(deps, "alice")[-1] == ("refused", "locked")
    assert password_step(deps, " Ghost ", CHOSEN[0]) == FAILED
    assert reasons(deps, ghost)[-1] == ("refused", "locked")


def test_an_unknown_identifier_that_is_later_assigned_gets_its_own_count(
    make_deps, backend, operator, account_admin
):
    """Failures counted under the pseudonym of a not-yet-assigned ID do not lock the account
    that later takes it; from then on attempts count (and are audited) under the plain ID."""
    deps = make_deps(backend, lockout={"max_failures": 3, "lock_minutes": 10})
    add_contract(deps, operator)
    for _ in range(3):
        assert password_step(deps, "Newbie", CHOSEN[0]) == FAILED
    early = pseudonym(deps, "newbie")
    assert [r for _, r in reasons(deps, early)] == ["unknown_user"] * 3
    initial = active_account(deps, account_admin, operator, "newbie").initial_password
    newbie = accounts.show(deps, AGENCY, "newbie")
    assert newbie.failures == 0 and not newbie.locked
    assert password_step(deps, "Newbie", CHOSEN[0]) == FAILED
    assert reasons(deps, "newbie") == [("failed", "wrong_password")]
    assert accounts.show(deps, AGENCY, "newbie").failures == 1
    assert password_step(deps, "newbie", initial).step is lf.Step.CHANGE_PASSWORD
    assert len(reasons(deps, early)) == 3  # nothing more recorded under the pseudonym


def test_operator_finds_attempts_on_an_unknown_identifier(deps, operator, account_admin):
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "alice")
    password_step(deps, "NoSuchUser", CHOSEN[0], terminal="T-7", source="10.9.9.9")
    password_step(deps, "nosuchuser", CHOSEN[1], terminal="T-7", source="10.9.9.9")
    password_step(deps, "alice", CHOSEN[0])
    password_step(deps, "someone-else", CHOSEN[0])

    # the agency operator asks about any identifier, known or not (R24: an unknown ID is of no
    # company, so only the agency reads its attempts)
    found = audit.events(deps, operator, subject="NoSuchUser")
    assert [(e["action"], e["result"]) for e in found] == [("logon.password", "failed")] * 2
    assert {e["subject"] for e in found} == {pseudonym(deps, "nosuchuser")}
    assert all(e["subject"] != "nosuchuser" and e["terminal"] == "T-7" for e in found)
    assert found[0]["seq"] > found[1]["seq"]  # newest first
    assert audit.events(deps, operator, subject="  NOSUCHUSER ") == found
    assert audit.events(deps, operator, subject="NoSuchUser", limit=1) == found[:1]
    # a known identifier is found as itself; an ID never tried, nowhere
    assert {e["action"] for e in audit.events(deps, operator, subject="alice")} \
        >= {"account.create", "identifier.approve", "logon.password"}
    assert audit.events(deps, operator, subject="NoSuchUser2") == []
    everything = audit.events(deps, operator, limit=10_000)
    assert len(everything) > len(found) and "nosuchuser" not in repr(everything).casefold()
    assert "nosuchuser" not in dump_all(deps).casefold()  # in no table, in clear

    # a company's staff member reads the log of their company's accounts only: alice's, not
    # an unknown ID's (answered as an unknown account) nor the whole log
    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)
    assert {e["action"] for e in audit.events(deps, staff, subject="alice")} \
        >= {"account.create", "identifier.approve", "logon.password"}
    with pytest.raises(NotFound) as err:
        audit.events(deps, staff, subject="NoSuchUser")
    assert err.value.code == "account_not_found"
    with pytest.raises(Forbidden) as err:
        audit.events(deps, staff)
    assert err.value.code == "audit_subject_required"
    # ... and the refusal of that query, audited (and alerted), does not put the unknown ID in
    # clear in the log, nor in any other table
    everything = audit.events(deps, operator, limit=10_000)
    assert "nosuchuser" not in repr(everything).casefold()
    assert "nosuchuser" not in dump_all(deps).casefold()

    for role in (Role.USER, Role.DATA_MANAGER, Role.ACCOUNT_ADMIN):
        with pytest.raises(Forbidden):
            audit.events(deps, Actor("reader", frozenset({role})), subject="NoSuchUser")
    with pytest.raises(Forbidden):
        audit.events(deps, Actor("nobody-in-particular"))


def test_unlock_of_unknown_account_is_refused(deps, account_admin):
    with pytest.raises(NotFound):
        accounts.unlock(deps, account_admin, "ghost")


def test_oversized_and_odd_identifiers_fail_generically(deps, alice):
    for uid in ("x" * 10_000, "", "../alice", "alice\x00", " alice' --", "ａｌｉｃｅ"):
        assert password_step(deps, uid, alice) == FAILED
    with deps.uow() as uow:
        assert all(len(e.subject) <= 100 for e in uow.audit_events(limit=10_000))


def test_argon2_parameters_change_rehashes_on_next_logon(deps, clock, alice):
    user = Actor("alice")
    change_password(deps, user, "alice", CHOSEN[0])
    old = stored_hash(deps, "alice")
    assert old is not None and not deps.hasher.needs_rehash(old)

    a = deps.settings.argon2
    stronger = {"time_cost": a.time_cost + 1, "memory_cost_kib": a.memory_cost_kib * 2}
    deps2 = build(make_settings(deps.settings.paths.instance_dir, deps.settings.database.url,
                                argon2=stronger), clock=clock)
    try:
        assert deps2.hasher.needs_rehash(old)
        # a failed logon does not touch the hash
        assert password_step(deps2, "alice", CHOSEN[1]) == FAILED
        assert stored_hash(deps2, "alice") == old
        state = password_step(deps2, "alice", CHOSEN[0])
        assert (state.step, state.user_id) == (lf.Step.REGISTER, "alice")
        new = stored_hash(deps2, "alice")
        assert new != old and new is not None
        assert not deps2.hasher.needs_rehash(new)
        assert f"t={stronger['time_cost']}" in new and f"m={stronger['memory_cost_kib']}" in new
        # the upgraded hash still verifies, through either configuration
        assert password_step(deps2, "alice", CHOSEN[0]).step is lf.Step.REGISTER
        assert stored_hash(deps2, "alice") == new
        assert password_step(deps, "alice", CHOSEN[0]).step is lf.Step.REGISTER
    finally:
        deps2.engine.dispose()


def test_change_password_refused_for_inactive_accounts(deps, account_admin, alice):
    accounts.suspend(deps, account_admin, "alice")
    with pytest.raises(DomainError):
        change_password(deps, Actor("alice"), "alice", CHOSEN[0])
    with deps.uow() as uow:
        acc = uow.session.query(Account).filter_by(user_id="alice").one()
        assert acc.must_change_password is True


def test_contract_end_in_the_past_refuses(deps, clock, operator, account_admin):
    today = clock.now().date()
    add_contract(deps, operator, "C-OLD", starts_on=date(2025, 1, 6), ends_on=today)
    initial = active_account(deps, account_admin, operator, "olduser",
                             contract="C-OLD").initial_password
    assert password_step(deps, "olduser", initial).step is lf.Step.CHANGE_PASSWORD
    clock.advance(days=60)
    assert password_step(deps, "olduser", initial) == FAILED
    assert reasons(deps, "olduser")[-1] == ("failed", "contract_ended")

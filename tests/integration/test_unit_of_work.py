"""The unit of work's contract: the same cases on the in-memory fake (tests/fakes.py), SQLite
and PostgreSQL, so a service test over `fake_deps()` means what it would over SQL."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pyotp
import pytest

from authsvc.domain import audit as chain
from authsvc.domain.roles import Actor
from authsvc.services import Deps, accounts, audit, totp
from authsvc.store.models import Contract
from tests.fakes import fake_deps
from tests.integration.support import active_account, add_contract


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, make_deps, clock) -> Deps:
    if request.param == "memory":
        return fake_deps(clock)
    return make_deps(request.param)


@pytest.fixture
def alice(store, operator, account_admin) -> str:
    add_contract(store, operator)
    return active_account(store, account_admin, operator, "Alice").initial_password


def test_what_the_services_create_reads_back(store, clock, operator, account_admin, alice):
    add_contract(store, operator, "C-2026-002", "別会社", ends_on=date(2026, 12, 31))
    with store.uow(read_only=True) as uow:
        alice_acc = uow.account("alice")
        person_id = alice_acc.person_id
    accounts.create_account(store, account_admin, "bob", "田中 太郎", "C-2026-002", "user",
                            person_id=person_id)
    with store.uow(read_only=True) as uow:
        con = uow.contract("C-2026-002")
        assert (con.company, con.starts_on, con.ends_on) == ("別会社", clock.now().date(), date(2026, 12, 31))
        assert [c.number for c in uow.contracts()] == ["C-2026-001", "C-2026-002"]
        ident, acc = uow.holder("alice")
        assert (ident.value, ident.kind, ident.holder_id) == ("alice", "account", acc.id)
        assert (ident.assigned_by, ident.approved_by) == ("acctadm", "ops1")
        assert (acc.user_id, acc.status, acc.role) == ("Alice", "active", "user")
        assert acc.must_change_password is True
        assert (acc.person.name, acc.contract.number) == ("田中 太郎", "C-2026-001")
        assert acc.created_at == clock.now()
        assert uow.account("alice").id == uow.account_for_update(acc.id).id == acc.id
        assert uow.person(person_id).name == "田中 太郎"
        assert sorted(a.user_id for a in uow.accounts_of_person(person_id)) == ["Alice", "bob"]
        assert [a.user_id for a in uow.accounts()] == ["Alice", "bob"]
        assert [a.user_id for a in uow.accounts(status="pending")] == ["bob"]
        assert [a.user_id for a in uow.accounts(contract="C-2026-001", role="user")] == ["Alice"]
        assert uow.accounts(role="system_admin") == []
        assert uow.count_accounts() == 2
        [initial] = uow.password_history(acc.id, 5)
        assert initial.hash == acc.password_hash and store.hasher.verify(initial.hash, alice)


def test_unknown_and_released_identifiers(store, operator, account_admin, alice):
    accounts.delete(store, account_admin, "alice")
    with store.uow(read_only=True) as uow:
        assert uow.holder("nobody") == (None, None)
        assert uow.account("nobody") is None and uow.identifier("nobody") is None
        ident, acc = uow.holder("alice")
        assert ident is not None and ident.holder_id is None and ident.released_at is not None
        assert acc is None and uow.account("alice") is None
        assert uow.count_accounts() == 1  # the deleted account's row stays


def test_a_claimed_identifier_cannot_be_claimed_again(store, account_admin, alice):
    from authsvc.store.models import Identifier

    now = store.clock.now()
    with store.uow() as uow:
        assert not uow.identifiers.claim(Identifier(value="alice", kind="account", holder_id=None,
                                                    assigned_by="x", assigned_at=now))
        assert uow.identifiers.claim(Identifier(value="carol", kind="account", holder_id=None,
                                                assigned_by="x", assigned_at=now))
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert uow.identifier("carol").assigned_by == "x"
        assert uow.identifier("alice").assigned_by == "acctadm"


def test_uncommitted_changes_vanish(store, operator, alice):
    now = store.clock.now()
    with store.uow(read_only=True) as uow:
        head = uow.audit_head()
        before = (head.seq, head.hash)
    with store.uow() as uow:
        uow.add(Contract(number="C-GONE", company="x", starts_on=now.date(), ends_on=None, created_at=now))
        uow.account("alice", lock=True).status = "suspended"
        uow.put_challenge("test", "alice", {"a": 1}, now + timedelta(minutes=1))
        uow.record_logon(now, "alice", "password", "ok", operator)
        uow.audit(now, operator, "test.uncommitted", "alice")
        assert uow.contract("C-GONE") is not None  # visible inside its own transaction
    with store.uow(read_only=True) as uow:
        assert uow.contract("C-GONE") is None
        assert uow.account("alice").status == "active"
        assert uow.logon_history("alice") == []
        head = uow.audit_head()
        assert (head.seq, head.hash) == before
        assert [e.action for e in uow.audit_events(["alice"])] == ["identifier.approve", "account.create"]
    assert audit.verify(store).ok


def test_a_commit_covers_what_came_before_it_only(store, alice):
    with store.uow() as uow:
        acc = uow.account("alice", lock=True)
        acc.role = "account_admin"
        uow.commit()
        acc.role = "system_admin"  # after the commit, and never committed
    with store.uow(read_only=True) as uow:
        assert uow.account("alice").role == "account_admin"


def test_the_audit_chain_verifies_and_reads_back(store, operator, account_admin, alice):
    accounts.suspend(store, account_admin, "alice", reason="leave")
    accounts.resume(store, account_admin, "alice")
    result = audit.verify(store)
    assert result.ok, result.problem
    with store.uow(read_only=True) as uow:
        rows = list(uow.audit_rows(batch=2))
        head = uow.audit_head()
        assert [r["seq"] for r in rows] == list(range(1, head.seq + 1)) and head.seq == 5
        assert [r["action"] for r in rows] == ["contract.create", "account.create", "identifier.approve",
                                               "account.suspend", "account.resume"]
        prev = chain.GENESIS
        for r in rows:
            assert r["prev_hash"] == prev and r["hash"] == chain.chain_hash(prev, r)
            assert r["mac"] == chain.sign_row(store.audit_key, r["seq"], r["hash"])
            prev = r["hash"]
        assert (head.hash, head.mac) == (prev, chain.sign_head(store.audit_key, head.seq, prev))
        newest = uow.audit_events(["ALICE"], limit=2)  # subjects match case-insensitively
        assert [e.action for e in newest] == ["account.resume", "account.suspend"]
        assert newest[1].actor == "acctadm" and '"reason": "leave"' in newest[1].detail
        assert [e.seq for e in uow.audit_events()] == [5, 4, 3, 2, 1]


def test_writers_are_serialised(store, operator, alice):
    """Concurrent transactions that each extend the chain after a pause (a window for another
    writer to interleave): none is lost, the chain holds."""
    barrier = threading.Barrier(6)

    def write(n: int) -> None:
        barrier.wait(timeout=30)
        with store.uow() as uow:
            time.sleep(0.01)
            uow.audit(store.clock.now(), operator, "test.concurrent", f"w{n}")
            uow.commit()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with store.uow(read_only=True) as uow:
        assert uow.audit_head().seq == 3 + 6
        assert sorted(e.subject for e in uow.audit_events() if e.action == "test.concurrent") == [
            f"w{n}" for n in range(6)]
    assert audit.verify(store).ok


def test_a_challenge_is_taken_once(store):
    now = store.clock.now()
    with store.uow() as uow:
        cid = uow.put_challenge("webauthn", "alice", {"n": 1}, now + timedelta(minutes=2))
        other = uow.put_challenge("webauthn", "alice", {"n": 2}, now + timedelta(minutes=2))
        uow.commit()
    with store.uow() as uow:
        assert uow.take_challenge(cid, "webauthn", "alice", now) == {"n": 1}
        assert uow.take_challenge(cid, "webauthn", "alice", now) is None
        assert uow.take_challenge(other, "webauthn", "bob", now) is None  # wrong subject: spent too
        assert uow.take_challenge(other, "webauthn", "alice", now) is None
        assert uow.take_challenge("x" * 65, "webauthn", "alice", now) is None
        uow.commit()


def test_a_challenge_expires(store):
    now = store.clock.now()
    with store.uow() as uow:
        cid = uow.put_challenge("vein", "alice", {}, now + timedelta(seconds=60))
        uow.commit()
    with store.uow() as uow:
        assert uow.take_challenge(cid, "vein", "alice", now + timedelta(seconds=60)) is None
        uow.commit()


def test_logon_history_is_newest_first_per_subject(store, clock):
    client = Actor("alice", terminal="T-1" * 60, source="10.0.0.1")
    with store.uow() as uow:
        for n in range(4):
            uow.record_logon(clock.now() + timedelta(seconds=n), "alice", "password",
                             "failed" if n % 2 else "ok", client, reason=f"r{n}", remote=n == 3)
        uow.record_logon(clock.now(), "bob", "password", "ok", client)
        uow.commit()
    with store.uow(read_only=True) as uow:
        rows = uow.logon_history("alice", limit=3)
        assert [r.reason for r in rows] == ["r3", "r2", "r1"]
        assert [r.at for r in rows] == [clock.now() + timedelta(seconds=n) for n in (3, 2, 1)]
        assert (rows[0].result, rows[0].remote, len(rows[0].terminal)) == ("failed", True, 100)
        assert [r.subject for r in uow.logon_history("bob")] == ["bob"]


def test_enrolled_factors_follow_a_confirmed_totp(store, clock, alice):
    from authsvc.services.passwords import change_password

    change_password(store, Actor("alice"), "alice", "Kx7#vQm2pLz9")
    with store.uow(read_only=True) as uow:
        acc = uow.account("alice")
        ids = (acc.id, acc.person_id)
        assert uow.enrolled_factors(*ids) == ()
    made = totp.begin_enrolment(store, Actor("alice"), "alice")
    with store.uow(read_only=True) as uow:
        assert uow.enrolled_factors(*ids) == ()  # pending is not enrolled
    totp.confirm_enrolment(store, Actor("alice"), "alice", pyotp.TOTP(made.secret).at(clock.now()))
    with store.uow(read_only=True) as uow:
        assert uow.enrolled_factors(*ids) == ("totp",)
    clock.advance(seconds=30)
    code = pyotp.TOTP(made.secret).at(clock.now())
    assert totp.verify(store, "alice", code)
    assert not totp.verify(store, "alice", code)  # each step is accepted once

"""The unit of work's contract and its repositories' (store/devices.py, biometrics.py,
registrations.py, credentials.py): the same cases on the in-memory fake (tests/fakes.py),
SQLite and PostgreSQL, so a service test over `fake_deps()` means what it would over SQL."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError

from adapters.vein import Capture, VeinReader, open_reader, replay
from authsvc.domain import audit as chain
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, audit, devices, registration, totp, vein
from authsvc.services import webauthn as wa
from authsvc.services.passwords import change_password
from authsvc.store.models import (
    Consent,
    Contract,
    Device,
    Group,
    RegistrationSession,
    TotpCredential,
    VeinEnrolment,
    WebauthnCredential,
)
from tests.fakes import fake_deps
from tests.integration.support import CHOSEN, active_account, add_contract, events
from tests.webauthn_soft import SoftAuthenticator


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
    # the one person on a second company's contract: linked by the agency (R7, R24)
    accounts.create_account(store, operator, "bob", "田中 太郎", "C-2026-002", "user",
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
    audit.seal(store)  # PostgreSQL: the fixture's events are in the chain
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
    audit.seal(store)
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


# ---- the repositories (store/devices.py, biometrics.py, registrations.py, credentials.py) ------
# The same cases again, driven through the services where they can be and read back through
# the repositories.

COMPANY = "防衛産業株式会社"
OTHER_COMPANY = "別会社株式会社"
STAFF = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-1", company=COMPANY)
ADMIN = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="CONSOLE-S", company=COMPANY)
OTHER_ACCOUNT_ADMIN = Actor("acctadm-x", frozenset({Role.ACCOUNT_ADMIN}), company=OTHER_COMPANY)
JPEG = b"\xff\xd8\xff\xe0" + b"ID-IMAGE" * 50 + b"\xff\xd9"
REFUSED_BY_THE_STORE = (IntegrityError, RuntimeError)  # SQL's unique index, the fake's check


@pytest.fixture
def people(store, operator, account_admin) -> Deps:
    """Contracts of two companies; yamada, tanaka and the administrator sato (one company),
    kato (the other); every password changed, so registration sessions may open."""
    add_contract(store, operator)
    add_contract(store, operator, "C-2026-900", OTHER_COMPANY)
    for user_id, name, contract, role in (
            ("yamada", "山田 花子", "C-2026-001", "user"), ("tanaka", "田中 太郎", "C-2026-001", "user"),
            ("sato", "佐藤 一郎", "C-2026-001", "system_admin"),
            ("kato", "加藤 六郎", "C-2026-900", "user")):
        creator = account_admin if contract == "C-2026-001" else OTHER_ACCOUNT_ADMIN  # each its own
        active_account(store, creator, operator, user_id, name=name, contract=contract, role=role)
        change_password(store, Actor(user_id), user_id, CHOSEN[0])
    return store


def ids_of(store: Deps, user_id: str) -> tuple[int, int]:
    """(account id, person id)."""
    with store.uow(read_only=True) as uow:
        acc = uow.account(user_id)
        return acc.id, acc.person_id


def new_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def reader(store, operator) -> Iterator[VeinReader]:
    """The emulated reader of a registered terminal (TERMINAL-1)."""
    found = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="TERMINAL-1",
                        clock=store.clock)
    devices.register(store, operator, "TERMINAL-1",
                     base64.urlsafe_b64encode(found.public_key_bytes()).decode())
    yield found
    found.close()


def palm(reader: VeinReader, n: int, purpose: str = "enrol") -> Callable[[bytes], Capture]:
    def capture(challenge: bytes) -> Capture:
        reader.control.present(n, quality=90)
        return reader.capture(purpose, challenge)
    return capture


def test_devices_read_back_by_identifier_key_and_in_device_id_order(store, operator, account_admin):
    add_contract(store, operator)
    add_contract(store, operator, "C-2026-002", COMPANY)  # the same company twice
    add_contract(store, operator, "C-2026-900", OTHER_COMPANY)
    active_account(store, account_admin, operator, "alice")
    keys = {}
    # IDs as assigned: '-' sorts before digits, capitals before small letters (byte order)
    for device_id in ("t-0", "TERM-B", "T10", "Term-A", "T-2"):
        keys[device_id] = new_key()
        devices.register(store, operator, device_id, keys[device_id], company=COMPANY)
    devices.change(store, operator, "T10", "suspend", "点検")
    devices.change(store, operator, "T-2", "revoke", "紛失")
    t10 = devices.key_fingerprint(devices.parse_public_key(keys["T10"]))
    t2 = devices.key_fingerprint(devices.parse_public_key(keys["T-2"]))
    with store.uow(read_only=True) as uow:
        assert [d.device_id for d in uow.devices.all()] == ["T-2", "T10", "TERM-B", "Term-A", "t-0"]
        found = uow.devices.by_identifier("term-b")
        assert (found.device_id, found.status, found.company, found.kind) == (
            "TERM-B", "active", COMPANY, "terminal")
        assert found.public_key == devices.parse_public_key(keys["TERM-B"])
        assert uow.devices.by_identifier("t10").status == "suspended"
        assert uow.devices.by_identifier("t-2") is None  # revoked: the identifier is released
        assert uow.devices.by_identifier("alice") is None  # an account's identifier
        assert uow.devices.by_identifier("nothing") is None
        assert uow.devices.key_holder(t10) == ("T10", "suspended")
        assert uow.devices.key_holder(t2) == ("T-2", "revoked")  # the row keeps its key
        assert uow.devices.key_holder("0" * 64) is None
        assert sorted(uow.devices.known_companies()) == sorted([COMPANY, OTHER_COMPANY])


def test_a_device_with_a_registered_key_is_not_added_and_the_transaction_goes_on(store, operator):
    devices.register(store, operator, "TERM-1", key := new_key())
    fingerprint = devices.key_fingerprint(devices.parse_public_key(key))
    now = store.clock.now()

    def device(device_id: str, fp: str) -> Device:
        return Device(device_id=device_id, kind="terminal", public_key=b"\x01" * 32, key_fingerprint=fp,
                      company=None, description="", status="active", registered_by="ops1",
                      registered_at=now, status_changed_at=now)

    with store.uow() as uow:
        assert uow.devices.add(device("TERM-2", fingerprint)) is False
        fresh = device("TERM-3", "f" * 64)
        assert uow.devices.add(fresh) is True and fresh.id is not None
        uow.audit(now, operator, "test.after_refusal", "TERM-2")
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert [(d.device_id, d.key_fingerprint) for d in uow.devices.all()] == [
            ("TERM-1", fingerprint), ("TERM-3", "f" * 64)]
    assert [e.action for e in events(store, subject="TERM-2")] == ["test.after_refusal"]


def test_an_enrolment_reads_back_and_counts_failures(store, clock, people, reader):
    yamada, tanaka = ids_of(store, "yamada"), ids_of(store, "tanaka")
    vein.enrol(store, STAFF, "yamada", reader, palm(reader, 42))
    clock.advance(minutes=1)
    vein.enrol(store, STAFF, "tanaka", reader, palm(reader, 7))
    with store.uow(read_only=True) as uow:
        row = uow.biometrics.enrolment_of(yamada[1])
        assert (row.person_id, row.reader_id, row.enrolled_by) == (yamada[1], "TERMINAL-1", "staff1")
        assert row.enrolled_at == clock.now() - timedelta(minutes=1)
        assert (row.consecutive_failures, row.total_failures, row.disabled_at, row.delay_until) == (
            0, 0, None, None)
        assert len(row.seen_samples) == 1 + replay.RECORD * 3
        assert store.sealer.open(row.template, f"vein:{yamada[1]}".encode())
        other = uow.biometrics.enrolment_of(tanaka[1])
        assert uow.biometrics.other_templates(yamada[1]) == {tanaka[1]: other.template}
        assert uow.biometrics.other_templates(-1) == {yamada[1]: row.template, tanaka[1]: other.template}
        assert uow.biometrics.is_enrolled(yamada[1]) and uow.registrations.person_enrolled(yamada[1])
        assert uow.enrolled_factors(*yamada) == ("vein",)
        kato = ids_of(store, "kato")
        assert uow.biometrics.enrolment_of(kato[1]) is None
        assert not uow.biometrics.is_enrolled(kato[1]) and not uow.registrations.person_enrolled(kato[1])
        assert uow.enrolled_factors(*kato) == ()
    # a wrong palm counts on the row; a spent challenge is refused before any matching
    made = vein.issue_challenge(store, "yamada")
    wrong = palm(reader, 7, "verify")(base64.urlsafe_b64decode(made.challenge + "=="))
    assert vein.verify(store, "yamada", made.id, wrong.to_dict(), Actor("yamada")) is False
    assert vein.verify(store, "yamada", made.id, wrong.to_dict(), Actor("yamada")) is False
    made = vein.issue_challenge(store, "yamada")
    right = palm(reader, 42, "verify")(base64.urlsafe_b64decode(made.challenge + "=="))
    with store.uow(read_only=True) as uow:
        row = uow.biometrics.enrolment_of(yamada[1])
        assert (row.consecutive_failures, row.total_failures) == (1, 1)
        assert len(row.seen_samples) == 1 + replay.RECORD * 4
    assert vein.verify(store, "yamada", made.id, right.to_dict(), Actor("yamada")) is True
    with store.uow() as uow:
        row = uow.biometrics.enrolment_of(yamada[1], lock=True)
        assert (row.consecutive_failures, row.total_failures) == (0, 1)
        row.disabled_at = clock.now()  # a row changed through the repository is kept at commit
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert uow.enrolled_factors(*yamada) == ()  # disabled: no longer a factor ...
        assert uow.biometrics.is_enrolled(yamada[1])  # ... but still enrolled
        assert uow.biometrics.enrolment_of(yamada[1]).disabled_at == clock.now()


def test_the_unique_columns_refuse_a_second_row(store, clock, people, reader):
    vein.enrol(store, STAFF, "yamada", reader, palm(reader, 42))
    registration.record_consent(store, ADMIN, "tanaka", True)
    account_id, person_id = ids_of(store, "tanaka")
    now = clock.now()
    second_rows = [
        VeinEnrolment(person_id=ids_of(store, "yamada")[1], template="x", reader_id="r",
                      enrolled_by="w", enrolled_at=now),
        Consent(account_id=account_id, given=False, recorded_by="x", recorded_at=now),
    ]
    for row in second_rows:
        with store.uow() as uow, pytest.raises(REFUSED_BY_THE_STORE):
            uow.add(row)
    with store.uow() as uow:
        uow.credentials.save_totp(TotpCredential(account_id=account_id, secret="s", created_at=now))
        uow.commit()
    with store.uow() as uow, pytest.raises(REFUSED_BY_THE_STORE):
        uow.credentials.save_totp(TotpCredential(account_id=account_id, secret="t", created_at=now))
    with store.uow(read_only=True) as uow:
        assert uow.credentials.totp_of(account_id).secret == "s"
        assert uow.registrations.consent_of(account_id).given is True
        assert uow.biometrics.enrolment_of(person_id) is None


def test_uncommitted_repository_writes_vanish(store, clock, people):
    account_id, person_id = ids_of(store, "tanaka")
    now = clock.now()
    with store.uow() as uow:
        assert uow.devices.add(Device(
            device_id="GONE", kind="terminal", public_key=b"k", key_fingerprint="9" * 64, company=None,
            description="", status="active", registered_by="x", registered_at=now, status_changed_at=now))
        assert uow.credentials.add_webauthn(WebauthnCredential(
            account_id=account_id, credential_id=b"gone", credential_data=b"", name="n", created_at=now))
        uow.registrations.add_session(RegistrationSession(
            id="gone", account_id=account_id, person_id=person_id, registrant="tanaka", company=COMPANY,
            state="waiting", terminal="T", opened_at=now, last_activity_at=now))
        uow.add(VeinEnrolment(person_id=person_id, template="x", reader_id="r", enrolled_by="w",
                              enrolled_at=now))
        assert uow.enrolled_factors(account_id, person_id) == ("vein", "webauthn")
    with store.uow(read_only=True) as uow:
        assert uow.devices.all() == [] and uow.devices.key_holder("9" * 64) is None
        assert uow.credentials.webauthn_of(account_id) == []
        assert uow.registrations.get("gone") is None and uow.registrations.recent(10) == []
        assert uow.biometrics.enrolment_of(person_id) is None
        assert uow.enrolled_factors(account_id, person_id) == ()


def test_registration_sessions_filter_and_order_alike(store, clock, people):
    t0 = clock.now()
    accounts = {u: ids_of(store, u) for u in ("yamada", "tanaka", "kato")}

    def row(sid: str, user: str, state: str, minutes: int, company: str = COMPANY,
            registrant: str | None = None) -> RegistrationSession:
        at = t0 + timedelta(minutes=minutes)
        return RegistrationSession(id=sid, account_id=accounts[user][0], person_id=accounts[user][1],
                                   registrant=registrant or user, company=company, state=state,
                                   terminal="T", opened_at=at, last_activity_at=at)

    with store.uow() as uow:
        for r in (row("s-new-wait", "tanaka", "waiting", 2), row("s-old-wait", "yamada", "waiting", 0),
                  row("s-mid-join", "yamada", "joined", 1, registrant="YAMADA"),
                  row("s-closed", "yamada", "closed", 3), row("s-other", "kato", "waiting", 4, OTHER_COMPANY),
                  row("s-expired", "tanaka", "expired", 5)):
            uow.registrations.add_session(r)
        uow.commit()
    with store.uow(read_only=True) as uow:
        regs = uow.registrations

        def ids(rows: list[RegistrationSession]) -> list[str]:
            return [r.id for r in rows]

        assert ids(regs.waiting_for(COMPANY)) == ["s-old-wait", "s-new-wait"]  # oldest first
        assert ids(regs.waiting_for(OTHER_COMPANY)) == ["s-other"]
        assert regs.waiting_for("防衛産業") == []  # the company exactly
        assert ids(regs.live_of_registrant("Yamada")) == ["s-mid-join", "s-old-wait"]  # newest first
        assert sorted(ids(regs.live_of_account(accounts["yamada"][0], lock=True))) == [
            "s-mid-join", "s-old-wait"]
        assert sorted(ids(regs.live_inactive_since(t0 + timedelta(minutes=2), lock=True))) == [
            "s-mid-join", "s-old-wait"]  # strictly before the cutoff, final ones left out
        assert ids(regs.recent(3)) == ["s-expired", "s-other", "s-closed"]
        assert len(regs.recent(10)) == 6
        assert regs.get("s-closed", lock=True).state == "closed" and regs.get("nope") is None
        assert regs.registrant_of(regs.get("s-other")).user_id == "kato"


def test_consent_and_evidence_read_back(store, clock, people):
    yamada = ids_of(store, "yamada")[0]
    with store.uow(read_only=True) as uow:
        assert uow.registrations.consent_of(yamada) is None and not uow.registrations.consented(yamada)
    registration.record_consent(store, ADMIN, "yamada", True)
    with store.uow(read_only=True) as uow:
        first = uow.registrations.consent_of(yamada)
        assert (first.given, first.recorded_by, first.recorded_at) == (True, "sato", clock.now())
        assert uow.registrations.consented(yamada)
        first_id = first.id
    clock.advance(minutes=1)
    registration.record_consent(store, ADMIN, "yamada", False)  # withdrawn: the same row
    with store.uow(read_only=True) as uow:
        assert not uow.registrations.consented(yamada)
        assert uow.registrations.consent_of(yamada).id == first_id
    registration.record_consent(store, ADMIN, "yamada", True)
    sid = registration.open_session(store, Actor("yamada"), "yamada").id
    registration.join(store, ADMIN, sid)
    registration.capture_id(store, Actor("yamada"), sid, JPEG)
    clock.advance(minutes=1)
    second = JPEG[:-2] + b"2\xff\xd9"  # a clearer image replaces the view
    registration.capture_id(store, Actor("yamada"), sid, second)
    with store.uow(read_only=True) as uow:
        regs = uow.registrations
        again = regs.consent_of(yamada)
        assert (again.id, again.given) == (first_id, True)
        assert again.recorded_at == clock.now() - timedelta(minutes=1)
        assert regs.evidence_held(sid) == 2 and regs.evidence_held("nope") == 0
        latest = regs.latest_evidence(sid)
        assert store.sealer.open(latest.sealed, f"registration-evidence:{sid}".encode()) == second
        assert latest.captured_at == clock.now() and latest.size == len(second)
        assert regs.evidence_due(clock.now(), lock=True) == []
    days = store.settings.registration.evidence_retention_days
    clock.advance(days=days, minutes=-1)
    with store.uow(read_only=True) as uow:  # the first image is due a minute before the second
        assert [e.size for e in uow.registrations.evidence_due(clock.now())] == [len(JPEG)]
    clock.advance(minutes=1)
    with store.uow(read_only=True) as uow:
        assert sorted(e.size for e in uow.registrations.evidence_due(clock.now())) == sorted(
            [len(JPEG), len(second)])
    assert registration.purge_evidence(store) == 2
    assert registration.purge_evidence(store) == 0
    with store.uow(read_only=True) as uow:
        regs = uow.registrations
        assert regs.evidence_held(sid) == 0 and regs.latest_evidence(sid) is None
        assert regs.evidence_due(clock.now()) == []
        assert regs.get(sid).state == "id_captured"


def test_webauthn_credentials_read_back_oldest_first_and_move_their_counter(store, clock, people):
    keys = {"yamada": [SoftAuthenticator(), SoftAuthenticator()], "tanaka": [SoftAuthenticator()]}
    for user, auth, name in (("yamada", keys["yamada"][0], "first"),
                             ("tanaka", keys["tanaka"][0], "tanaka's"),
                             ("yamada", keys["yamada"][1], "second")):
        cid, options = wa.registration_options(store, user)
        wa.register(store, Actor(user), user, cid, auth.create(options), name=name)
        clock.advance(minutes=1)
    yamada, tanaka = ids_of(store, "yamada"), ids_of(store, "tanaka")
    with store.uow(read_only=True) as uow:
        mine = uow.credentials.webauthn_of(yamada[0])
        assert [c.credential_id for c in mine] == [a.credentials[0].credential_id for a in keys["yamada"]]
        assert [(c.name, c.sign_count, c.last_used_at) for c in mine] == [
            ("first", 0, None), ("second", 0, None)]
        assert [c.created_at for c in mine] == [clock.now() - timedelta(minutes=n) for n in (3, 1)]
        assert [c.name for c in uow.credentials.webauthn_of(tanaka[0], lock=True)] == ["tanaka's"]
        assert uow.credentials.webauthn_for_use(mine[1].id).credential_id == mine[1].credential_id
        assert uow.enrolled_factors(*yamada) == ("webauthn",)
        first, second = mine[0].id, mine[1].id
    with store.uow() as uow:  # a credential ID is registered once, to any account
        assert not uow.credentials.add_webauthn(WebauthnCredential(
            account_id=tanaka[0], credential_id=keys["yamada"][0].credentials[0].credential_id,
            credential_data=b"", sign_count=0, name="copy", created_at=clock.now()))
        uow.audit(clock.now(), Actor("tanaka"), "test.after_refusal", "tanaka")
        uow.commit()
    cid, options = wa.authentication_options(store, "yamada")
    assertion = keys["yamada"][1].get(options, credential=keys["yamada"][1].credentials[0])
    assert wa.authenticate(store, "yamada", cid, assertion) is True
    assert wa.authenticate(store, "yamada", cid, assertion) is False  # the challenge was taken
    with store.uow(read_only=True) as uow:
        used = uow.credentials.webauthn_for_use(second)
        assert (used.sign_count, used.last_used_at) == (1, clock.now())
        assert uow.credentials.webauthn_for_use(first).sign_count == 0
        assert len(uow.credentials.webauthn_of(tanaka[0])) == 1
    for auth in keys["yamada"]:
        wa.remove_credential(store, Actor("yamada"), "yamada", auth.credentials[0].credential_id[:8].hex())
    with store.uow(read_only=True) as uow:
        assert uow.credentials.webauthn_of(yamada[0]) == []
        assert uow.credentials.webauthn_for_use(first) is None
        assert uow.enrolled_factors(*yamada) == ()
        assert [c.name for c in uow.credentials.webauthn_of(tanaka[0])] == ["tanaka's"]
    assert [e.action for e in events(store, subject="tanaka")][-1] == "test.after_refusal"


def test_a_totp_step_is_claimed_once_and_only_for_the_secret_checked(store, clock, people):
    yamada, tanaka = ids_of(store, "yamada")[0], ids_of(store, "tanaka")[0]
    made = totp.begin_enrolment(store, Actor("yamada"), "yamada")
    with store.uow(read_only=True) as uow:
        pending = uow.credentials.pending_totp("yamada", clock.now())
        assert pending["account_id"] == yamada and pending["sealed"].startswith("v1.")
        assert uow.credentials.totp_of(yamada) is None
    totp.confirm_enrolment(store, Actor("yamada"), "yamada", pyotp.TOTP(made.secret).at(clock.now()))
    with store.uow() as uow:
        cred = uow.credentials.totp_of(yamada)
        sealed, step = cred.secret, cred.last_step
        assert step == pyotp.TOTP(made.secret).timecode(clock.now()) and cred.confirmed_at == clock.now()
        assert not uow.credentials.claim_totp_step(yamada, "another secret", step + 1)
        assert not uow.credentials.claim_totp_step(yamada, sealed, step)  # not newer
        assert not uow.credentials.claim_totp_step(tanaka, sealed, step + 1)  # no credential
        assert uow.credentials.claim_totp_step(yamada, sealed, step + 2, reseal="resealed")
        assert not uow.credentials.claim_totp_step(yamada, "resealed", step + 2)  # once
        assert not uow.credentials.claim_totp_step(yamada, sealed, step + 3)  # the secret changed
        uow.credentials.save_totp(TotpCredential(account_id=tanaka, secret="s", created_at=clock.now()))
        assert not uow.credentials.claim_totp_step(tanaka, "s", 1)  # not confirmed
        uow.commit()
    with store.uow(read_only=True) as uow:
        cred = uow.credentials.totp_of(yamada)
        assert (cred.last_step, cred.secret) == (step + 2, "resealed")
        assert uow.credentials.totp_of(tanaka).last_step is None
        assert uow.enrolled_factors(tanaka, ids_of(store, "tanaka")[1]) == ()
    # beginning an enrolment replaces the unconfirmed credential; an expired pending enrolment
    # is not found, but it is dropped (and counted)
    totp.begin_enrolment(store, Actor("tanaka"), "tanaka")
    clock.advance(minutes=totp.ENROL_MINUTES)
    with store.uow() as uow:
        assert uow.credentials.totp_of(tanaka) is None
        assert uow.credentials.pending_totp("tanaka", clock.now()) is None
        assert uow.credentials.drop_pending_totp("tanaka") == 1
        assert uow.credentials.drop_pending_totp("tanaka") == 0
        uow.credentials.remove_totp(uow.credentials.totp_of(yamada))
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert uow.credentials.totp_of(yamada) is None and uow.credentials.totp_of(tanaka) is None


def test_groups_and_memberships_read_back_alike(store, clock, people):
    """store/groups.py: a company's groups by name, a duplicate (company, name) not added while
    the transaction goes on, memberships by user ID, and the factor policies of the approved
    memberships only."""
    from authsvc.services import groups

    account_admin = Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY)
    manager = Actor("data1", frozenset({Role.DATA_MANAGER}), company=COMPANY)
    other_admin = Actor("adm-x", frozenset({Role.SYSTEM_ADMIN}), company=OTHER_COMPANY)
    groups.create(store, account_admin, "設計部", ["vein"], ["dsg-files"])
    groups.create(store, account_admin, "運用", ["totp", "vein"])
    groups.create(store, other_admin, "設計部", ["webauthn"])  # the same name, another company
    for user_id in ("yamada", "tanaka"):
        groups.request_member(store, account_admin, "設計部", user_id)
    groups.request_member(store, account_admin, "運用", "yamada")
    groups.approve_member(store, manager, "設計部", "yamada")
    groups.approve_member(store, manager, "運用", "yamada")
    yamada, tanaka = ids_of(store, "yamada")[0], ids_of(store, "tanaka")[0]
    with store.uow() as uow:
        assert [(g.company, g.name) for g in uow.groups.of_company(COMPANY)] == [
            (COMPANY, "設計部"), (COMPANY, "運用")]
        assert [(g.company, g.name) for g in uow.groups.of_company(None)] == sorted([
            (COMPANY, "設計部"), (COMPANY, "運用"), (OTHER_COMPANY, "設計部")])
        design = uow.groups.named(COMPANY, "設計部")
        assert design.created_by == "acctadm" and uow.groups.named(COMPANY, "営業") is None
        assert [(uid, m.requested_by, m.approved_by) for m, uid in uow.groups.members(design.id)] \
            == [("tanaka", "acctadm", None), ("yamada", "acctadm", "data1")]
        assert uow.groups.member(design.id, tanaka).approved_at is None
        assert uow.groups.member(design.id, yamada).approved_at == clock.now()
        assert sorted(uow.groups.factor_policies(yamada)) == [("totp", "vein"), ("vein",)]
        assert uow.groups.factor_policies(tanaka) == []  # requested, not approved
        duplicate = Group(company=COMPANY, name="運用", factors='["totp"]', services="[]",
                          created_by="acctadm", created_at=clock.now())
        assert uow.groups.add(duplicate) is False
        fresh = Group(company=COMPANY, name="営業", factors='["totp"]', services="[]",
                      created_by="acctadm", created_at=clock.now())
        assert uow.groups.add(fresh) is True and fresh.id is not None
        uow.groups.remove_member(uow.groups.member(design.id, tanaka))
        uow.audit(clock.now(), account_admin, "test.after_refusal", "運用")
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert [g.name for g in uow.groups.of_company(COMPANY)] == sorted(["設計部", "運用", "営業"])
        design = uow.groups.named(COMPANY, "設計部")
        assert [uid for _m, uid in uow.groups.members(design.id)] == ["yamada"]
        assert uow.groups.member(design.id, tanaka) is None
    assert [e.action for e in events(store, subject="運用")][-1] == "test.after_refusal"


def test_alerts_read_back_alike(store, clock, people):
    """store/alerts.py: the inbox newest first, by company (every alert for the agency), open
    only or all; alerts of a kind since a moment; audit events of an action since a moment."""
    from authsvc.domain.calendar import jst_iso
    from authsvc.services import alerts

    start = clock.now()
    alerts.raise_alert(store, "duplicate_person", "yamada", COMPANY, person=1)
    clock.advance(minutes=1)
    alerts.raise_alert(store, "replayed_sample", "kato", OTHER_COMPANY, device="T-9")
    clock.advance(minutes=1)
    alerts.raise_alert(store, "lockout_storm", "-", None)
    clock.advance(minutes=1)
    with store.uow() as uow:
        every = uow.alerts.inbox(None, True, True, 10)
        assert [(a.kind, a.company) for a in every] == [
            ("lockout_storm", None), ("replayed_sample", OTHER_COMPANY), ("duplicate_person", COMPANY)]
        assert [a.subject for a in uow.alerts.inbox(COMPANY, False, True, 10)] == ["yamada"]
        assert [a.subject for a in uow.alerts.inbox(None, True, True, 2)] == ["-", "kato"]
        first = every[-1]
        assert uow.alerts.get(first.id).kind == "duplicate_person" and uow.alerts.get(10_000) is None
        first.acknowledged_by, first.acknowledged_at = "adm", clock.now()
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert uow.alerts.inbox(COMPANY, False, True, 10) == []  # acknowledged: not open
        assert [a.acknowledged_by for a in uow.alerts.inbox(COMPANY, False, False, 10)] == ["adm"]
        assert uow.alerts.recent("replayed_sample", start) == 1
        assert uow.alerts.recent("replayed_sample", start + timedelta(minutes=2)) == 0
        created = uow.alerts.events_since("account.create", jst_iso(start))
        assert created == 4  # the people fixture's accounts
        assert uow.alerts.events_since("account.create", jst_iso(clock.now())) == 0


def test_service_clients_read_back_alike(store, clock, people):
    """store/service_clients.py: a client by the identifier it holds (not an account's, not once
    revoked), by row id, every row by client ID; its identifier claimed with kind "service"."""
    import json

    from authsvc.services import service_clients as svc
    from authsvc.store.models import ServiceClient

    account_admin = Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY)
    other_admin = Actor("adm-x", frozenset({Role.SYSTEM_ADMIN}), company=OTHER_COMPANY)
    svc.create(store, account_admin, "sync-b", ["accounts:read"])
    clock.advance(minutes=1)
    svc.create(store, other_admin, "report-x", ["audit:read", "accounts:read"])
    svc.create(store, Actor("ops1", frozenset({Role.AGENCY_OPERATOR})), "agency-1", ["devices:write"])
    svc.approve(store, ADMIN, "sync-b")
    svc.create(store, account_admin, "gone-1", ["accounts:write"])
    svc.revoke(store, ADMIN, "gone-1", "不要")
    with store.uow() as uow:
        repo = uow.service_clients
        found = repo.by_identifier("sync-b")
        assert (found.client_id, found.company, found.status, found.created_by, found.approved_by) == (
            "sync-b", COMPANY, "active", "acctadm", "sato")
        assert json.loads(found.scopes) == ["accounts:read"]
        assert found.secret_hash.startswith("$argon2id$")
        assert found.created_at == clock.now() - timedelta(minutes=1)
        assert repo.get(found.id).client_id == "sync-b" and repo.get(10_000) is None
        assert repo.by_identifier("agency-1").company is None
        assert repo.by_identifier("gone-1") is None  # revoked: the identifier is released
        assert repo.by_identifier("yamada") is None and repo.by_identifier("nobody") is None
        assert [c.client_id for c in repo.all()] == ["agency-1", "gone-1", "report-x", "sync-b"]
        gone = next(c for c in repo.all() if c.client_id == "gone-1")
        assert (gone.status, gone.secret_hash) == ("revoked", None)
        ident = uow.identifier("sync-b")
        assert (ident.kind, ident.holder_id, ident.assigned_by, ident.approved_by) == (
            "service", found.id, "acctadm", "sato")
        assert uow.identifier("gone-1").released_at == clock.now()
        assert uow.account("sync-b") is None  # a service's identifier is no account's
        fresh = ServiceClient(client_id="late-1", company=COMPANY, scopes="[]", secret_hash="h",
                              status="pending", created_by="x", created_at=clock.now(),
                              status_changed_at=clock.now())
        repo.add(fresh)
        assert fresh.id is not None and repo.get(fresh.id).client_id == "late-1"
        found.last_used_at = clock.now()
        uow.commit()
    with store.uow(read_only=True) as uow:
        assert uow.service_clients.by_identifier("sync-b").last_used_at == clock.now()
        assert uow.service_clients.by_identifier("late-1") is None  # no identifier claimed
        assert len(uow.service_clients.all()) == 5

"""TOTP second factor where the database matters (R10, R11, R15): one code accepted once under
concurrency across instances, the conditional claim against a secret replaced in the table,
secrets sealed at rest and bound to their account (tampered straight in the tables), key
rotation from the configured key ring. The service's rules over the in-memory fakes:
tests/unit/test_totp_service.py."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Row, select

from authsvc.bootstrap import build, data_keys
from authsvc.domain.errors import DomainError
from authsvc.services import Deps, totp
from authsvc.store.models import Account, Challenge, TotpCredential
from tests.conftest import make_settings
from tests.integration.support import active_account, add_contract, dump_all, events, sql
from tests.totp_support import SUZUKI, TANAKA, add_users, code, enrol


@pytest.fixture
def users(deps, operator, account_admin) -> Deps:
    return add_users(deps, operator, account_admin)


def stored(deps: Deps, account_user: str = "tanaka") -> Row | None:
    """The account's totp_credentials row, read straight from the table."""
    with deps.engine.connect() as conn:
        return conn.execute(
            select(TotpCredential.__table__)
            .where(TotpCredential.account_id == select(Account.id)
                   .where(Account.user_id == account_user).scalar_subquery())
        ).first()


def pending_rows(deps: Deps) -> list[Row]:
    with deps.engine.connect() as conn:
        return list(conn.execute(select(Challenge.__table__).where(Challenge.purpose == "totp_enrol")))


def test_a_code_checked_against_a_secret_replaced_meanwhile_is_refused(users, clock, monkeypatch):
    """The claim names the sealed secret the code was checked against: if a new enrolment is
    confirmed between the check and the claim, the old secret's code does not count."""
    deps = users
    old = enrol(deps, clock)
    row = stored(deps)
    assert row is not None
    check = totp._matching_step

    def replaced_meanwhile(*args, **kwargs):
        step = check(*args, **kwargs)
        sealed = deps.sealer.seal(pyotp.random_base32().encode(), f"totp:{row.account_id}".encode())
        sql(deps, "UPDATE totp_credentials SET secret = :s", s=sealed)
        return step

    monkeypatch.setattr(totp, "_matching_step", replaced_meanwhile)
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(old, clock)) is False


# ---- concurrency ---------------------------------------------------------------------------


@pytest.mark.backends("sqlite", "postgres")  # concurrency: the production shape is the point
def test_one_code_twenty_concurrent_requests_two_instances_exactly_one_accepted(
    make_deps, backend, clock, operator, account_admin
):
    first, second = make_deps(backend), make_deps(backend)  # two instances on one database
    add_contract(first, operator)
    active_account(first, account_admin, operator, "tanaka")
    secret = enrol(first, clock)
    clock.advance(seconds=30)
    the_code = code(secret, clock)
    barrier = threading.Barrier(20)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt(deps: Deps) -> None:
        try:
            barrier.wait(timeout=30)
            ok = totp.verify(deps, "tanaka", the_code)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=attempt, args=(first if i % 2 else second,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 20
    assert results.count(True) == 1
    cred = stored(first)
    assert cred is not None and cred.last_step == pyotp.TOTP(secret).timecode(clock.now())


# ---- secrets at rest -------------------------------------------------------------------------


def test_the_secret_is_never_stored_or_logged_in_clear(users, clock, caplog, operator):
    deps = users
    caplog.set_level(logging.DEBUG)
    first = totp.begin_enrolment(deps, TANAKA, "tanaka")
    pending = pending_rows(deps)
    assert len(pending) == 1 and pending[0].subject == "tanaka"
    snapshot_pending = dump_all(deps)
    totp.confirm_enrolment(deps, TANAKA, "tanaka", code(first.secret, clock))
    second = totp.begin_enrolment(deps, TANAKA, "tanaka")  # a pending replacement too
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(first.secret, clock)) is True
    snapshot = dump_all(deps)
    cred = stored(deps)
    assert cred is not None and cred.secret.startswith("v1.")

    secrets = [first.secret, second.secret]
    audit_text = "\n".join(e.detail for e in events(deps))
    logs = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in secrets:
        for form in (secret, secret.lower()):
            assert form not in snapshot_pending
            assert form not in snapshot
            assert form not in audit_text
            assert form not in logs
    if deps.engine.dialect.name == "sqlite":
        raw = b"".join(p.read_bytes() for p in Path(deps.settings.instance_path).glob("authsvc.db*"))
        for secret in secrets:
            assert secret.encode() not in raw and secret.lower().encode() not in raw
    totp.remove(deps, operator, "tanaka")
    assert first.secret not in dump_all(deps)


def test_a_sealed_secret_copied_to_another_account_does_not_open(users, clock, caplog):
    deps = users
    tanaka_secret = enrol(deps, clock, TANAKA)
    suzuki_secret = enrol(deps, clock, SUZUKI)
    tanaka_row = stored(deps, "tanaka")
    assert tanaka_row is not None
    sql(deps, "UPDATE totp_credentials SET secret = :s, last_step = NULL "
              "WHERE account_id = (SELECT id FROM accounts WHERE user_id = 'suzuki')",
        s=tanaka_row.secret)
    clock.advance(seconds=30)
    with caplog.at_level(logging.WARNING, logger="authsvc.services.totp"):
        assert totp.verify(deps, "suzuki", code(tanaka_secret, clock)) is False
        assert totp.verify(deps, "suzuki", code(suzuki_secret, clock)) is False
    assert any("cannot be opened" in r.getMessage() for r in caplog.records)
    # the rightful owner is unaffected
    assert totp.verify(deps, "tanaka", code(tanaka_secret, clock)) is True


def test_a_tampered_sealed_secret_is_false_not_an_exception(users, clock):
    deps = users
    secret = enrol(deps, clock)
    row = stored(deps)
    assert row is not None
    for bad in (row.secret[:-4] + ("AAAA" if not row.secret.endswith("AAAA") else "BBBB"),
                "garbage", "", "v1.k404." + row.secret.split(".", 2)[2]):
        sql(deps, "UPDATE totp_credentials SET secret = :s", s=bad)
        clock.advance(seconds=30)
        assert totp.verify(deps, "tanaka", code(secret, clock)) is False


def test_key_rotation_reseals_after_a_verify(users, clock, monkeypatch):
    deps = users
    secret = enrol(deps, clock)
    old_ring = data_keys(deps.settings)
    assert "k2" not in {kid for kid, _ in old_ring}
    before = stored(deps)
    assert before is not None and not deps.sealer.needs_reseal(before.secret)
    old_kid = before.secret.split(".")[1]

    # a verify under the same ring leaves the sealed value alone
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(secret, clock)) is True
    same = stored(deps)
    assert same is not None and same.secret == before.secret

    ring = ",".join([f"k2:{os.urandom(32).hex()}", *(f"{kid}:{key.hex()}" for kid, key in old_ring)])
    monkeypatch.setenv("AUTHSVC_DATA_KEYS", ring)
    rotated = build(make_settings(deps.settings.paths.instance_dir, deps.settings.database.url),
                    clock=clock)
    try:
        assert is_sealed_under(rotated, old_kid)
        assert totp.is_enrolled(rotated, "tanaka")
        clock.advance(seconds=30)
        assert totp.verify(rotated, "tanaka", code(secret, clock)) is True
        assert is_sealed_under(rotated, "k2")
        after = stored(rotated)
        assert after is not None and not rotated.sealer.needs_reseal(after.secret)
        # the old ring (k1 only) cannot open it any more: a clean False, no exception
        clock.advance(seconds=30)
        assert totp.verify(deps, "tanaka", code(secret, clock)) is False
        # replay protection carried over the re-seal; the next code works under the new ring
        assert totp.verify(rotated, "tanaka", code(secret, clock, offset=-1)) is False
        assert totp.verify(rotated, "tanaka", code(secret, clock)) is True
    finally:
        rotated.engine.dispose()


def is_sealed_under(deps: Deps, kid: str) -> bool:
    row = stored(deps)
    return row is not None and row.secret.startswith(f"v1.{kid}.")


def test_pending_secret_cannot_be_confirmed_for_another_account(users, clock):
    """A pending enrolment is bound to its account: moving it to another subject is refused."""
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    sql(deps, "UPDATE challenges SET subject = 'suzuki' WHERE purpose = 'totp_enrol'")
    with pytest.raises(DomainError) as err:
        totp.confirm_enrolment(deps, SUZUKI, "suzuki", code(enrolment.secret, clock))
    assert err.value.code == "totp_enrol_expired"
    assert totp.is_enrolled(deps, "suzuki") is False

"""TOTP second factor on the real backends (R10, R11, R15): enrolment and confirmation, codes
accepted once only (also under concurrency across instances), the time window, malformed
input, secrets sealed at rest and bound to their account, key rotation, removal."""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Row, select

from authsvc.bootstrap import build, data_keys
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, totp
from authsvc.store.models import Account, Challenge, TotpCredential
from tests.conftest import make_settings
from tests.integration.support import active_account, add_contract, dump_all, events, sql

TANAKA = Actor("tanaka", terminal="pc-1", source="10.0.0.5")
SUZUKI = Actor("suzuki", terminal="pc-2", source="10.0.0.6")


@pytest.fixture
def users(deps, operator, account_admin) -> Deps:
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "tanaka")
    active_account(deps, account_admin, operator, "suzuki", name="鈴木 花子")
    return deps


def code(secret: str, clock, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now(), counter_offset=offset)


def enrol(deps: Deps, clock, actor: Actor = TANAKA) -> str:
    """Enrol and confirm `actor`'s TOTP; returns the secret. The confirming code is used up."""
    enrolment = totp.begin_enrolment(deps, actor, actor.id)
    totp.confirm_enrolment(deps, actor, actor.id, code(enrolment.secret, clock))
    return enrolment.secret


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


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


# ---- enrolment -------------------------------------------------------------------------------


def test_enrol_confirm_and_log_on(users, clock):
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")

    assert re.fullmatch(r"[A-Z2-7]{32}", enrolment.secret)  # base32, 160 bits
    parsed = pyotp.parse_uri(enrolment.uri)
    assert enrolment.uri.startswith("otpauth://totp/")
    assert parsed.secret == enrolment.secret
    assert parsed.issuer == deps.settings.totp.issuer and parsed.name == "tanaka"
    assert enrolment.qr_svg.startswith("<svg") and enrolment.qr_svg.rstrip().endswith("</svg>")
    assert "<script" not in enrolment.qr_svg and "<image" not in enrolment.qr_svg
    assert enrolment.secret not in repr(enrolment)
    # pending: neither enrolled nor usable to log on
    assert totp.is_enrolled(deps, "tanaka") is False
    assert stored(deps) is None
    assert totp.verify(deps, "tanaka", code(enrolment.secret, clock)) is False

    totp.confirm_enrolment(deps, TANAKA, "Tanaka", code(enrolment.secret, clock))

    assert totp.is_enrolled(deps, "tanaka") is True
    assert totp.is_enrolled(deps, "TANAKA") is True
    assert totp.is_enrolled(deps, "suzuki") is False
    cred = stored(deps)
    assert cred is not None and cred.confirmed_at == clock.now()
    assert pending_rows(deps) == []
    # the confirming code is used up; the next time step's code logs on
    assert totp.verify(deps, "tanaka", code(enrolment.secret, clock)) is False
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(enrolment.secret, clock)) is True

    begun = events(deps, "totp.enrol_begin", "tanaka")
    enrolled = events(deps, "totp.enrolled", "tanaka")
    assert [(e.actor, e.result, e.terminal) for e in begun] == [("tanaka", "ok", "pc-1")]
    assert [(e.actor, e.result) for e in enrolled] == [("tanaka", "ok")]
    assert enrolled[0].data == {"replaced": False}


def test_wrong_confirmation_code_confirms_nothing(users, clock):
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    right = code(enrolment.secret, clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for bad in (wrong, "", "abcdef", "1" * 5000, code(enrolment.secret, clock, offset=-5)):
        with pytest.raises(DomainError) as err:
            totp.confirm_enrolment(deps, TANAKA, "tanaka", bad)
        assert err.value.code == "totp_invalid"
        assert err.value.message("en") and err.value.message("ja")

    assert totp.is_enrolled(deps, "tanaka") is False
    assert stored(deps) is None
    assert totp.verify(deps, "tanaka", right) is False
    failed = events(deps, "totp.enrolled", "tanaka")
    assert {e.result for e in failed} == {"failed"} and len(failed) == 5
    # the pending secret survives a typo: the right code still confirms it
    totp.confirm_enrolment(deps, TANAKA, "tanaka", right)
    assert totp.is_enrolled(deps, "tanaka") is True


def test_pending_enrolment_expires(users, clock):
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    clock.advance(minutes=totp.ENROL_MINUTES, seconds=1)
    with pytest.raises(DomainError) as err:
        totp.confirm_enrolment(deps, TANAKA, "tanaka", code(enrolment.secret, clock))
    assert err.value.code == "totp_enrol_expired"
    assert totp.is_enrolled(deps, "tanaka") is False


def test_confirm_without_enrolment_is_refused(users, clock):
    with pytest.raises(DomainError) as err:
        totp.confirm_enrolment(users, TANAKA, "tanaka", "123456")
    assert err.value.code == "totp_enrol_expired"


def test_beginning_again_discards_the_earlier_pending_secret(users, clock):
    deps = users
    first = totp.begin_enrolment(deps, TANAKA, "tanaka")
    second = totp.begin_enrolment(deps, TANAKA, "tanaka")
    assert first.secret != second.secret
    assert len(pending_rows(deps)) == 1
    with pytest.raises(DomainError) as err:
        totp.confirm_enrolment(deps, TANAKA, "tanaka", code(first.secret, clock))
    assert err.value.code == "totp_invalid"
    totp.confirm_enrolment(deps, TANAKA, "tanaka", code(second.secret, clock))
    assert totp.is_enrolled(deps, "tanaka")


def test_replacing_keeps_the_confirmed_secret_until_the_new_one_is_confirmed(users, clock):
    deps = users
    old = enrol(deps, clock)
    new = totp.begin_enrolment(deps, TANAKA, "tanaka")

    clock.advance(seconds=30)
    assert totp.is_enrolled(deps, "tanaka") is True
    assert totp.verify(deps, "tanaka", code(old, clock)) is True  # old still works meanwhile
    assert totp.verify(deps, "tanaka", code(new.secret, clock)) is False

    clock.advance(seconds=30)
    totp.confirm_enrolment(deps, TANAKA, "tanaka", code(new.secret, clock))
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(old, clock)) is False  # the old secret is gone
    assert totp.verify(deps, "tanaka", code(new.secret, clock)) is True
    assert events(deps, "totp.enrolled", "tanaka")[-1].data == {"replaced": True}
    assert events(deps, "totp.enrol_begin", "tanaka")[-1].data == {"replaces": True}


def test_only_the_holder_enrols_and_only_active_accounts(users, clock, operator):
    deps = users
    with pytest.raises(Forbidden):
        totp.begin_enrolment(deps, SUZUKI, "tanaka")
    with pytest.raises(Forbidden):
        totp.begin_enrolment(deps, operator, "tanaka")
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    with pytest.raises(Forbidden):
        totp.confirm_enrolment(deps, SUZUKI, "tanaka", code(enrolment.secret, clock))
    assert totp.is_enrolled(deps, "tanaka") is False
    with pytest.raises(NotFound):
        totp.begin_enrolment(deps, Actor("nobody"), "nobody")
    accounts.suspend(deps, operator, "suzuki")
    with pytest.raises(NotFound):
        totp.begin_enrolment(deps, SUZUKI, "suzuki")


# ---- verification: replay and window ---------------------------------------------------------


def test_a_code_is_accepted_once(users, clock):
    deps = users
    secret = enrol(deps, clock)
    clock.advance(seconds=30)
    now_code = code(secret, clock)
    assert totp.verify(deps, "tanaka", now_code) is True
    assert totp.verify(deps, "tanaka", now_code) is False
    clock.advance(seconds=10)  # same time step, a little later
    assert totp.verify(deps, "tanaka", now_code) is False


def test_an_older_code_after_a_newer_one_is_refused(users, clock):
    deps = users
    secret = enrol(deps, clock)
    clock.advance(seconds=60)
    older, newer = code(secret, clock), code(secret, clock, offset=1)  # both inside the window
    assert totp.verify(deps, "tanaka", newer) is True
    assert totp.verify(deps, "tanaka", older) is False
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=-1)) is False


def test_window_edges(users, clock):
    deps = users
    window = deps.settings.totp.window
    assert window == 1
    secret = enrol(deps, clock)
    clock.advance(minutes=5)
    for beyond in (-window - 1, window + 1, -10, 10):
        assert totp.verify(deps, "tanaka", code(secret, clock, offset=beyond)) is False
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=-window)) is True
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=window)) is True


def test_window_zero_accepts_only_the_current_step(make_deps, backend, clock, operator, account_admin):
    deps = make_deps(backend, totp={"window": 0})
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "tanaka")
    secret = enrol(deps, clock)
    clock.advance(minutes=5)
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=-1)) is False
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=1)) is False
    assert totp.verify(deps, "tanaka", code(secret, clock)) is True


def test_eight_digits_and_a_longer_period(make_deps, backend, clock, operator, account_admin):
    deps = make_deps(backend, totp={"digits": 8, "period": 60})
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "tanaka")
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    parsed = pyotp.parse_uri(enrolment.uri)
    assert (parsed.digits, parsed.interval) == (8, 60)
    totp.confirm_enrolment(deps, TANAKA, "tanaka", parsed.at(clock.now()))
    clock.advance(seconds=60)
    assert totp.verify(deps, "tanaka", parsed.at(clock.now())[:6]) is False
    assert totp.verify(deps, "tanaka", parsed.at(clock.now())) is True


def test_malformed_codes_are_false_never_an_exception(users, clock):
    deps = users
    secret = enrol(deps, clock)
    clock.advance(seconds=30)
    right = code(secret, clock)
    malformed = [None, 123456, int(right), b"123456", right.encode(), "", "12345", "1234567",
                 "abcdef", right[:5] + "a", "1" * 1_000_000, right + "\x00", "-" + right[1:],
                 "١٢٣٤٥٦", right[:3] + "\u200b" + right[3:], ["1", "2"], 1.5]
    for bad in malformed:
        assert totp.verify(deps, "tanaka", bad) is False  # type: ignore[arg-type]
    for bad_user in ("", "x", "no such user", None, "a" * 500, "nobody"):
        assert totp.verify(deps, bad_user, right) is False  # type: ignore[arg-type]
    assert totp.is_enrolled(deps, "no such user") is False
    # the right code is still unused after all that
    assert totp.verify(deps, "tanaka", right) is True


def test_full_width_digits_and_spaces_are_normalised(users, clock):
    deps = users
    secret = enrol(deps, clock)
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", fullwidth(code(secret, clock))) is True
    clock.advance(seconds=30)
    c = code(secret, clock)
    assert totp.verify(deps, "tanaka", f" {c[:3]}\u3000{c[3:]} ") is True


def test_no_code_without_a_confirmed_credential_or_for_a_suspended_account(users, clock, operator):
    deps = users
    assert totp.verify(deps, "tanaka", "123456") is False
    secret = enrol(deps, clock)
    accounts.suspend(deps, operator, "tanaka")
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(secret, clock)) is False


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


# ---- removal ---------------------------------------------------------------------------------


def test_operator_removes_a_credential(users, clock, operator):
    deps = users
    secret = enrol(deps, clock)
    totp.remove(deps, operator, "Tanaka")
    assert totp.is_enrolled(deps, "tanaka") is False
    assert stored(deps) is None
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(secret, clock)) is False
    removed = events(deps, "totp.removed", "tanaka")
    assert [(e.actor, e.result) for e in removed] == [(operator.id, "ok")]
    assert removed[0].data == {"confirmed": True, "pending": False}
    with pytest.raises(NotFound) as err:
        totp.remove(deps, operator, "tanaka")
    assert err.value.code == "totp_not_enrolled"
    assert "tanaka" in err.value.message("en")


def test_holder_removes_own_credential_and_pending_enrolment(users, clock):
    deps = users
    enrol(deps, clock)
    totp.begin_enrolment(deps, TANAKA, "tanaka")
    totp.remove(deps, TANAKA, "tanaka")
    assert totp.is_enrolled(deps, "tanaka") is False
    assert pending_rows(deps) == []
    assert events(deps, "totp.removed", "tanaka")[0].data == {"confirmed": True, "pending": True}


def test_others_cannot_remove(users, clock):
    deps = users
    enrol(deps, clock)
    staff = Actor("staff1", frozenset({Role.STAFF}))
    for actor in (SUZUKI, staff):
        with pytest.raises(Forbidden):
            totp.remove(deps, actor, "tanaka")
    assert totp.is_enrolled(deps, "tanaka") is True
    assert events(deps, "totp.removed") == []


def test_enrolment_after_removal_starts_fresh(users, clock, operator):
    deps = users
    old = enrol(deps, clock)
    totp.remove(deps, operator, "tanaka")
    clock.advance(seconds=30)
    new = enrol(deps, clock)
    assert new != old
    clock.advance(seconds=30)
    assert totp.verify(deps, "tanaka", code(new, clock)) is True
    assert pending_rows(deps) == []
    assert stored(deps) is not None


def test_pending_secret_cannot_be_confirmed_for_another_account(users, clock):
    """A pending enrolment is bound to its account: moving it to another subject is refused."""
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    sql(deps, "UPDATE challenges SET subject = 'suzuki' WHERE purpose = 'totp_enrol'")
    with pytest.raises(DomainError) as err:
        totp.confirm_enrolment(deps, SUZUKI, "suzuki", code(enrolment.secret, clock))
    assert err.value.code == "totp_enrol_expired"
    assert totp.is_enrolled(deps, "suzuki") is False


def test_enrolment_timestamps(users, clock):
    deps = users
    enrolment = totp.begin_enrolment(deps, TANAKA, "tanaka")
    (row,) = pending_rows(deps)
    assert row.expires_at == clock.now() + timedelta(minutes=totp.ENROL_MINUTES)
    clock.advance(minutes=3)
    totp.confirm_enrolment(deps, TANAKA, "tanaka", code(enrolment.secret, clock))
    cred = stored(deps)
    assert cred is not None
    assert cred.created_at == cred.confirmed_at == clock.now()
    assert cred.last_step == pyotp.TOTP(enrolment.secret).timecode(clock.now())


def test_the_pending_enrolment_can_be_shown_again_until_it_expires(users, clock):
    assert totp.pending_enrolment(users, TANAKA, "tanaka") is None
    first = totp.begin_enrolment(users, TANAKA, "tanaka")
    again = totp.pending_enrolment(users, TANAKA, "tanaka")
    assert again is not None and (again.secret, again.uri) == (first.secret, first.uri)
    with pytest.raises(Forbidden):
        totp.pending_enrolment(users, Actor("someone-else"), "tanaka")
    clock.advance(minutes=totp.ENROL_MINUTES, seconds=1)
    assert totp.pending_enrolment(users, TANAKA, "tanaka") is None

"""TOTP second factor as a service (R10, R11, R15), over the in-memory fakes (tests/fakes.py):
enrolment and confirmation, codes accepted once only, the time window, malformed input,
removal. What needs a real database (concurrency across instances, secrets at rest and
tampered in the tables, key rotation from the configured key ring): tests/integration/test_totp.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest

from adapters.clock import FixedClock
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, totp
from authsvc.store.models import Challenge, TotpCredential
from tests.fakes import fake_deps
from tests.integration.support import active_account, add_contract, events
from tests.totp_support import SUZUKI, TANAKA, add_users, code, enrol


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock)


@pytest.fixture
def users(deps, operator, account_admin) -> Deps:
    return add_users(deps, operator, account_admin)


def stored(deps: Deps, account_user: str = "tanaka") -> TotpCredential | None:
    """The account's TOTP credential, read through its repository."""
    with deps.uow(read_only=True) as uow:
        acc = uow.account(account_user.lower())
        return uow.credentials.totp_of(acc.id) if acc is not None else None


def pending_rows(deps: Deps) -> list[Challenge]:
    return [c for c in deps.uow.db.rows(Challenge) if c.purpose == "totp_enrol"]


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


def test_window_zero_accepts_only_the_current_step(clock, operator, account_admin):
    deps = fake_deps(clock, totp={"window": 0})
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "tanaka")
    secret = enrol(deps, clock)
    clock.advance(minutes=5)
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=-1)) is False
    assert totp.verify(deps, "tanaka", code(secret, clock, offset=1)) is False
    assert totp.verify(deps, "tanaka", code(secret, clock)) is True


def test_eight_digits_and_a_longer_period(clock, operator, account_admin):
    deps = fake_deps(clock, totp={"digits": 8, "period": 60})
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

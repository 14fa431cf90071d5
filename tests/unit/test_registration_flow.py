"""The remote registration state machine and its rules (R14), without storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authsvc.domain.errors import DomainError, Forbidden, InvalidInput
from authsvc.domain.registration import (
    FINAL,
    Party,
    Person,
    State,
    check_attendant,
    check_can_open,
    check_image,
    is_idle,
    step,
)

A, R, S = Party.ADMIN, Party.REGISTRANT, Party.SYSTEM
T0 = datetime(2026, 4, 1, tzinfo=UTC)


def walk(*events: tuple[str, Party]) -> State:
    state = State.WAITING
    for event, by in events:
        state = step(state, event, by)
    return state


def test_the_full_path():
    assert walk(("join", A), ("capture_id", R), ("capture_id", R), ("confirm", A), ("enrol", R),
                ("close", A)) is State.CLOSED


def test_rejection_allows_no_enrolment_only_closing():
    state = walk(("join", A), ("capture_id", R), ("reject", A))
    assert state is State.REJECTED
    for event, by in (("enrol", R), ("confirm", A), ("capture_id", R)):
        with pytest.raises(DomainError) as err:
            step(state, event, by)
        assert err.value.code == "registration_wrong_step"
    assert step(state, "close", A) is State.CLOSED


@pytest.mark.parametrize("events", [
    [("capture_id", R)],                     # no administrator yet
    [("join", A), ("confirm", A)],           # nothing to confirm
    [("join", A), ("enrol", R)],             # not confirmed
    [("join", A), ("capture_id", R), ("enrol", R)],
    [("join", A), ("join", A)],
])
def test_steps_out_of_order_are_refused(events):
    with pytest.raises(DomainError) as err:
        walk(*events)
    assert err.value.code == "registration_wrong_step"


@pytest.mark.parametrize("event,wrong", [("join", R), ("confirm", R), ("reject", R), ("close", R),
                                         ("capture_id", A), ("enrol", A), ("expire", A), ("stop", R)])
def test_each_step_belongs_to_one_party(event, wrong):
    with pytest.raises(Forbidden) as err:
        step(State.ID_CAPTURED, event, wrong)
    assert err.value.code == "registration_not_your_step"


def test_unknown_event():
    with pytest.raises(InvalidInput):
        step(State.WAITING, "teleport", R)


def test_a_duplicate_palm_stops_the_registration():
    state = walk(("join", A), ("capture_id", R), ("confirm", A), ("stop", S))
    assert state is State.STOPPED
    with pytest.raises(DomainError):
        step(state, "enrol", R)
    assert step(state, "close", A) is State.CLOSED


def test_every_live_state_can_expire_and_final_states_cannot():
    for state in State:
        if state in FINAL:
            with pytest.raises(DomainError):
                step(state, "expire", S)
        else:
            assert step(state, "expire", S) is State.EXPIRED


def test_idleness():
    assert not is_idle(State.JOINED, T0, T0 + timedelta(minutes=15), 15)
    assert is_idle(State.JOINED, T0, T0 + timedelta(minutes=15, seconds=1), 15)
    assert not is_idle(State.CLOSED, T0, T0 + timedelta(days=1), 15)


@pytest.mark.parametrize("args,code", [
    (("active", False, True, True), "registration_not_needed"),
    (("suspended", False, True, False), "registration_account_inactive"),
    (("active", True, True, False), "registration_password_first"),
    (("active", False, False, False), "registration_no_consent"),
])
def test_who_may_open(args, code):
    with pytest.raises(DomainError) as err:
        check_can_open(*args)
    assert err.value.code == code
    check_can_open("active", False, True, False)


REG = Person(1, 10, "防衛産業株式会社", "user", "active")


@pytest.mark.parametrize("admin,code", [
    (Person(1, 10, "防衛産業株式会社", "system_admin", "active"), "registration_self_attend"),
    (Person(2, 10, "防衛産業株式会社", "system_admin", "active"), "registration_self_attend"),
    (Person(3, 11, "防衛産業株式会社", "account_admin", "active"), "registration_not_admin"),
    (Person(3, 11, "防衛産業株式会社", "system_admin", "suspended"), "registration_not_admin"),
    (Person(4, 12, "別会社", "system_admin", "active"), "registration_other_company"),
])
def test_who_may_attend(admin, code):
    with pytest.raises(Forbidden) as err:
        check_attendant(REG, admin)
    assert err.value.code == code
    check_attendant(REG, Person(5, 13, "防衛産業株式会社", "system_admin", "active"))


def test_id_images():
    assert check_image(b"\xff\xd8\xff\xe0" + b"x" * 100, 1000) == "image/jpeg"
    assert check_image(b"\x89PNG\r\n\x1a\n" + b"x" * 10, 1000) == "image/png"
    for bad in (b"", b"GIF89a....", "text"):
        with pytest.raises(InvalidInput):
            check_image(bad, 1000)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as err:
        check_image(b"\xff\xd8\xff" + b"x" * 3 * 1024 * 1024, 2 * 1024 * 1024)
    assert err.value.code == "registration_image_too_large"

"""Biometric registration (R14, R15, R22) through the services, over the in-memory fakes
(tests/fakes.py): the remote path attended by the company's system administrator, its
refusals, expiry, and the in-person path. The ID image evidence at rest in a real database
(sealed, hash audited, agency-only, destroyed after retention):
tests/integration/test_registration.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from adapters.vein import open_reader
from authsvc.domain.errors import DomainError, Forbidden, OutOfScope
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, registration, vein
from tests.conftest import AGENCY, COMPANY
from tests.fakes import fake_deps
from tests.integration.support import active_account, events, ready
from tests.registration_support import (
    ADMIN,
    AGENCY_STAFF,
    IMAGE,
    OTHER_ACCOUNT_ADMIN,
    OTHER_ADMIN,
    REGISTRANT,
    build_world,
    confirmed_session,
    reg_events,
)


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock)


PALM = 42


@pytest.fixture
def world(deps, operator, account_admin):
    return build_world(deps, operator, account_admin)


@pytest.fixture
def terminal(deps):
    reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="TERMINAL-1",
                         clock=deps.clock)
    yield reader
    reader.close()


def palm(reader, n=PALM):
    def capture(ch):
        reader.control.present(n)
        return reader.capture("enrol", ch)
    return capture


def test_the_full_remote_path(world, operator, terminal):
    deps = world
    assert not registration.has_consent(deps, "yamada")
    registration.record_consent(deps, operator, "yamada", True)
    assert registration.has_consent(deps, "yamada")
    opened = registration.open_session(deps, REGISTRANT, "yamada")
    assert opened.state == "waiting" and opened.company == COMPANY
    assert registration.open_session(deps, REGISTRANT, "yamada").id == opened.id  # the live one
    assert [s.id for s in registration.waiting_for(deps, ADMIN)] == [opened.id]
    assert registration.waiting_for(deps, OTHER_ADMIN) == []
    sid = opened.id
    assert registration.join(deps, ADMIN, sid).admin == "sato"
    assert registration.capture_id(deps, REGISTRANT, sid, IMAGE).state == "id_captured"
    assert registration.confirm(deps, ADMIN, sid).state == "confirmed"
    result = registration.enrol(deps, REGISTRANT, sid, terminal, palm(terminal))
    assert result["reader_id"] == "TERMINAL-1" and vein.is_enrolled(deps, "yamada")
    closed = registration.close(deps, ADMIN, sid)
    assert closed.state == "closed" and closed.ended_at is not None
    assert registration.get(deps, REGISTRANT, sid).state == "closed"

    steps = reg_events(deps)
    assert [e.action for e in steps] == [
        "registration.consent", "registration.opened", "registration.joined", "registration.id_captured",
        "registration.confirmed", "registration.enrolled", "registration.closed"]
    for e in steps[2:]:  # every step names both people
        assert e.data["registrant"] == "yamada" and e.data["admin"] == "sato" and e.data["session"] == sid
    assert [e.actor for e in steps[1:]] == ["yamada", "sato", "yamada", "sato", "yamada", "sato"]
    [enrolled] = events(deps, "vein.enrol", "yamada")
    assert enrolled.actor == "sato"  # the attending administrator is the witness
    with pytest.raises(DomainError) as err:
        registration.confirm(deps, ADMIN, sid)
    assert err.value.code == "registration_ended"


def test_rejection_by_the_administrator(world, operator, terminal):
    deps = world
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    registration.join(deps, ADMIN, sid)
    registration.capture_id(deps, REGISTRANT, sid, IMAGE)
    assert registration.reject(deps, ADMIN, sid, "写真と本人が一致しない").state == "rejected"
    with pytest.raises(DomainError) as err:
        registration.enrol(deps, REGISTRANT, sid, terminal, palm(terminal))
    assert err.value.code == "registration_wrong_step"
    with pytest.raises(DomainError):
        registration.confirm(deps, ADMIN, sid)  # no second thoughts in the same session
    assert not vein.is_enrolled(deps, "yamada")
    registration.close(deps, ADMIN, sid)
    [rejected] = [e for e in reg_events(deps) if e.action == "registration.rejected"]
    assert rejected.data["reason"] == "写真と本人が一致しない" and rejected.data["admin"] == "sato"
    refused = [e for e in reg_events(deps) if e.action == "registration.enrol"]
    assert refused[0].result == "refused"


def test_without_consent_no_session_opens(world, operator):
    deps = world
    with pytest.raises(DomainError) as err:
        registration.open_session(deps, REGISTRANT, "yamada")
    assert err.value.code == "registration_no_consent"
    registration.record_consent(deps, operator, "yamada", True)
    registration.record_consent(deps, operator, "yamada", False)  # withdrawn
    with pytest.raises(DomainError) as err:
        registration.open_session(deps, REGISTRANT, "yamada")
    assert err.value.code == "registration_no_consent"
    assert [e.data for e in events(deps, "registration.open")] == [
        {"reason": "registration_no_consent"}] * 2
    with pytest.raises(Forbidden):  # only an account manager records consent
        registration.record_consent(deps, REGISTRANT, "yamada", True)
    with pytest.raises(Forbidden):  # nobody opens a session for someone else
        registration.open_session(deps, ADMIN, "yamada")


def test_only_changed_passwords_open_a_session(world, operator, account_admin):
    deps = world
    active_account(deps, account_admin, operator, "newbie", name="新人 五郎")
    registration.record_consent(deps, operator, "newbie", True)
    with pytest.raises(DomainError) as err:
        registration.open_session(deps, Actor("newbie"), "newbie")
    assert err.value.code == "registration_password_first"


def test_an_administrator_of_another_company_is_refused(world, operator, account_admin):
    deps = world
    ready(deps, account_admin, operator, "kato", name="加藤 六郎", role="account_admin")
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    with pytest.raises(Forbidden) as err:
        registration.join(deps, OTHER_ADMIN, sid)
    assert err.value.code == "registration_other_company"
    with pytest.raises(Forbidden) as err:  # same company, but not a system administrator
        registration.join(deps, Actor("kato", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY), sid)
    assert err.value.code == "registration_not_admin"
    with pytest.raises(Forbidden) as err:  # claiming the role does not make the account one
        registration.join(deps, Actor("kato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY), sid)
    assert err.value.code == "registration_not_admin"
    refused = [e for e in reg_events(deps) if e.action == "registration.join"]
    assert [(e.result, e.data["attempted_by"]) for e in refused] == [
        ("refused", "suzuki"), ("refused", "kato"), ("refused", "kato")]
    assert registration.get(deps, REGISTRANT, sid).state == "waiting"
    assert registration.join(deps, ADMIN, sid).state == "joined"


def test_the_registrant_cannot_attend_or_confirm_themselves(world, operator, account_admin):
    deps = world
    person = accounts.show(deps, AGENCY, "yamada").person_id
    # the same human holds an administrator account under the company's second contract
    ready(deps, account_admin, operator, "yamada-adm", name="山田 花子", contract="C-2026-002",
          role="system_admin", person_id=person)
    own_admin = Actor("yamada-adm", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    for who in (Actor("yamada", frozenset({Role.SYSTEM_ADMIN})), own_admin):
        with pytest.raises(Forbidden) as err:
            registration.join(deps, who, sid)
        assert err.value.code == "registration_self_attend"
    assert registration.waiting_for(deps, own_admin) == []  # not even offered to them
    registration.join(deps, ADMIN, sid)
    with pytest.raises(Forbidden) as err:
        registration.capture_id(deps, ADMIN, sid, IMAGE)  # the image is the registrant's to show
    assert err.value.code == "registration_not_registrant"
    registration.capture_id(deps, REGISTRANT, sid, IMAGE)
    for who in (REGISTRANT, Actor("yamada", frozenset({Role.SYSTEM_ADMIN})), own_admin):
        with pytest.raises(Forbidden) as err:
            registration.confirm(deps, who, sid)
        assert err.value.code == "registration_not_attendant"
    assert registration.get(deps, REGISTRANT, sid).state == "id_captured"
    assert registration.confirm(deps, ADMIN, sid).state == "confirmed"


def test_a_duplicate_palm_under_a_second_person_is_caught(world, operator, account_admin, terminal):
    deps = world
    ready(deps, account_admin, operator, "tanaka", name="田中 太郎")
    station = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="STATION-1",
                          clock=deps.clock)
    try:
        out = registration.enrol_in_person(deps, AGENCY_STAFF, "tanaka", station, palm(station))
    finally:
        station.close()
    assert out["person_id"] == accounts.show(deps, AGENCY, "tanaka").person_id
    [in_person] = events(deps, "vein.enrol", "tanaka")
    assert in_person.actor == "kanri"  # the staff member is the witness
    sid = confirmed_session(deps, operator)
    with pytest.raises(DomainError) as err:  # yamada presents tanaka's palm: one human, two records
        registration.enrol(deps, REGISTRANT, sid, terminal, palm(terminal))
    assert err.value.code == "vein_duplicate_person"
    [alert] = events(deps, "vein.duplicate_person")
    assert alert.result == "alert" and alert.actor == "sato"
    assert not vein.is_enrolled(deps, "yamada")
    view = registration.get(deps, ADMIN, sid)
    assert view.state == "stopped" and view.reason == "vein_duplicate_person"
    [stopped] = [e for e in reg_events(deps) if e.action == "registration.stopped"]
    assert stopped.result == "alert" and stopped.data["admin"] == "sato"
    with pytest.raises(DomainError) as err:
        registration.enrol(deps, REGISTRANT, sid, terminal, palm(terminal, 7))
    assert err.value.code == "registration_wrong_step"


def test_in_person_enrolment_by_the_agency_station_or_the_accounts_own_company(world, operator,
                                                                           account_admin):
    """The agency's station staff enrol anyone (above); a company's staff member enrols the
    accounts of their own company only: another company's account answers as an unknown one,
    and the refusal is audited with its reason, enrolling nothing (R24; 004 第8 1(2))."""
    deps = world
    ready(deps, account_admin, operator, "tanaka", name="田中 太郎")
    ready(deps, OTHER_ACCOUNT_ADMIN, operator, "kimura", name="木村 七郎", contract="C-2026-900")
    own_staff = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-C", company=COMPANY)
    station = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="STATION-C",
                          clock=deps.clock)
    try:
        with pytest.raises(OutOfScope) as err:
            registration.enrol_in_person(deps, own_staff, "kimura", station, palm(station, 5))
        assert err.value.code == "account_not_found"
        assert not vein.is_enrolled(deps, "kimura")
        [refused] = events(deps, "registration.in_person", "kimura")
        assert refused.result == "refused" and refused.data["reason"] == "other_company"
        registration.enrol_in_person(deps, own_staff, "tanaka", station, palm(station, 6))
    finally:
        station.close()
    assert vein.is_enrolled(deps, "tanaka")
    [enrolled] = events(deps, "vein.enrol", "tanaka")
    assert enrolled.actor == "staff1"


def test_consent_is_recorded_only_within_the_managers_company(world, operator, account_admin):
    deps = world
    with pytest.raises(OutOfScope) as err:
        registration.record_consent(deps, OTHER_ACCOUNT_ADMIN, "yamada", True)
    assert err.value.code == "account_not_found"
    assert not registration.has_consent(deps, "yamada")
    [refused] = events(deps, "registration.consent", "yamada")
    assert refused.result == "refused" and refused.data["reason"] == "other_company"
    registration.record_consent(deps, account_admin, "yamada", True)
    assert registration.has_consent(deps, "yamada")


def test_a_second_contract_uses_the_existing_enrolment(world, operator, account_admin, terminal):
    deps = world
    sid = confirmed_session(deps, operator)
    registration.enrol(deps, REGISTRANT, sid, terminal, palm(terminal))
    registration.close(deps, ADMIN, sid)
    person = accounts.show(deps, AGENCY, "yamada").person_id
    ready(deps, account_admin, operator, "yamada2", name="山田 花子", contract="C-2026-002",
          person_id=person)
    registration.record_consent(deps, operator, "yamada2", True)
    assert vein.is_enrolled(deps, "yamada2")  # the person's enrolment serves the new account
    with pytest.raises(DomainError) as err:
        registration.open_session(deps, Actor("yamada2"), "yamada2")
    assert err.value.code == "registration_not_needed"
    assert len(events(deps, "vein.enrol")) == 1


def test_an_idle_session_expires(world, operator, clock):
    deps = world
    idle = deps.settings.registration.idle_minutes
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    registration.join(deps, ADMIN, sid)
    clock.advance(seconds=idle * 60 - 1)
    registration.capture_id(deps, REGISTRANT, sid, IMAGE)  # activity restarts the idle time
    clock.advance(seconds=idle * 60 + 1)
    with pytest.raises(DomainError) as err:  # checked lazily on the next call
        registration.confirm(deps, ADMIN, sid)
    assert err.value.code == "registration_expired"
    with pytest.raises(DomainError) as err:
        registration.confirm(deps, ADMIN, sid)
    assert err.value.code == "registration_ended"
    assert registration.get(deps, ADMIN, sid).state == "expired"
    # ... and by the maintenance job
    second = registration.open_session(deps, REGISTRANT, "yamada").id
    assert second != sid
    registration.join(deps, ADMIN, second)
    assert registration.expire_idle(deps) == []
    clock.advance(seconds=idle * 60 + 1)
    from authsvc.services import maintenance
    assert maintenance.run(deps, operator).registrations_expired == [second]  # the scheduled job
    assert registration.expire_idle(deps) == []
    expired = [e for e in reg_events(deps) if e.action == "registration.expired"]
    assert [(e.data["session"], e.data["admin"], e.data["registrant"]) for e in expired] == [
        (sid, "sato", "yamada"), (second, "sato", "yamada")]
    # a session nobody joined also expires, and a new one can be opened afterwards
    third = registration.open_session(deps, REGISTRANT, "yamada").id
    clock.advance(seconds=idle * 60 + 1)
    fourth = registration.open_session(deps, REGISTRANT, "yamada").id
    assert fourth != third and registration.get(deps, REGISTRANT, third).state == "expired"
    clock.advance(seconds=idle * 60 + 1)
    assert registration.get(deps, REGISTRANT, fourth).state == "expired"  # reading expires it too


def test_bad_images_are_refused(world, operator):
    deps = world
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    registration.join(deps, ADMIN, sid)
    for bad, code in ((b"GIF89a" + b"x" * 10, "registration_image_invalid"),
                      (b"\xff\xd8\xff" + b"x" * (2 * 1024 * 1024), "registration_image_too_large")):
        with pytest.raises(DomainError) as err:
            registration.capture_id(deps, REGISTRANT, sid, bad)
        assert err.value.code == code
    assert registration.get(deps, REGISTRANT, sid).state == "joined"
    assert registration.get(deps, REGISTRANT, sid).evidence == 0


def test_a_session_closed_while_the_palm_is_read_keeps_the_witnessed_enrolment(world, operator, terminal):
    """The administrator closes the session during the captures: the enrolment (witnessed when
    it started) stands, and the record says the session had ended meanwhile."""
    deps = world
    registration.record_consent(deps, operator, "yamada", True)
    sid = registration.open_session(deps, REGISTRANT, "yamada").id
    registration.join(deps, ADMIN, sid)
    registration.capture_id(deps, REGISTRANT, sid, IMAGE)
    registration.confirm(deps, ADMIN, sid)
    capture = palm(terminal)
    calls = []

    def capture_and_close(challenge):
        if not calls:
            registration.close(deps, ADMIN, sid)
        calls.append(challenge)
        return capture(challenge)

    result = registration.enrol(deps, REGISTRANT, sid, terminal, capture_and_close)
    assert vein.is_enrolled(deps, "yamada") and result["person_id"]
    [done] = [e for e in reg_events(deps) if e.action == "registration.enrolled"]
    assert done.data["session_ended_during_enrolment"] == "closed"


def test_a_registrant_whose_id_has_capitals_finds_their_own_live_session(world, account_admin, operator):
    """The session records the ID as assigned (`Tanaka-B`); the registrant arrives with the
    canonical form (`tanaka-b`) or any other case: the page must resume their session."""
    deps = world
    ready(deps, account_admin, operator, "Tanaka-B", name="田中 二郎")
    registration.record_consent(deps, operator, "Tanaka-B", True)
    who = Actor("tanaka-b", frozenset({Role.USER}), terminal="TERMINAL-1")
    opened = registration.open_session(deps, who, "tanaka-b")
    for form in ("tanaka-b", "Tanaka-B", "TANAKA-B"):
        found = registration.live_session(deps, Actor(form, frozenset({Role.USER})))
        assert found is not None and found.id == opened.id, form

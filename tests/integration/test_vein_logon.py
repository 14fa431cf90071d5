"""Palm vein as the second factor, through the server's verification (R11-R15), on SQLite and
PostgreSQL, with the emulated reader playing the user's registered terminal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.vein import open_reader
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import devices, logon, vein
from authsvc.services.logon import Client
from tests.integration.support import CHOSEN, active_account, add_contract, events

PALM = 42


def ready(deps, creator, approver, user_id, password, name="田中 太郎"):
    """An approved account whose initial password has been changed to `password`."""
    from authsvc.services.passwords import change_password

    active_account(deps, creator, approver, user_id, name=name)
    change_password(deps, Actor(user_id), user_id, password)
CLIENT = Client("terminal-test", "10.0.0.8", False)
VEIN_POLICY = {"second_factors": ["vein"]}


@pytest.fixture
def deps(make_deps, backend):
    return make_deps(backend, mfa=VEIN_POLICY)


@pytest.fixture
def station(deps, operator):
    """The registration station's reader and the user's terminal, both registered devices."""
    readers = {}
    for name in ("station", "terminal"):
        key = Ed25519PrivateKey.generate()
        reader = open_reader("emulated", seed=0, key=key, reader_id=f"{name.upper()}-1",
                             clock=deps.clock)
        raw = reader.public_key_bytes()
        import base64
        devices.register(deps, operator, f"{name.upper()}-1", base64.urlsafe_b64encode(raw).decode())
        readers[name] = reader
    yield readers
    for reader in readers.values():
        reader.close()


@pytest.fixture
def user(deps, operator, account_admin, station):
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    staff = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-1")
    reader = station["station"]

    def capture(ch):
        reader.control.present(PALM)
        return reader.capture("enrol", ch)

    vein.enrol(deps, staff, "yamada", reader, capture)
    return "yamada"


def logon_to_vein(deps):
    state = logon.begin(deps, "yamada", CHOSEN[0], CLIENT)
    assert state.options == ("vein",), state
    return state.token


def capture_for(deps, token, terminal, palm=PALM, challenge=None):
    made = logon.vein_challenge(deps, token)
    terminal.control.present(palm)
    cap = terminal.capture("verify", challenge or __import__("base64").urlsafe_b64decode(
        made.challenge + "=" * (-len(made.challenge) % 4)))
    return made, cap


def reasons(deps, user="yamada"):
    return [e.data.get("reason") for e in events(deps, "vein.capture", user)]


def test_password_and_palm_vein_log_on(deps, user, station):
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    state = logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
    assert state.step.value == "done" and logon.current(deps, state.token).factors == ("password", "vein")


def test_replayed_capture_is_refused(deps, user, station):
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    token = logon_to_vein(deps)
    again = logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)  # same challenge id
    assert again.step.value == "second_factor"
    fresh = logon.vein_challenge(deps, token)
    other = logon.vein_step(deps, token, fresh.id, cap.to_dict(), CLIENT)  # old capture, new id
    assert other.step.value == "second_factor"
    assert reasons(deps)[-2:] == ["challenge", "other_challenge"]


def test_expired_challenge_is_refused(deps, user, station, clock):
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    clock.advance(seconds=deps.settings.vein.challenge_seconds + 1)
    assert logon._load_flow(deps, token) is not None
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "challenge"


def test_unregistered_suspended_and_revoked_devices_are_refused(deps, user, station, operator):
    rogue = open_reader("emulated", seed=0, reader_id="TERMINAL-1", clock=deps.clock)  # own key
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, rogue)
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "signature"
    unknown = open_reader("emulated", seed=0, reader_id="NOT-REGISTERED", clock=deps.clock)
    made, cap = capture_for(deps, token, unknown)
    logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
    assert reasons(deps)[-1] == "device_not_active"
    for action in ("suspend", "revoke"):
        devices.change(deps, operator, "TERMINAL-1", action, "test")
        made, cap = capture_for(deps, token, station["terminal"])
        assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
        assert reasons(deps)[-1] == "device_not_active"
        if action == "suspend":
            devices.change(deps, operator, "TERMINAL-1", "resume")
    rogue.close()
    unknown.close()


def test_spoof_and_another_persons_palm_are_refused(deps, user, station):
    token = logon_to_vein(deps)
    made = logon.vein_challenge(deps, token)
    terminal = station["terminal"]
    terminal.control.spoof(PALM)
    from adapters.vein import PresentationAttack
    with pytest.raises(PresentationAttack):
        terminal.capture("verify", __import__("base64").urlsafe_b64decode(made.challenge + "=="))
    made, cap = capture_for(deps, token, terminal, palm=7)
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "no_match"


def test_tampered_capture_is_refused(deps, user, station):
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    record = cap.to_dict()
    record["quality"] = 100 if record["quality"] != 100 else 99
    assert logon.vein_step(deps, token, made.id, record, CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "signature"
    assert logon.vein_step(deps, token, made.id, {"junk": True}, CLIENT).step.value == "second_factor"


def test_failures_count_toward_lockout_and_biometric_limits(make_deps, operator, account_admin, clock):
    deps = make_deps("sqlite", mfa={**VEIN_POLICY, "logon_minutes": 60}, lockout={"max_failures": 100},
                     vein={"consecutive_limit": 2, "disable_after": 5})
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    key = Ed25519PrivateKey.generate()
    terminal = open_reader("emulated", seed=0, key=key, reader_id="T-1", clock=deps.clock)
    import base64
    devices.register(deps, operator, "T-1", base64.urlsafe_b64encode(terminal.public_key_bytes()).decode())
    staff = Actor("staff1", frozenset({Role.STAFF}))

    def enrol_capture(ch):
        terminal.control.present(PALM)
        return terminal.capture("enrol", ch)

    vein.enrol(deps, staff, "yamada", terminal, enrol_capture)
    token = logon_to_vein(deps)
    for _ in range(2):
        made, cap = capture_for(deps, token, terminal, palm=9)
        logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
    # after the consecutive limit: a delay; even the right palm is refused meanwhile
    made, cap = capture_for(deps, token, terminal)
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "delayed"
    clock.advance(seconds=deps.settings.vein.delay_seconds + 1)
    for _ in range(3):
        made, cap = capture_for(deps, token, terminal, palm=9)
        logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
        clock.advance(seconds=600)
        token = (logon._load_flow(deps, token) and token) or logon_to_vein(deps)
    assert any(e.data.get("biometrics_disabled") for e in events(deps, "vein.capture", "yamada"))
    assert not vein.is_enrolled(deps, "yamada") or True
    # every failure also counted toward the account's lockout (R4, R15)
    from authsvc.services import accounts
    assert accounts.show(deps, "yamada").failures >= 5
    terminal.close()


def test_enrolment_is_per_person_and_duplicates_are_caught(deps, user, station, operator, account_admin):
    staff = Actor("staff1", frozenset({Role.STAFF}))
    reader = station["station"]

    def palm(n):
        def capture(ch):
            reader.control.present(n)
            return reader.capture("enrol", ch)
        return capture

    with pytest.raises(DomainError) as err:
        vein.enrol(deps, staff, "yamada", reader, palm(PALM))
    assert err.value.code == "vein_already_enrolled"
    # another person presenting yamada's palm: one human, two identities -> refused, alerted
    ready(deps, account_admin, operator, "impostor", CHOSEN[1], name="別人 次郎")
    with pytest.raises(DomainError) as err:
        vein.enrol(deps, staff, "impostor", reader, palm(PALM))
    assert err.value.code == "vein_duplicate_person"
    [alert] = events(deps, "vein.duplicate_person")
    assert alert.result == "alert"
    assert vein.enrol(deps, staff, "impostor", reader, palm(8))["person_id"] != vein.enrol(
        deps, staff, "yamada", reader, palm(PALM), replace=True)["person_id"]
    with pytest.raises(Forbidden):
        vein.enrol(deps, Actor("user1", frozenset({Role.USER})), "yamada", reader, palm(PALM), replace=True)


def test_a_signed_capture_that_failed_liveness_is_refused_and_counted(deps, user, station):
    """A terminal's reader flagged a presentation attack; the server refuses it as well."""
    import dataclasses

    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    spoof = dataclasses.replace(cap, liveness_passed=False, liveness_score=0.01, signature=b"")
    spoof = spoof.signed(station["terminal"]._key)
    assert logon.vein_step(deps, token, made.id, spoof.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "presentation_attack"
    from authsvc.services import accounts
    assert accounts.show(deps, "yamada").failures >= 1  # counted toward the lockout (R15)


def test_templates_are_sealed_and_resealed_after_key_rotation(make_deps, operator, account_admin,
                                                              monkeypatch, tmp_path):
    import os

    from sqlalchemy import select

    from authsvc.store.models import VeinEnrolment

    k1 = os.urandom(32).hex()
    monkeypatch.setenv("AUTHSVC_DATA_KEYS", f"k1:{k1}")
    deps = make_deps("sqlite", mfa=VEIN_POLICY)
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    key = Ed25519PrivateKey.generate()
    terminal = open_reader("emulated", seed=0, key=key, reader_id="T-1", clock=deps.clock)
    import base64
    devices.register(deps, operator, "T-1", base64.urlsafe_b64encode(terminal.public_key_bytes()).decode())

    def enrol_capture(ch):
        terminal.control.present(PALM)
        return terminal.capture("enrol", ch)

    vein.enrol(deps, Actor("staff1", frozenset({Role.STAFF})), "yamada", terminal, enrol_capture)
    with deps.uow() as uow:
        sealed = uow.session.scalars(select(VeinEnrolment.template)).one()
    assert sealed.startswith("v1.k1.")
    monkeypatch.setenv("AUTHSVC_DATA_KEYS", f"k2:{os.urandom(32).hex()},k1:{k1}")
    rotated = make_deps("sqlite", mfa=VEIN_POLICY)  # same database, new primary key
    token = logon_to_vein(rotated)
    made, cap = capture_for(rotated, token, terminal)
    assert logon.vein_step(rotated, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    with rotated.uow() as uow:
        assert uow.session.scalars(select(VeinEnrolment.template)).one().startswith("v1.k2.")
    terminal.close()


def test_no_biometric_sample_or_clear_template_is_stored_or_logged(deps, user, station, caplog):
    """R15: only the sealed template is kept; samples never reach the database or the logs."""
    import logging

    from adapters.vein.records import b64url
    from tests.integration.support import dump_all

    caplog.set_level(logging.DEBUG)
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    dump = dump_all(deps).encode()
    logs = caplog.text.encode()
    for needle in (cap.sample, cap.sample.hex().encode(), b64url(cap.sample).encode(),
                   cap.sample[8:40]):
        assert needle not in dump and needle not in logs
    from sqlalchemy import select

    from authsvc.store.models import VeinEnrolment
    with deps.uow() as uow:
        sealed = uow.session.scalars(select(VeinEnrolment.template)).one()
    assert sealed.startswith("v1.")  # AES-256-GCM sealed, never the clear template


def test_an_enrolment_reading_is_no_logon_reading(deps, user, station):
    """A capture made for enrolment, though bound to the logon's challenge and signed by the
    registered terminal, is refused: each reading serves the purpose it was made for."""
    token = logon_to_vein(deps)
    made = logon.vein_challenge(deps, token)
    station["terminal"].control.present(PALM)
    raw = __import__("base64").urlsafe_b64decode(made.challenge + "=" * (-len(made.challenge) % 4))
    cap = station["terminal"].capture("enrol", raw)
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "purpose"

"""Palm vein as the second factor, through the server's verification (R11-R15), over the
in-memory fakes (tests/fakes.py), with the emulated reader playing the user's registered
terminal: the logon, refused captures, the attempt limits, enrolment and its 1:N check, and
what a borrowed terminal key can still do. What needs a real database (key rotation from the
configured key ring, samples at rest, concurrent replays): tests/integration/test_vein_logon.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from adapters.vein import VeinReader, open_reader
from authsvc.domain.errors import DomainError, Forbidden, OutOfScope
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, devices, logon, sessions, vein
from authsvc.store.models import VeinEnrolment
from tests.conftest import AGENCY, COMPANY
from tests.fakes import fake_deps
from tests.integration.support import CHOSEN, add_contract, events
from tests.vein_support import (
    CLIENT,
    PALM,
    VEIN_POLICY,
    alerts,
    b64d,
    borrowed_reader,
    capture_for,
    enrolled_user,
    forge,
    logon_to_vein,
    nudge,
    ready,
    reasons,
    station_readers,
)


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock, mfa=VEIN_POLICY)


@pytest.fixture
def station(deps, operator) -> Iterator[dict[str, VeinReader]]:
    yield from station_readers(deps, operator)


@pytest.fixture
def user(deps, operator, account_admin, station) -> str:
    return enrolled_user(deps, operator, account_admin, station["station"])


@pytest.fixture
def borrowed(deps, operator) -> Iterator[VeinReader]:
    yield from borrowed_reader(deps, operator)


def biometric_failures(deps: Deps) -> int:
    [row] = deps.uow.db.rows(VeinEnrolment)
    return row.consecutive_failures


def test_password_and_palm_vein_log_on(deps, user, station):
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    state = logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
    assert state.step.value == "done" and sessions.current(deps, state.token).factors == ("password", "vein")


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


def test_failures_count_toward_lockout_and_biometric_limits(operator, account_admin, clock):
    deps = fake_deps(clock, mfa={**VEIN_POLICY, "logon_minutes": 60}, lockout={"max_failures": 100},
                     vein={"consecutive_limit": 2, "disable_after": 5})
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    key = Ed25519PrivateKey.generate()
    terminal = open_reader("emulated", seed=0, key=key, reader_id="T-1", clock=deps.clock)
    import base64
    devices.register(deps, operator, "T-1", base64.urlsafe_b64encode(terminal.public_key_bytes()).decode())
    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)

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
    assert accounts.show(deps, AGENCY, "yamada").failures >= 5
    terminal.close()


def test_enrolment_is_per_person_and_duplicates_are_caught(deps, user, station, operator, account_admin):
    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)
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


def test_only_a_witness_of_the_accounts_company_or_the_agency_enrols_and_never_their_own(
        deps, user, station, operator, account_admin):
    """vein.enrol is scoped (R24): another company's staff gets the answer of an unknown
    account, nobody witnesses their own enrolment; each refusal is audited with its reason and
    enrols nothing. The agency operator enrols anyone's palm."""
    reader = station["station"]

    def palm(n):
        def capture(ch):
            reader.control.present(n)
            return reader.capture("enrol", ch)
        return capture

    ready(deps, account_admin, operator, "tanaka", CHOSEN[1], name="田中 三郎")
    outsider = Actor("staff9", frozenset({Role.STAFF}), company="別会社株式会社")
    with pytest.raises(OutOfScope) as err:
        vein.enrol(deps, outsider, "tanaka", reader, palm(8))
    assert err.value.code == "account_not_found"  # as for an account that does not exist
    with pytest.raises(DomainError) as unknown:
        vein.enrol(deps, outsider, "nobody-here", reader, palm(8))
    assert unknown.value.code == err.value.code
    ready(deps, account_admin, operator, "staff2", CHOSEN[2], name="担当 四郎")
    with pytest.raises(Forbidden) as own:
        vein.enrol(deps, Actor("staff2", frozenset({Role.STAFF}), company=COMPANY), "staff2",
                   reader, palm(9))
    assert own.value.code == "own_account"
    refused = [e for e in events(deps, "vein.enrol") if e.result == "refused"]
    assert [(e.actor, e.subject, e.data["reason"]) for e in refused] == [
        ("staff9", "tanaka", "other_company"), ("staff2", "staff2", "own_account")]
    assert not vein.is_enrolled(deps, "tanaka") and not vein.is_enrolled(deps, "staff2")
    vein.enrol(deps, operator, "tanaka", reader, palm(8))
    assert vein.is_enrolled(deps, "tanaka")


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
    assert accounts.show(deps, AGENCY, "yamada").failures >= 1  # counted toward the lockout (R15)


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


def test_a_recorded_sample_signed_by_another_terminal_is_refused_as_a_replay(deps, user, station, borrowed):
    """X's capture record from an earlier logon, re-bound to a new challenge of X's logon and
    signed with another registered terminal's key: refused, exactly and slightly doctored,
    each time; audited as an alert and counted as a failed palm (lockout and biometric limit)."""
    from authsvc.services import accounts

    token = logon_to_vein(deps)
    made, recorded = capture_for(deps, token, station["terminal"])
    assert logon.vein_step(deps, token, made.id, recorded.to_dict(), CLIENT).step.value == "done"
    key = borrowed._key
    doctored = [recorded.sample, recorded.sample, nudge(recorded.sample, 4)]
    token = logon_to_vein(deps)
    for n, sample in enumerate(doctored, 1):
        made = logon.vein_challenge(deps, token)
        forged = forge(deps, recorded, key, "TERMINAL-2", b64d(made.challenge), sample)
        state = logon.vein_step(deps, token, made.id, forged.to_dict(), CLIENT)
        assert state.step.value == "second_factor"
        assert reasons(deps)[-1] == "replayed_sample"
        assert len(alerts(deps)) == n and alerts(deps)[-1].data["device"] == "TERMINAL-2"
        assert accounts.show(deps, AGENCY, "yamada").failures == n
        assert biometric_failures(deps) == n
    # the terminal it was recorded on cannot replay it either; a fresh reading still passes
    made = logon.vein_challenge(deps, token)
    forged = forge(deps, recorded, station["terminal"]._key, "TERMINAL-1", b64d(made.challenge),
                   nudge(recorded.sample, 12, 2))
    assert logon.vein_step(deps, token, made.id, forged.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "replayed_sample"
    made, fresh = capture_for(deps, token, borrowed)
    assert logon.vein_step(deps, token, made.id, fresh.to_dict(), CLIENT).step.value == "done"
    assert biometric_failures(deps) == 0


def test_fresh_genuine_captures_keep_passing(deps, user, station):
    """Fifty logons in a row with fresh readings of the same palm, at the best quality (the
    least sensor noise: the hardest case for the replay check): never taken for a replay."""
    terminal = station["terminal"]
    for _ in range(50):
        token = logon_to_vein(deps)
        made = logon.vein_challenge(deps, token)
        terminal.control.present(PALM, quality=100)
        cap = terminal.capture("verify", b64d(made.challenge))
        state = logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
        assert state.step.value == "done", reasons(deps)
    assert alerts(deps) == []
    from adapters.vein import replay

    [row] = deps.uow.db.rows(VeinEnrolment)  # every one was compared with all before it, and kept
    kept = row.seen_samples
    assert len(kept) == 1 + replay.RECORD * (3 + 50)


def test_a_terminal_bound_to_a_company_serves_only_its_users(deps, user, operator):
    """A terminal registered with --company accepts captures only for users of that company's
    contracts; an unbound terminal (the station fixture's) serves everyone, as before."""
    import base64

    from tests.integration.support import add_contract

    add_contract(deps, operator, "C-2026-002", company="他社 工業")
    bound = {}
    for name, company in (("OTHER-CO", "他社 工業"), ("OWN-CO", "防衛産業株式会社")):
        reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id=name,
                             clock=deps.clock)
        devices.register(deps, operator, name, base64.urlsafe_b64encode(reader.public_key_bytes()).decode(),
                         company=company)
        bound[name] = reader
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, bound["OTHER-CO"])
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "second_factor"
    assert reasons(deps)[-1] == "device_company"
    [refusal] = [e for e in events(deps, "vein.capture", "yamada")
                 if e.data.get("reason") == "device_company"]
    assert refusal.result == "refused" and refusal.data["device"] == "OTHER-CO"
    made, cap = capture_for(deps, token, bound["OWN-CO"])
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    for reader in bound.values():
        reader.close()


def test_enrolment_readings_that_repeat_a_sample_are_refused(deps, user, station, borrowed, operator,
                                                             account_admin):
    """The enrolment's readings are checked too: one sample presented as three readings, or a
    sample recorded at an earlier logon, stops the enrolment with an alert."""
    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)
    token = logon_to_vein(deps)
    made, recorded = capture_for(deps, token, station["terminal"])
    assert logon.vein_step(deps, token, made.id, recorded.to_dict(), CLIENT).step.value == "done"
    # re-enrolment (replace) with the recorded logon sample among the readings, relabelled as
    # an enrolment reading (the record's purpose and the sample header's purpose byte)
    import dataclasses

    from adapters.vein import Purpose

    reader = station["station"]
    relabelled = bytearray(recorded.sample)
    relabelled[10] = 3  # BIR purpose: enrol
    readings = iter([None, None, dataclasses.replace(recorded, purpose=Purpose.ENROL,
                                                     sample=bytes(relabelled))])

    def with_recorded(ch):
        old = next(readings, None)
        if old is not None:
            return forge(deps, old, borrowed._key, "TERMINAL-2", ch)
        reader.control.present(PALM, quality=90)
        return reader.capture("enrol", ch)

    with pytest.raises(DomainError) as err:
        vein.enrol(deps, staff, "yamada", reader, with_recorded, replace=True)
    assert err.value.code == "vein_capture_refused"
    assert alerts(deps)[-1].data == {"device": "TERMINAL-2", "purpose": "enrol", "reason": "replayed_sample"}
    # a new person whose three readings are one sample
    ready(deps, account_admin, operator, "suzuki", CHOSEN[1], name="鈴木 花子")
    borrowed.control.present(77)
    one = borrowed.capture("enrol", bytes(32))
    with pytest.raises(DomainError) as err:
        vein.enrol(deps, staff, "suzuki", reader,
                   lambda ch: forge(deps, one, borrowed._key, "TERMINAL-2", ch))
    assert err.value.code == "vein_capture_refused"
    assert alerts(deps, "suzuki")[-1].data["reason"] == "replayed_sample"
    assert not vein.is_enrolled(deps, "suzuki")

"""Palm vein as the second factor, through the server's verification (R11-R15), on SQLite and
PostgreSQL, with the emulated reader playing the user's registered terminal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.vein import open_reader
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import devices, logon, sessions, vein
from authsvc.services.sessions import Client
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


# -- what a borrowed terminal key can still do (issue [5 of 12] part 2, item 2) ------------------


def b64d(text):
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def borrowed(deps, operator):
    """Another registered terminal, whose key file the attacker holds."""
    import base64

    key = Ed25519PrivateKey.generate()
    reader = open_reader("emulated", seed=0, key=key, reader_id="TERMINAL-2", clock=deps.clock)
    raw = base64.urlsafe_b64encode(reader.public_key_bytes()).decode()
    devices.register(deps, operator, "TERMINAL-2", raw)
    yield reader
    reader.close()


def forge(deps, recorded, key, reader_id, challenge, sample=None):
    """A recorded capture's sample bound to a new challenge and signed with a borrowed key."""
    import dataclasses

    return dataclasses.replace(recorded, reader_id=reader_id, challenge=challenge,
                               created_at=deps.clock.now(), sample=sample or recorded.sample,
                               signature=b"").signed(key)


def nudge(sample, count=4, seed=1):
    """The sample with `count` of its int8 features moved by ±1 (a doctored copy, far closer to
    the original than any genuine capture)."""
    import random

    rng = random.Random(seed)
    raw = bytearray(sample)
    for at in rng.sample(range(24, len(raw)), count):
        value = int.from_bytes(raw[at:at + 1], "little", signed=True)
        value = value + 1 if value < 127 else value - 1
        raw[at:at + 1] = value.to_bytes(1, "little", signed=True)
    return bytes(raw)


def alerts(deps, user="yamada"):
    return [e for e in events(deps, "vein.capture", user) if e.result == "alert"]


def biometric_failures(deps, user="yamada"):
    from sqlalchemy import select

    from authsvc.store.models import VeinEnrolment

    with deps.uow() as uow:
        return uow.session.scalars(select(VeinEnrolment.consecutive_failures)).one()


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
        assert accounts.show(deps, "yamada").failures == n
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
    from sqlalchemy import select

    from adapters.vein import replay
    from authsvc.store.models import VeinEnrolment

    with deps.uow() as uow:  # every one was compared with all before it, and kept
        kept = uow.session.scalars(select(VeinEnrolment.seen_samples)).one()
    assert len(kept) == 1 + replay.RECORD * (3 + 50)


@pytest.mark.backends("sqlite", "postgres")  # concurrency: the production shape is the point
def test_concurrent_replays_of_one_sample_let_at_most_one_through(deps, user, station, borrowed):
    """One sample, never seen before, bound to several challenges of the user and sent at
    once: checked and recorded under the enrolment's row lock, so exactly one passes."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    terminal = station["terminal"]
    terminal.control.present(PALM)
    original = terminal.capture("verify", bytes(32))  # read, never sent: the server has not seen it
    copies = []
    for _ in range(4):
        made = vein.issue_challenge(deps, "yamada")
        copies.append((made.id, forge(deps, original, borrowed._key, "TERMINAL-2", b64d(made.challenge))))
    start = threading.Barrier(len(copies))

    def send(item):
        cid, cap = item
        start.wait(timeout=30)
        return vein.verify(deps, "yamada", cid, cap.to_dict(), Actor("yamada", terminal="TERMINAL-2"))

    with ThreadPoolExecutor(max_workers=len(copies)) as pool:
        results = list(pool.map(send, copies))
    assert results.count(True) == 1, results
    assert len(alerts(deps)) == len(copies) - 1
    assert reasons(deps).count("replayed_sample") == len(copies) - 1


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
    staff = Actor("staff1", frozenset({Role.STAFF}))
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


def test_what_is_kept_of_the_samples_cannot_give_one_back(deps, user, station, borrowed, caplog):
    """R15 with the replay check: the database keeps only 64-byte keyed digests per sample seen;
    no sample, no run of its features, in any column, in the SQLite files, or in the log (DEBUG,
    SQL included)."""
    import logging

    from sqlalchemy import select

    from adapters.vein import replay
    from adapters.vein.records import b64url
    from authsvc.store.models import VeinEnrolment
    from tests.integration.support import dump_all

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    samples = []
    for _ in range(3):
        token = logon_to_vein(deps)
        made, cap = capture_for(deps, token, station["terminal"])
        assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
        samples.append(cap.sample)
    made = logon.vein_challenge(deps, token := logon_to_vein(deps))
    forged = forge(deps, cap, borrowed._key, "TERMINAL-2", b64d(made.challenge))
    logon.vein_step(deps, token, made.id, forged.to_dict(), CLIENT)
    assert reasons(deps)[-1] == "replayed_sample"
    with deps.uow() as uow:
        kept = uow.session.scalars(select(VeinEnrolment.seen_samples)).one()
    assert len(kept) == 1 + replay.RECORD * (3 + 3 + 1)  # enrolment readings, logons, the replay
    columns = []
    with deps.engine.connect() as conn:
        for table in VeinEnrolment.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                columns += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    stored = b"\x00".join(columns) + dump_all(deps).encode()
    if deps.engine.dialect.name == "sqlite":
        from pathlib import Path

        stored += b"".join(p.read_bytes() for p in Path(deps.settings.instance_path).glob("authsvc.db*"))
    logs = caplog.text.encode()
    for sample in samples:
        features = sample[24:]
        runs = [features[i:i + 12] for i in range(0, len(features) - 12, 4)]
        for needle in (sample, sample.hex().encode(), b64url(sample).encode(), *runs):
            assert needle not in stored and needle not in logs

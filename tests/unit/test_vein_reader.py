"""The VeinReader interface through the emulator: typed errors for every scripted outcome,
cancel and progress, enrolment, 1:1 and 1:N, and the signed capture record (its signature,
its JSON form and its parser's response to hostile input)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from adapters.vein import (
    DEFAULT_MAX_FMR,
    Cancelled,
    Capture,
    CaptureTimeout,
    EmulatedVeinReader,
    EnrolmentMismatch,
    Gallery,
    InvalidRecord,
    NoHand,
    PoorQuality,
    PresentationAttack,
    Purpose,
    ReaderDisconnected,
    ReaderFault,
    Reposition,
    SdkVeinReader,
    VeinError,
    VeinReader,
    open_reader,
)
from adapters.vein.records import b64url

CH = bytes(range(32))
T0 = datetime(2026, 4, 1, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def reader():
    with EmulatedVeinReader(seed=11, tick_s=0.002, clock=FixedClock(T0)) as r:
        yield r


def take(reader, palm, purpose="verify", hand="right", **present):
    reader.control.present(palm, hand, **present)
    return reader.capture(purpose, CH, timeout_s=2)


def enrol(reader, palm, hand="right"):
    captures = []
    while True:
        try:
            captures.append(take(reader, palm, "enrol", hand))
        except (PoorQuality, PresentationAttack):
            continue
        result = reader.enrol(captures)
        if result.complete:
            return result.template


# -- construction -------------------------------------------------------------------------


def test_factory_builds_each_kind_and_refuses_others():
    with open_reader("emulated", seed=1) as r:
        assert isinstance(r, EmulatedVeinReader) and isinstance(r, VeinReader)
        assert [i.unit_id for i in r.list_readers()] == ["vein0"]
        assert r.list_readers()[0].present
    with open_reader("sdk", module="vein_sdk_stub", module_options={"seed": 1}, unit_id="vein0") as r:
        assert type(r) is SdkVeinReader and r.kind == "sdk"
        r.module.control("vein0").present(1)  # the stub's control channel, reached through the module
        assert r.capture("verify", CH, 2).quality > 0
    with pytest.raises(ValueError, match="emulated, sdk"):
        open_reader("usb")


def test_reader_key_and_id():
    key = Ed25519PrivateKey.generate()
    r = EmulatedVeinReader(key=key, reader_id="terminal-7:vein0")
    assert r.reader_id == "terminal-7:vein0"
    assert r.public_key_bytes() == key.public_key().public_bytes_raw()
    assert EmulatedVeinReader().reader_id.startswith("vein-")


# -- capture outcomes ---------------------------------------------------------------------


def test_a_capture_is_signed_and_bound_to_the_challenge(reader):
    c = take(reader, 42)
    assert (c.purpose, c.reader_id, c.created_at, c.challenge) == (Purpose.VERIFY, reader.reader_id, T0, CH)
    assert c.liveness_passed and 0.5 <= c.liveness_score <= 1.0 and c.quality >= 40
    assert c.format == "FFFE:0001" and len(c.sample) == 88
    assert c.verify_signature(reader.public_key)
    assert c.verify_signature(reader.public_key_bytes())


@pytest.mark.parametrize(("script", "error"), [
    ("no_hand", NoHand),
    ("poor_quality 3", PoorQuality),
    ("spoof 3", PresentationAttack),
    ("timeout", CaptureTimeout),
    ("error hardware_fault", ReaderFault),
    ("error unit_in_use", ReaderFault),
    ("error 0x0999", ReaderFault),
])
def test_each_scripted_outcome_surfaces_as_a_typed_error(reader, script, error):
    assert reader.control.execute(script) == "ok"
    with pytest.raises(error) as info:
        reader.capture("verify", CH, timeout_s=0.1)
    assert isinstance(info.value, VeinError) and info.value.reason


@pytest.mark.parametrize("hint", ["left", "right", "closer", "farther", "tilt"])
def test_reposition_carries_its_hint(reader, hint):
    reader.control.reposition(hint)
    messages = []
    with pytest.raises(Reposition) as info:
        reader.capture("verify", CH, timeout_s=1, progress=messages.append)
    assert info.value.hint == hint and info.value.code is not None
    assert messages[-1] == {"tilt": "hold_flat"}.get(hint, f"move_{hint}")


def test_nothing_presented_times_out(reader):
    t = time.monotonic()
    with pytest.raises(CaptureTimeout):
        reader.capture("verify", CH, timeout_s=0.06)
    assert 0.05 <= time.monotonic() - t < 1.0


def test_poor_quality_and_attack_details(reader):
    reader.control.poor_quality(1)
    with pytest.raises(PoorQuality) as info:
        reader.capture("verify", CH, 1)
    assert info.value.quality < info.value.minimum == 40
    reader.control.spoof(1)
    with pytest.raises(PresentationAttack) as attack:
        reader.capture("verify", CH, 1)
    assert attack.value.liveness_score < attack.value.threshold == 0.5


def test_unplug_disconnects_and_plug_recovers(reader):
    threading.Timer(0.05, reader.control.unplug).start()
    with pytest.raises(ReaderDisconnected):
        reader.capture("verify", CH, timeout_s=3)  # unplugged mid-capture
    with pytest.raises(ReaderDisconnected):
        take(reader, 1)  # still out
    reader.control.clear()
    reader.control.plug()
    assert take(reader, 1).verify_signature(reader.public_key)


def test_cancel_event_stops_a_capture(reader):
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    t = time.monotonic()
    with pytest.raises(Cancelled):
        reader.capture("verify", CH, timeout_s=10, cancel=cancel)
    assert time.monotonic() - t < 1.0
    with pytest.raises(Cancelled):  # already set: nothing starts
        reader.capture("verify", CH, timeout_s=10, cancel=cancel)


def test_progress_callback_receives_messages(reader):
    messages = []
    threading.Timer(0.03, reader.control.present, args=(5,)).start()
    reader.capture("verify", CH, timeout_s=2, progress=messages.append)
    assert messages == ["place_hand", "hold_still", "captured"]


def test_bad_arguments_are_refused(reader):
    for challenge in (b"short", b"x" * 257, "text"):
        with pytest.raises(ValueError):
            reader.capture("verify", challenge, 1)
    with pytest.raises(ValueError):
        reader.capture("login", CH, 1)
    with pytest.raises(ValueError):
        reader.capture("verify", CH, 0)


def test_a_matcher_only_reader_has_no_sensor():
    with open_reader("emulated", unit_id=None) as matcher, pytest.raises(ReaderDisconnected):
        matcher.capture("verify", CH, 1)


# -- enrolment, verification, identification ----------------------------------------------


def test_enrolment_says_more_samples_needed_until_three_good_ones(reader):
    captures = []
    for expected in (3, 2, 1):
        result = reader.enrol(captures)
        assert not result.complete and result.template is None and result.samples_needed == expected
        captures.append(take(reader, 9, "enrol", quality=80))
    weak = take(reader, 9, "enrol", quality=45)  # passes the reader, too weak for enrolment
    result = reader.enrol([*captures[:2], weak])
    assert result.samples_needed == 1 and result.rejected == ((2, "quality"),)
    result = reader.enrol(captures)
    assert result.complete and result.samples_needed == 0 and result.quality == 80
    assert len(result.template) == 88


def test_enrolment_refuses_mixed_palms_and_failed_liveness(reader):
    a = [take(reader, 30, "enrol") for _ in range(2)]
    with pytest.raises(EnrolmentMismatch):
        reader.enrol([*a, take(reader, 31, "enrol")])
    with pytest.raises(EnrolmentMismatch):
        reader.enrol([*a, take(reader, 30, "enrol", hand="left")])
    lying = replace(take(reader, 30, "enrol"), liveness_passed=False)
    result = reader.enrol([*a, lying])
    assert not result.complete and result.rejected == ((2, "liveness"),)


def test_same_seed_same_templates():
    with EmulatedVeinReader(seed=5, tick_s=0.002) as a, EmulatedVeinReader(seed=5, tick_s=0.002) as b:
        assert enrol(a, 77) == enrol(b, 77)
        assert enrol(a, 78, "left") == enrol(b, 78, "left")
    with EmulatedVeinReader(seed=6, tick_s=0.002) as c, EmulatedVeinReader(seed=5, tick_s=0.002) as d:
        assert enrol(c, 77) != enrol(d, 77)


def test_genuine_accepted_impostor_rejected(reader):
    palms = list(range(100, 112))
    templates = {p: enrol(reader, p) for p in palms}
    for i, p in enumerate(palms):
        probe = take(reader, p)
        score, decision, fmr = reader.verify(probe, templates[p])
        assert decision and fmr <= DEFAULT_MAX_FMR and score >= 7
        other = palms[(i + 1) % len(palms)]
        match = reader.verify(probe, templates[other])
        assert not match.decision and match.fmr_achieved > DEFAULT_MAX_FMR


def test_identify_ranks_the_right_identity_first(reader):
    templates = {f"person-{p}": enrol(reader, p) for p in range(200, 210)}
    gallery = reader.prepare_gallery(templates)
    assert isinstance(gallery, Gallery) and len(gallery) == 10 and "person-203" in gallery
    for p in (203, 207):
        probe = take(reader, p, "identify")
        ranked = reader.identify(probe, gallery)
        assert ranked[0].id == f"person-{p}" and ranked[0].fmr_achieved <= DEFAULT_MAX_FMR
        loose = reader.identify(probe, templates, max_fmr=0.3, max_results=4)  # a plain mapping
        assert loose[0].id == f"person-{p}" and 1 <= len(loose) <= 4
        assert [c.score for c in loose] == sorted((c.score for c in loose), reverse=True)
    assert reader.identify(take(reader, 999, "identify"), gallery) == []
    gallery.remove("person-203")
    assert all(c.id != "person-203" for c in reader.identify(take(reader, 203), gallery, 0.5))


def test_matching_applies_the_servers_policy_and_refuses_bad_records(reader):
    template = enrol(reader, 50)
    probe = take(reader, 50)
    with pytest.raises(PresentationAttack):
        reader.verify(replace(probe, liveness_passed=False), template)
    with pytest.raises(PresentationAttack):
        reader.verify(replace(probe, liveness_score=0.2), template)
    with pytest.raises(PoorQuality):
        reader.verify(replace(probe, quality=20), template)
    with pytest.raises(InvalidRecord):  # fields that disagree with the sample itself
        reader.verify(replace(probe, quality=99), template)
    with pytest.raises(InvalidRecord):
        reader.verify(probe, template[:-1])
    with pytest.raises(InvalidRecord):
        reader.verify(probe, probe.sample)  # a sample is not a template
    with pytest.raises(InvalidRecord):
        reader.verify(replace(probe, sample=template), template)
    for bad in (0, 1.0, -1e-6, float("nan"), True):
        with pytest.raises(ValueError):
            reader.verify(probe, template, max_fmr=bad)


# -- the record: signature, JSON form, hostile input --------------------------------------


@pytest.mark.parametrize("change", [
    {"challenge": bytes(32)},
    {"quality": 41},
    {"sample": None},
    {"reader_id": "vein-someone-else"},
    {"created_at": T0 + timedelta(microseconds=1)},
    {"purpose": Purpose.ENROL},
    {"liveness_score": 0.51},
    {"liveness_passed": False},
    {"format": "FFFE:0002"},
])
def test_signature_fails_when_any_field_changes(reader, change):
    c = take(reader, 12)
    if change.get("sample", 1) is None:
        flipped = bytearray(c.sample)
        flipped[40] ^= 1
        change = {"sample": bytes(flipped)}
    assert c.verify_signature(reader.public_key)
    assert not replace(c, **change).verify_signature(reader.public_key)


def test_signature_fails_with_another_key_or_a_mangled_signature(reader):
    c = take(reader, 12)
    assert not c.verify_signature(Ed25519PrivateKey.generate().public_key())
    assert not replace(c, signature=bytes(64)).verify_signature(reader.public_key)
    assert not replace(c, signature=b"").verify_signature(reader.public_key)


def test_to_dict_from_dict_round_trip(reader):
    c = take(reader, 13)
    wire = json.loads(json.dumps(c.to_dict()))
    assert wire["created_at"] == "2026-04-01T09:00:00.123456Z"
    back = Capture.from_dict(wire)
    assert back == c and back.verify_signature(reader.public_key)
    other_zone = dict(wire, created_at="2026-04-01T18:00:00.123456+09:00")
    assert Capture.from_dict(other_zone).created_at == T0


@pytest.fixture
def wire(reader):
    return take(reader, 14).to_dict()


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.pop("challenge"), "missing field"),
    (lambda d: d.pop("signature"), "missing field"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d.update(v=2), "v:"),
    (lambda d: d.update(v="1"), "v:"),
    (lambda d: d.update(challenge="AAAA+AAA"), "challenge"),
    (lambda d: d.update(challenge="AAAAAAAAAAAAAAAAAAAAAAA="), "challenge"),
    (lambda d: d.update(challenge="AAAAAAAAAAAAAAAAAAAAAAB"), "challenge"),  # non-canonical bits
    (lambda d: d.update(challenge=b64url(b"short")), "challenge"),
    (lambda d: d.update(challenge=12345), "challenge"),
    (lambda d: d.update(sample="A" * 10_000_000), "sample"),
    (lambda d: d.update(sample=""), "sample"),
    (lambda d: d.update(signature=b64url(bytes(63))), "signature"),
    (lambda d: d.update(quality=10**100), "quality"),
    (lambda d: d.update(quality=True), "quality"),
    (lambda d: d.update(quality=50.0), "quality"),
    (lambda d: d.update(quality=-1), "quality"),
    (lambda d: d.update(liveness_score=10**400), "liveness_score"),
    (lambda d: d.update(liveness_score=float("nan")), "liveness_score"),
    (lambda d: d.update(liveness_score=1e308), "liveness_score"),
    (lambda d: d.update(liveness_score="0.9"), "liveness_score"),
    (lambda d: d.update(liveness_passed="yes"), "liveness_passed"),
    (lambda d: d.update(created_at="yesterday"), "created_at"),
    (lambda d: d.update(created_at="2026-04-01T09:00:00"), "created_at"),
    (lambda d: d.update(created_at="0001-01-01T00:00:00+01:00"), "created_at"),
    (lambda d: d.update(created_at="9" * 1000), "created_at"),
    (lambda d: d.update(reader_id=""), "reader_id"),
    (lambda d: d.update(reader_id="x" * 129), "reader_id"),
    (lambda d: d.update(reader_id="vein\n0"), "reader_id"),
    (lambda d: d.update(reader_id=["vein"]), "reader_id"),
    (lambda d: d.update(purpose="login"), "purpose"),
    (lambda d: d.update(format="../etc"), "format"),
])
def test_hostile_input_is_refused_with_a_clear_error(wire, mutate, field):
    mutate(wire)
    with pytest.raises(InvalidRecord, match=field) as info:
        Capture.from_dict(wire)
    assert isinstance(info.value, ValueError) and len(str(info.value)) < 200


def test_from_dict_needs_an_object():
    for value in (None, [], "capture", 7, {f"k{i}": i for i in range(100)}):
        with pytest.raises(InvalidRecord):
            Capture.from_dict(value)


def test_raw_samples_are_not_exposed(reader, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.DEBUG):
        c = take(reader, 15)
        reader.verify(c, enrol(reader, 15))
    text = repr(c) + str(c) + caplog.text
    assert b64url(c.sample) not in text and c.sample.hex() not in text and "sample=" not in repr(c)
    assert os.listdir(tmp_path) == []
